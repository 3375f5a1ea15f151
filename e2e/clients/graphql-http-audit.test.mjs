// The GraphQL-over-HTTP conformance audit of graphql-http (its `serverAudits`), every
// audit: MUST, SHOULD and MAY.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serverAudits } from 'graphql-http';
import { startServer } from '../lib/server.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

test('every graphql-http server audit passes', async () => {
  const audits = serverAudits({ url: server.graphqlUrl, fetchFn: fetch });
  const failed = [];
  for (const audit of audits) {
    const result = await audit.fn();
    if (result.status !== 'ok') failed.push(`${audit.id} ${audit.name}: ${result.reason}`);
  }
  console.log(`graphql-http audit: ${audits.length - failed.length}/${audits.length} ok`);
  assert.deepEqual(failed, []);
  assert.ok(audits.length >= 61, `${audits.length} audits`);
});
