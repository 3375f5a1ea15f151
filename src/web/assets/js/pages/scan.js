// `/scan`: the door. A scanner token (from the host's createScanner, given as
// `/scan#token=...` or pasted) checks tickets in for its one performance: type or paste a
// code, or point the camera at it where the browser has BarcodeDetector; a big green or
// red answer; the running count of admitted / capacity.
//
// Offline: the page keeps the scanner's performance, the published keys and the revoked
// tickets in localStorage. Without a network (or with "Work offline" on) it checks each
// code's signature itself (door.js), refuses what it can tell is wrong, admits the rest
// once per device, and queues the scans; back online it uploads them with checkInBatch,
// where the first scan in time of each ticket wins and the conflicts are listed here.
import { h, fill, field, notice, when } from '../ui.js';
import { ApiError, explain } from '../errors.js';
import * as door from '../door.js';

const tokenStore = door.stored('token', null);
const gateStore = door.stored('gate', 'Gate 1');
const bundleStore = door.stored('bundle', null); // { token, scanner, keys, revoked, revokedSince }
const queueStore = door.stored('queue', []); // [{ code, scheduleId, gate, scannedAt, nonce }]
const seenStore = door.stored('seen', {}); // ticketId -> { at, gate }, admitted on this device
const offlineStore = door.stored('forceOffline', false);

const SCANNER = 'scanner { id name schedule { id startsAt capacity concert { title venue } } doorsOpenAt endsAt admittedCount }';
const RESULT = 'status nonce conflict firstCheckInAt firstGate ticket { id holderName seat { section row number grade } }';

const VERDICTS = {
  ADMITTED: 'Admitted',
  ALREADY_USED: 'Already used',
  INVALID: 'Not a valid ticket',
  WRONG_SCHEDULE: 'Another performance',
  REVOKED: 'Ticket cancelled',
  NOT_YET: 'Doors not open yet',
  ENDED: 'The show has ended',
};

/** GraphQL with the scanner's token (not the fan session of the rest of the app). */
async function call(query, variables, token) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError('NETWORK', 'network error');
  }
  let body;
  try { body = await response.json(); } catch { throw new ApiError('UNAVAILABLE', `HTTP ${response.status}`); }
  if (body.errors?.length) {
    const e = body.errors[0];
    throw new ApiError(e.extensions?.code || 'INTERNAL', e.message, e.extensions || {});
  }
  return body.data;
}

const offlineError = (e) => e?.code === 'NETWORK' || e?.code === 'UNAVAILABLE';

function addStyles() {
  if (document.getElementById('door-css')) return;
  document.head.append(h('link', { id: 'door-css', rel: 'stylesheet', href: new URL('../../css/door.css', import.meta.url).href }));
}

export async function render(main) {
  addStyles();
  // A token in the fragment never reaches a server log; keep it and clean the address bar.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    tokenStore.set(fromHash);
    history.replaceState(null, '', '/scan');
  }
  const token = tokenStore.get();
  if (!token) return askToken(main);
  return scanner(main, token);
}

function askToken(main) {
  const msg = h('div');
  const t = field('Scanner token', { name: 'token', required: true, autocomplete: 'off', id: 'scanner-token' });
  const go = h('button', { type: 'submit', class: 'primary', id: 'use-token' }, 'Use this scanner');
  const form = h('form', { class: 'panel' }, t.wrap, h('div', { class: 'row' }, go));
  fill(main, h('h1', {}, 'Door'), h('p', {}, 'Paste the scanner token the host created for this performance (or open the link they sent).'), msg, form);
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const value = t.input.value.trim();
    if (!value) return;
    tokenStore.set(value);
    scanner(main, value);
  };
  return null;
}

async function scanner(main, token) {
  const msg = h('div', { id: 'door-msg' });
  const head = h('section', { class: 'panel', 'aria-labelledby': 'door-title' });
  const net = h('span', { class: 'door-net', id: 'door-net' });
  const count = h('span', { class: 'door-count', id: 'door-count' });
  const result = h('section', { class: 'door-result idle', id: 'door-result', role: 'status', 'aria-live': 'assertive' },
    h('p', { class: 'verdict' }, 'Ready'));
  const gate = field('Gate', { name: 'gate', id: 'door-gate', value: gateStore.get(), autocomplete: 'off' });
  gate.input.onchange = () => gateStore.set(gate.input.value.trim() || 'Gate 1');
  const code = field('Ticket code', { name: 'code', id: 'door-code', autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false' });
  const check = h('button', { type: 'submit', class: 'primary', id: 'door-check' }, 'Check');
  const form = h('form', { class: 'door-form' }, code.wrap, check);
  const offline = h('input', { type: 'checkbox', id: 'door-offline', checked: offlineStore.get() });
  const offlineToggle = h('div', { class: 'field check' }, offline, h('label', { for: 'door-offline' }, 'Work offline'));
  const queued = h('span', { id: 'door-queued' });
  const upload = h('button', { type: 'button', id: 'door-upload' }, 'Upload now');
  const conflicts = h('section', { id: 'door-conflicts', 'aria-labelledby': 'conflicts-title' });
  const log = h('ol', { class: 'door-log', id: 'door-log', reversed: true });
  const camera = h('div', { class: 'door-camera' });
  const forget = h('button', { type: 'button', class: 'link', id: 'door-forget' }, 'Forget this scanner');
  fill(main, head, msg, form, result,
    h('div', { class: 'row' }, gate.wrap, offlineToggle, queued, upload, camera),
    conflicts, h('h2', {}, 'This device'), log, h('p', {}, forget));

  let bundle = bundleStore.get();
  if (bundle && bundle.token !== token) bundle = null;
  let ring = null;
  const verifier = await door.canVerify();
  let busy = false;
  let timer = null;

  const show = () => bundle && ({
    scheduleId: bundle.scanner.schedule.id,
    doorsOpenAt: Date.parse(bundle.scanner.doorsOpenAt),
    endsAt: Date.parse(bundle.scanner.endsAt),
  });
  const pendingAdmits = () => queueStore.get().filter((s) => s.local === 'ADMITTED').length;
  const forcedOffline = () => offline.checked;

  function drawHead(online) {
    if (!bundle) return;
    const s = bundle.scanner;
    fill(head, h('div', { class: 'door-head' },
      h('h1', { id: 'door-title' }, s.schedule.concert.title),
      h('span', { class: 'muted' }, `${when(s.schedule.startsAt)} · ${s.schedule.concert.venue} · scanner “${s.name}”`)),
    h('div', { class: 'door-head' }, count, net));
    count.textContent = `${s.admittedCount + pendingAdmits()} / ${s.schedule.capacity} admitted`;
    net.textContent = online ? 'Online' : 'Offline';
    net.classList.toggle('offline', !online);
    const q = queueStore.get().length;
    queued.textContent = q ? `${q} scan${q === 1 ? '' : 's'} waiting to upload` : 'Nothing waiting to upload';
    upload.disabled = q === 0;
  }

  // Each check-in's answer carries the admitted count; a refresh that was asked before it
  // answers later with an older count, which must not replace the newer one.
  let counted = 0;
  const admitted = (n) => { counted += 1; if (bundle) bundle.scanner.admittedCount = n; };

  async function refresh() {
    if (forcedOffline()) { drawHead(false); return false; }
    // What the page said when the refresh began (a stale error): cleared once it succeeds,
    // unless something was said meanwhile. Back online, the upload's result arrives while
    // the 'online' event's refresh runs, and must stay.
    const said = msg.textContent;
    try {
      const asked = counted;
      const d = await call(`{ ${SCANNER} ticketKeys { keyId publicKey verifiesUntil } }`, {}, token);
      const since = bundle?.token === token && bundle.scanner.schedule.id === d.scanner.schedule.id ? bundle.revokedSince : null;
      const r = await call('query($s: ID!, $since: DateTime) { revokedTickets(scheduleId: $s, since: $since) { ticketId revokedAt } }',
        { s: d.scanner.schedule.id, since }, token);
      const revoked = new Set(since ? bundle.revoked : []);
      let latest = since;
      for (const t of r.revokedTickets) {
        revoked.add(t.ticketId);
        if (!latest || t.revokedAt > latest) latest = t.revokedAt;
      }
      if (counted !== asked && bundle) d.scanner.admittedCount = bundle.scanner.admittedCount;
      bundle = { token, scanner: d.scanner, keys: d.ticketKeys, revoked: [...revoked], revokedSince: latest };
      bundleStore.set(bundle);
      ring = verifier ? await door.keyRing(bundle.keys) : null;
      if (msg.textContent === said) notice(msg, '');
      drawHead(true);
      return true;
    } catch (e) {
      if (offlineError(e)) {
        drawHead(false);
        return false;
      }
      if (e.code === 'UNAUTHENTICATED' || e.code === 'FORBIDDEN') {
        notice(msg, 'This scanner token is not valid (any more): ask the host for a new one.', 'error');
      } else {
        notice(msg, explain(e), 'error');
      }
      return false;
    }
  }

  function answer(r, offlineMode) {
    const ok = r.status === 'ADMITTED';
    const seat = r.ticket?.seat ? `${r.ticket.seat.section} · row ${r.ticket.seat.row} · seat ${r.ticket.seat.number} (${r.ticket.seat.grade})` : '';
    const first = r.status === 'ALREADY_USED' && r.firstCheckInAt
      ? `First at ${r.firstGate} · ${new Date(r.firstCheckInAt).toLocaleTimeString()}` : '';
    result.className = `door-result ${ok ? 'admitted' : 'refused'}`;
    result.dataset.status = r.status;
    fill(result, h('p', { class: 'verdict' }, VERDICTS[r.status] || r.status),
      r.ticket?.holderName ? h('p', {}, r.ticket.holderName) : null,
      seat ? h('p', {}, seat) : null,
      first ? h('p', { id: 'door-first' }, first) : null,
      offlineMode ? h('p', { class: 'small' }, 'Checked on this device (offline): uploads when back online.') : null);
    log.prepend(h('li', {}, h('span', { class: r.status }, VERDICTS[r.status] || r.status), ' ',
      new Date().toLocaleTimeString(), offlineMode ? ' (offline)' : '', seat ? ` · ${seat}` : ''));
  }

  async function checkLocally(text, scan) {
    if (!bundle) {
      notice(msg, 'Offline, and this device has not loaded its performance yet: connect once first.', 'error');
      return;
    }
    if (!ring && verifier) ring = await door.keyRing(bundle.keys);
    if (!ring) {
      notice(msg, 'This browser cannot check signatures by itself (it needs Ed25519 in WebCrypto over https): stay online.', 'error');
      return;
    }
    const at = Date.parse(scan.scannedAt);
    const claims = await ring.verify(text, at);
    const seen = new Map(Object.entries(seenStore.get()));
    const r = door.decideOffline(claims, show(), new Set(bundle.revoked), seen, at);
    if (r.status === 'ADMITTED' || r.status === 'ALREADY_USED') {
      queueStore.set([...queueStore.get(), { ...scan, local: r.status }]);
    }
    if (r.status === 'ADMITTED') seenStore.set({ ...seenStore.get(), [claims.ticketId]: { at, gate: scan.gate } });
    answer(r, true);
    drawHead(false);
  }

  async function checkCode(text) {
    const value = text.trim();
    if (!value || busy) return;
    if (!bundle && !forcedOffline()) await refresh();
    busy = true;
    check.disabled = true;
    const scan = { code: value, scheduleId: bundle?.scanner.schedule.id, gate: gate.input.value.trim() || 'Gate 1', scannedAt: new Date().toISOString(), nonce: door.nonce() };
    try {
      if (forcedOffline() || !bundle) {
        await checkLocally(value, scan);
        return;
      }
      try {
        const d = await call(`mutation($i: CheckInInput!) { checkIn(input: $i) { ${RESULT} admittedCount } }`,
          { i: { code: scan.code, scheduleId: scan.scheduleId, gate: scan.gate, nonce: scan.nonce } }, token);
        const r = d.checkIn;
        if (r.status === 'ADMITTED' && r.ticket) seenStore.set({ ...seenStore.get(), [r.ticket.id]: { at: Date.parse(scan.scannedAt), gate: scan.gate } });
        admitted(r.admittedCount);
        answer(r, false);
        drawHead(true);
      } catch (e) {
        if (!offlineError(e)) throw e;
        await checkLocally(value, scan);
      }
    } catch (e) {
      notice(msg, explain(e), 'error');
    } finally {
      busy = false;
      check.disabled = false;
      code.input.value = '';
      code.input.focus();
    }
  }

  // One upload at a time: the 'online' event and the button may both start one, and the
  // second would replay the first's nonces and overwrite its conflicts with none.
  let uploading = null;
  function uploadQueue() {
    if (!uploading) uploading = sendQueue().finally(() => { uploading = null; });
    return uploading;
  }

  async function sendQueue() {
    const queue = queueStore.get();
    if (!queue.length || forcedOffline()) return;
    try {
      const scans = queue.map(({ code: c, scheduleId, gate: g, scannedAt, nonce }) => ({ code: c, scheduleId, gate: g, scannedAt, nonce }));
      const d = await call(`mutation($s: [OfflineScanInput!]!) { checkInBatch(scans: $s) { admittedCount results { ${RESULT} } conflicts { ${RESULT} } } }`, { s: scans }, token);
      const sent = new Set(scans.map((s) => s.nonce));
      queueStore.set(queueStore.get().filter((s) => !sent.has(s.nonce)));
      admitted(d.checkInBatch.admittedCount);
      const list = d.checkInBatch.conflicts;
      fill(conflicts, list.length ? [h('h2', { id: 'conflicts-title' }, `Conflicts in the last upload (${list.length})`),
        h('ul', { class: 'door-log' }, list.map((c) => h('li', { class: 'conflict' },
          `Ticket ${c.ticket?.id ?? '?'}${c.ticket?.seat ? ` (${c.ticket.seat.section} ${c.ticket.seat.row}-${c.ticket.seat.number})` : ''}: `,
          `first let in at ${c.firstGate} · ${c.firstCheckInAt ? new Date(c.firstCheckInAt).toLocaleTimeString() : '?'}`)))] : null);
      notice(msg, `Uploaded ${scans.length} offline scan${scans.length === 1 ? '' : 's'}${list.length ? `; ${list.length} conflict${list.length === 1 ? '' : 's'}` : ''}.`, list.length ? 'error' : 'ok');
      drawHead(true);
    } catch (e) {
      if (!offlineError(e)) notice(msg, explain(e), 'error');
    }
  }

  async function sync() {
    if (forcedOffline()) return;
    if (await refresh()) await uploadQueue();
  }

  form.onsubmit = (ev) => { ev.preventDefault(); checkCode(code.input.value); };
  upload.onclick = () => uploadQueue();
  offline.onchange = () => { offlineStore.set(offline.checked); if (!offline.checked) sync(); else drawHead(false); };
  forget.onclick = () => {
    for (const s of [tokenStore, bundleStore, seenStore]) s.clear();
    location.assign('/scan');
  };
  window.addEventListener('online', sync);
  timer = setInterval(sync, 20_000);

  // The camera, where the browser can read QR codes itself.
  let stopCamera = () => {};
  if ('BarcodeDetector' in window && navigator.mediaDevices?.getUserMedia) {
    const start = h('button', { type: 'button', id: 'door-camera' }, 'Use the camera');
    fill(camera, start);
    start.onclick = async () => {
      try {
        const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
        const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
        const video = h('video', { autoplay: true, muted: true, playsinline: true });
        video.srcObject = stream;
        fill(camera, video);
        let last = '';
        let lastAt = 0;
        const loop = setInterval(async () => {
          if (video.readyState < 2 || busy) return;
          const found = await detector.detect(video).catch(() => []);
          const text = found[0]?.rawValue;
          // The same code held in front of the camera is one scan, not one every tick. A
          // check that started while detect() ran (a typed code) lets this frame go: marked
          // as seen, the code would be dropped for 5 s instead of read on the next tick.
          if (text && !busy && (text !== last || Date.now() - lastAt > 5_000)) {
            last = text;
            lastAt = Date.now();
            checkCode(text);
          }
        }, 250);
        stopCamera = () => { clearInterval(loop); stream.getTracks().forEach((t) => t.stop()); };
      } catch (e) {
        notice(msg, `The camera could not be used: ${e.message}`, 'error');
      }
    };
  }

  if (bundle) {
    if (verifier) ring = await door.keyRing(bundle.keys).catch(() => null);
    drawHead(navigator.onLine && !forcedOffline());
  }
  await sync();
  if (!bundle && !msg.textContent) notice(msg, 'Connect once to load this scanner’s performance.', 'error');
  code.input.focus();

  return () => {
    clearInterval(timer);
    window.removeEventListener('online', sync);
    stopCamera();
  };
}
