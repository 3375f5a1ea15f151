// Every error code of the API contract (the schema's ErrorCode enum) has a message for
// the person at the page; BAD_USER_INPUT shows the server's own words and the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { explain, errorCodes, ApiError } from '../../src/web/assets/js/errors.js';

test('every error code of the schema has a message in the app', () => {
  const sdl = readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8');
  const body = /enum ErrorCode \{([^}]*)\}/.exec(sdl)[1];
  const codes = body.split('\n').map((l) => l.trim()).filter((l) => /^[A-Z_]+$/.test(l) && l !== 'BAD_USER_INPUT');
  assert.ok(codes.length >= 13, `codes found: ${codes}`);
  for (const code of codes) {
    assert.ok(errorCodes.includes(code), `${code} has no message`);
    assert.notEqual(explain(new ApiError(code, 'raw')), 'raw', code);
  }
  assert.equal(explain(new ApiError('BAD_USER_INPUT', 'must be positive', { field: 'amount' })), 'must be positive (amount)');
});
