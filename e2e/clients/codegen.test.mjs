// What a TypeScript SPA team does with the API's documented operations: GraphQL Code
// Generator (typescript + typescript-operations) over the examples of docs/api.md, with the
// schema read from the live server by introspection, and the generated types compiled with
// `tsc --strict`. Codegen refuses anonymous operations and operations that do not fit the
// schema, so every example must be named and valid.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '@graphql-codegen/cli';
import { Kind, parse } from 'graphql';
import { startServer } from '../lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const e2e = path.resolve(here, '..');
const apiDoc = path.resolve(e2e, '..', 'docs', 'api.md');

/** The operation blocks of docs/api.md: every ```graphql block, and the ```text ones that
 * hold operations (shown but not run by the walk-through). */
function exampleBlocks(markdown) {
  const blocks = [];
  let current = null;
  let info = null;
  for (const line of markdown.split('\n')) {
    const fence = line.trimEnd();
    if (current === null && (fence === '```graphql' || fence === '```text')) { current = []; info = fence; }
    else if (current !== null && fence === '```') { blocks.push({ info, text: current.join('\n') }); current = null; }
    else if (current !== null) current.push(line);
  }
  const operation = /^\s*(query|mutation|subscription|fragment)\b/;
  return blocks
    .filter((b) => b.info === '```graphql' || operation.test(b.text.split('\n').find((l) => l.trim() && !l.trim().startsWith('#')) ?? ''))
    .map((b) => b.text);
}

let server;
let dir;
before(async () => {
  server = await startServer();
  dir = mkdtempSync(path.join(tmpdir(), 'boxoffice-codegen-'));
});
after(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the docs examples are named operations, once each', () => {
  const operations = exampleBlocks(readFileSync(apiDoc, 'utf8'))
    .flatMap((block) => parse(block).definitions)
    .filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  assert.ok(operations.length >= 30, `only ${operations.length} operations in docs/api.md`);
  const anonymous = operations.filter((o) => !o.name).map((o) => o.loc?.source.body.slice(o.loc.start, o.loc.start + 60));
  assert.deepEqual(anonymous, [], 'anonymous operations');
  const names = operations.map((o) => o.name.value);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'names used twice');
});

test('graphql-codegen types every example from the live schema, and tsc --strict compiles them', async () => {
  const blocks = exampleBlocks(readFileSync(apiDoc, 'utf8'));
  const documents = path.join(dir, 'examples.graphql');
  writeFileSync(documents, blocks.join('\n\n'));
  // typescript-operations 6 writes the enums and inputs its operations use itself, so the
  // schema's types (the typescript plugin) go to a file of their own: one file with both
  // would declare each enum twice.
  const schemaTypes = path.join(dir, 'schema.ts');
  const out = path.join(dir, 'operations.ts');
  // Every custom scalar must be mapped: a new one fails here until a client type is chosen.
  const config = { strictScalars: true, scalars: { DateTime: 'string', JSON: 'unknown', Long: 'number' }, enumsAsTypes: true };
  await generate(
    {
      schema: server.graphqlUrl,
      documents: [documents],
      silent: true,
      errorsOnly: true,
      generates: {
        [schemaTypes]: { plugins: ['typescript'], config },
        [out]: { plugins: ['typescript-operations'], config },
      },
    },
    true,
  );

  const types = readFileSync(out, 'utf8');
  const operations = blocks.flatMap((b) => parse(b).definitions).filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  const suffix = { query: 'Query', mutation: 'Mutation', subscription: 'Subscription' };
  for (const op of operations) {
    const type = `${op.name.value}${suffix[op.operation]}`;
    assert.match(types, new RegExp(`export type ${type} = `), `no type ${type}`);
  }

  // Use a few of the generated types the way an SPA does, so a wrong shape fails to compile.
  const usage = path.join(dir, 'usage.ts');
  writeFileSync(
    usage,
    `import type { SeatMapQuery, ReserveSeatsMutation, SeatChangesSubscription } from './operations';\nimport type { ErrorCode, Schedule } from './schema';
export function seatCount(answer: SeatMapQuery): number {
  return answer.schedule?.seatMap.rows.reduce((n, row) => n + row.seats, 0) ?? 0;
}
export function heldIds(answer: ReserveSeatsMutation): string[] {
  return answer.reserveSeats.seats.map((seat) => seat.id);
}
export function changed(event: SeatChangesSubscription): boolean {
  return event.seatChanges.resync || event.seatChanges.seats.length > 0;
}
export const unavailable: ErrorCode = 'SEAT_UNAVAILABLE';\nexport const scheduleId = (s: Pick<Schedule, 'id'>): string => s.id;
`,
  );
  const tsc = path.join(e2e, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(
      process.execPath,
      [tsc, '--strict', '--noEmit', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler',
        '--skipLibCheck', schemaTypes, out, usage],
      { cwd: dir, encoding: 'utf8' },
    );
  } catch (e) {
    assert.fail(`tsc --strict:\n${e.stdout}${e.stderr}`);
  }
});
