// graphql-request, the thinnest common client: queries and mutations over HTTP POST.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { GraphQLClient, ClientError } from 'graphql-request';
import { startServer } from '../lib/server.mjs';
import { show, signUp } from '../lib/api.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

test('reads a schedule and holds seats with a bearer token', async () => {
  const s = await show(server);
  const fan = await signUp(server);
  const client = new GraphQLClient(server.graphqlUrl, { headers: { authorization: `Bearer ${fan.accessToken}` } });
  const map = await client.request('query($s: ID!) { schedule(id: $s) { capacity seats { id status } } }', { s: s.scheduleId });
  assert.equal(map.schedule.capacity, 40);
  const held = await client.request(
    'mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id status seats { id } } }',
    { i: { scheduleId: s.scheduleId, seatIds: s.seatIds.slice(0, 2) } },
  );
  assert.equal(held.reserveSeats.status, 'HELD');
  assert.deepEqual(held.reserveSeats.seats.map((x) => x.id).sort(), s.seatIds.slice(0, 2).sort());
});

test('an error reaches the client with its code', async () => {
  const s = await show(server);
  const client = new GraphQLClient(server.graphqlUrl);
  await assert.rejects(
    client.request('mutation($i: ReserveSeatsInput!) { reserveSeats(input: $i) { id } }', {
      i: { scheduleId: s.scheduleId, seatIds: [s.seatIds[0]] },
    }),
    (e) => e instanceof ClientError && e.response.errors[0].extensions.code === 'UNAUTHENTICATED',
  );
});
