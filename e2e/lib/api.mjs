// Plain GraphQL over HTTP for test set-up (the clients under test are used in the tests
// themselves): users, roles, and a published show on sale now.
export async function gql(server, query, variables = {}, token, headers = {}) {
  const r = await fetch(server.graphqlUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: JSON.stringify({ query, variables }),
  });
  return r.json();
}

/** Returns `data`, or throws with the errors. */
export async function ok(server, query, variables = {}, token) {
  const body = await gql(server, query, variables, token);
  if (body.errors) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

let counter = 0;
export function uniqueEmail(prefix = 'fan') {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter}@example.com`;
}

export const PASSWORD = 'correct horse battery 9';

/** Signs up a user; returns { id, email, accessToken, refreshToken }. */
export async function signUp(server, prefix = 'fan') {
  const email = uniqueEmail(prefix);
  const data = await ok(
    server,
    'mutation($i: SignUpInput!) { signUp(input: $i) { accessToken refreshToken user { id } } }',
    { i: { email, password: PASSWORD, displayName: prefix } },
  );
  const p = data.signUp;
  return { id: p.user.id, email, accessToken: p.accessToken, refreshToken: p.refreshToken };
}

export async function logIn(server, email, password = PASSWORD) {
  const data = await ok(
    server,
    'mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken refreshToken user { id } } }',
    { e: email, p: password },
  );
  return { id: data.logIn.user.id, email, accessToken: data.logIn.accessToken, refreshToken: data.logIn.refreshToken };
}

/** An admin made by the CLI, logged in. */
export async function admin(server) {
  const email = uniqueEmail('admin');
  server.createAdmin(email, PASSWORD);
  return logIn(server, email);
}

/** A user promoted to `role` (HOST or ADMIN) by an admin; logged in again for a fresh token. */
export async function userWithRole(server, role, prefix = role.toLowerCase()) {
  const boss = await admin(server);
  const u = await signUp(server, prefix);
  await ok(server, 'mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id } }', { u: u.id, r: role }, boss.accessToken);
  return logIn(server, u.email);
}

export function layout(rows = 4, perRow = 10) {
  const grades = ['VIP', 'R', 'S', 'A'];
  return {
    grades: [
      { name: 'VIP', price: 150, color: '#D4AF37' },
      { name: 'R', price: 100, color: '#C0392B' },
      { name: 'S', price: 70, color: '#2980B9' },
      { name: 'A', price: 50, color: '#27AE60' },
    ],
    sections: [{
      name: 'Floor',
      rows: Array.from({ length: rows }, (_, r) => ({ label: `R${r + 1}`, seats: perRow, grade: grades[r % 4] })),
    }],
  };
}

/**
 * A published concert by a new host with one schedule on sale now (no queue unless
 * `schedule.queueEnabled`). Returns { host, concertId, scheduleId, seatIds }.
 */
export async function show(server, { rows = 4, perRow = 10, schedule = {}, concert = {} } = {}) {
  const host = await userWithRole(server, 'HOST');
  const t = host.accessToken;
  const now = Date.now();
  const c = await ok(server, 'mutation($i: ConcertInput!) { createConcert(input: $i) { id } }', {
    i: { title: 'Night Show', artist: 'The Band', venue: 'Arena', category: 'pop', ...concert },
  }, t);
  const concertId = c.createConcert.id;
  const s = await ok(server, 'mutation($c: ID!, $i: ScheduleInput!) { addSchedule(concertId: $c, input: $i) { id } }', {
    c: concertId,
    i: {
      startsAt: new Date(now + 2 * 86400_000).toISOString(),
      salesOpenAt: new Date(now - 60_000).toISOString(),
      salesCloseAt: new Date(now + 86400_000).toISOString(),
      perUserLimit: 4,
      ...schedule,
    },
  }, t);
  const scheduleId = s.addSchedule.id;
  await ok(server, 'mutation($s: ID!, $l: SeatLayoutInput!) { generateSeats(scheduleId: $s, layout: $l) { id } }', {
    s: scheduleId, l: layout(rows, perRow),
  }, t);
  await ok(server, 'mutation($c: ID!) { publishConcert(id: $c) { id } }', { c: concertId }, t);
  // The compact map's id runs ([first, count, ...], layout order): the full `seats` list of a
  // big venue costs more than one request may read.
  const map = await ok(server, 'query($s: ID!) { schedule(id: $s) { seatMap { idRuns } } }', { s: scheduleId });
  const runs = map.schedule.seatMap.idRuns;
  const seatIds = [];
  for (let i = 0; i < runs.length; i += 2) {
    for (let k = 0; k < Number(runs[i + 1]); k += 1) seatIds.push(String(Number(runs[i]) + k));
  }
  return { host, concertId, scheduleId, seatIds };
}
