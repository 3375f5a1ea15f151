// Headless Chromium from the distribution (/usr/bin/chromium), driven by playwright-core
// (which never downloads a browser of its own). The flags keep Chromium from reaching for
// Google's services, which this machine's closed network refuses.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A new page that records every request it makes, so a test can assert that nothing
 * left the server's origin. Returns { page, requests, context }.
 */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const requests = [];
  page.on('request', (req) => requests.push(req.url()));
  return { page, context, requests };
}

/** URLs among `requests` that are not on `origin` (data: and blob: URLs are local). */
export function foreign(requests, origin) {
  return requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:'));
}
