// What schema tools (GraphiQL's docs, graphql-codegen, Rover, schema diff) do first: the
// standard introspection query, with every option graphql-js has, and a client schema
// built from the answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildClientSchema, getIntrospectionQuery, printSchema } from 'graphql';
import { startServer } from '../lib/server.mjs';
import { gql } from '../lib/api.mjs';

const EVERY_OPTION = {
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
  oneOf: true,
};

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

test('getIntrospectionQuery with every option builds the client schema', async () => {
  for (const options of [{}, EVERY_OPTION]) {
    const body = await gql(server, getIntrospectionQuery(options));
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    const schema = buildClientSchema(body.data);
    const sdl = printSchema(schema);
    assert.match(sdl, /type Seat \{/);
    assert.match(sdl, /seatChanges\(scheduleId: ID!, sinceVersion: Int\): SeatChangeEvent!/);
  }
});

test('introspection stays bounded and can be switched off', async () => {
  const bomb = '{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }';
  const body = await gql(server, bomb);
  assert.equal(body.errors?.[0]?.extensions?.code, 'QUERY_TOO_COSTLY', JSON.stringify(body));

  const closed = await startServer({ GRAPHQL_INTROSPECTION: 'false' });
  try {
    const refused = await gql(closed, getIntrospectionQuery());
    assert.equal(refused.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
    const typename = await gql(closed, '{ __typename }');
    assert.deepEqual(typename, { data: { __typename: 'Query' } });
  } finally {
    await closed.stop();
  }
});
