// Subscriptions over one WebSocket per page (the graphql-transport-ws protocol, written
// out here because it is small: connection_init / subscribe / next / error / complete,
// ping / pong). The access token goes in connection_init, as boxoffice expects; when the
// token changes (log in, log out, refresh) the socket is reopened with the new one, and
// every live subscription is sent again. A dropped socket reconnects with backoff and
// tells each subscriber (`onReconnect`), so pages can re-read what they may have missed.

let tokenOf = () => null;
let refused = () => {};
let socket = null;
let ready = false;
let retry = 0;
let nextId = 1;
const subs = new Map(); // id -> { query, variables, sink }

// `variables` may be a function: read at every (re)send, so a subscription sent again after
// a dropped socket starts from where its page is (e.g. `sinceVersion` of the map it holds).
const payloadOf = (s) => ({ query: s.query, variables: typeof s.variables === 'function' ? s.variables() : s.variables });

/** `token()` gives the access token for connection_init; `onRefused()` is called when the
 * server refuses it (close 4401/4403), so the session can be renewed. */
export function useToken(token, onRefused = () => {}) {
  tokenOf = token;
  refused = onRefused;
}

function send(msg) {
  if (socket && ready) socket.send(JSON.stringify(msg));
}

function open() {
  if (socket || subs.size === 0) return;
  const url = new URL('/graphql', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url, 'graphql-transport-ws');
  socket = ws;
  ready = false;
  ws.onopen = () => {
    const token = tokenOf();
    ws.send(JSON.stringify({ type: 'connection_init', payload: token ? { Authorization: `Bearer ${token}` } : {} }));
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === 'connection_ack') {
      ready = true;
      const reconnected = retry > 0;
      retry = 0;
      for (const [id, s] of subs) {
        send({ id, type: 'subscribe', payload: payloadOf(s) });
        if (reconnected) s.sink.reconnect?.();
      }
    } else if (msg.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong' }));
    } else if (msg.type === 'next') {
      const s = subs.get(msg.id);
      if (!s) return;
      if (msg.payload?.errors?.length) s.sink.error?.(msg.payload.errors[0]);
      else s.sink.next(msg.payload.data);
    } else if (msg.type === 'error') {
      const s = subs.get(msg.id);
      subs.delete(msg.id);
      s?.sink.error?.(msg.payload?.[0] || { message: 'subscription refused' });
    } else if (msg.type === 'complete') {
      const s = subs.get(msg.id);
      subs.delete(msg.id);
      s?.sink.complete?.();
    }
  };
  ws.onclose = (ev) => {
    if (socket !== ws) return;
    socket = null;
    ready = false;
    if (subs.size === 0) return;
    if (ev.code === 4403 || ev.code === 4401) {
      // The token was refused (expired, or the session ended): renew the session, which
      // reopens the socket with the new token; without one, reconnect anonymously.
      refused();
    }
    retry += 1;
    setTimeout(open, Math.min(10_000, 250 * 2 ** Math.min(retry, 6)));
  };
}

/** Reopens the socket (e.g. with a new token); subscriptions continue on the new one. */
export function reconnect() {
  const ws = socket;
  socket = null;
  ready = false;
  if (ws) {
    ws.onclose = null;
    ws.close(1000, 'token changed');
    retry = 1; // subscribers re-read after the reconnect
  }
  open();
}

/**
 * Subscribes; `sink` gets next(data), error(graphqlError), complete(), reconnect().
 * `variables` is an object, or a function giving them each time the subscription is sent.
 * Returns a function that ends the subscription.
 */
export function subscribe(query, variables, sink) {
  const id = String(nextId++);
  const s = { query, variables, sink };
  subs.set(id, s);
  if (socket && ready) send({ id, type: 'subscribe', payload: payloadOf(s) });
  else open();
  return () => {
    if (subs.delete(id)) send({ id, type: 'complete' });
  };
}

/** Ends every subscription (a page is left). */
export function closeAll() {
  for (const id of [...subs.keys()]) {
    subs.delete(id);
    send({ id, type: 'complete' });
  }
}
