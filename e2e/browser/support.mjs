// Shared set-up of the browser suite: a page that records every request, every CSP
// violation and every uncaught error, a way to sign a page in without the UI, and
// screenshots saved to docs/screenshots/ for the README.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { newPage, foreign } from '../lib/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// The README shows two of them; E2E_SCREENSHOTS=<dir> writes them elsewhere.
export const SHOTS = process.env.E2E_SCREENSHOTS || path.resolve(here, '..', '..', 'docs', 'screenshots');

/**
 * A page on `server` that records what it does. `session` (from api.mjs logIn/signUp)
 * signs it in the way the app resumes a session: its refresh token in sessionStorage.
 */
export async function openPage(browser, server, { session, viewport = { width: 1280, height: 900 }, ...options } = {}) {
  const { page, context, requests } = await newPage(browser, { viewport, ...options });
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  if (session) {
    // Only for the first document of the page: later reloads keep the rotated token.
    await context.addInitScript((token) => {
      if (!sessionStorage.getItem('boxoffice.seeded')) {
        sessionStorage.setItem('boxoffice.refreshToken', token);
        sessionStorage.setItem('boxoffice.seeded', '1');
      }
    }, session.refreshToken);
  }
  return {
    page,
    context,
    requests,
    problems,
    /** Nothing left the origin, nothing was refused by the CSP, no script error. */
    assertClean() {
      assert.deepEqual(foreign(requests, server.url), [], 'requests left the origin');
      assert.deepEqual(problems, [], 'CSP violations or script errors');
    },
  };
}

export async function shot(page, name, fullPage = true) {
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

/** The trimmed text of the first element matching `selector`. */
export async function text(page, selector) {
  return (await page.locator(selector).first().innerText()).trim();
}
