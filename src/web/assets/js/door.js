// The door's side of tickets, in the browser: reading a ticket code, checking its
// signature with the published keys (WebCrypto Ed25519), the checks an offline scanner
// can make by itself, and the queue of scans waiting to be uploaded.
//
// The code format is the server's (crates/ticket-codes/src/code.rs, docs/tickets.md):
// base32 text of [version 1][key id varint][ticket id][schedule id][seat id][issued at]
// (zigzag varints) followed by a 64-byte Ed25519 signature over everything before it.
// WebCrypto needs a secure context (https, or localhost): a scanner page is served over
// https anyway, since the camera needs it too.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding, as the server writes it; null if not. Case, spaces and
 * dashes are forgiven (people type codes), like the server does. */
export function base32Decode(text) {
  const clean = String(text).replace(/[\s-]/g, '').toUpperCase();
  if (!clean || !/^[A-Z2-7]+$/.test(clean)) return null;
  // Lengths that cannot come from whole bytes (1, 3 or 6 characters past a group of 8).
  if ([1, 3, 6].includes(clean.length % 8)) return null;
  const out = new Uint8Array(Math.floor((clean.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let n = 0;
  for (const ch of clean) {
    value = (value << 5) | ALPHABET.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out[n++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
    value &= 0xff;
  }
  // Leftover bits must be zero: otherwise two texts would name one code.
  if (bits > 0 && (value & ((1 << bits) - 1)) !== 0) return null;
  return out;
}

function varint(bytes, at) {
  let value = 0n;
  let shift = 0n;
  for (let i = at; i < bytes.length; i++) {
    const b = bytes[i];
    value |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) {
      if (b === 0 && i > at) return null;
      return [value, i + 1];
    }
    shift += 7n;
    if (shift > 63n) return null;
  }
  return null;
}

const unzigzag = (v) => ((v & 1n) ? -((v >> 1n) + 1n) : v >> 1n);

/** The claims of a code's text, not yet verified; null when it is not a code at all. */
export function parseCode(text) {
  const bytes = base32Decode(text);
  if (!bytes || bytes.length < 1 + 5 + 64 || bytes[0] !== 1) return null;
  const fields = [];
  let at = 1;
  // Key id, ticket id, schedule id, seat id, issued at.
  for (let i = 0; i < 5; i++) {
    const r = varint(bytes, at);
    if (!r) return null;
    fields.push(r[0]);
    at = r[1];
  }
  if (bytes.length - at !== 64) return null;
  const [keyId, ticket, schedule, seat, issued] = [fields[0], ...fields.slice(1).map(unzigzag)];
  return {
    keyId: Number(keyId),
    ticketId: String(ticket),
    scheduleId: String(schedule),
    seatId: String(seat),
    issuedAt: Number(issued),
    payload: bytes.slice(0, at),
    signature: bytes.slice(at),
  };
}

function base64urlDecode(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Whether this browser can check Ed25519 signatures by itself. */
export async function canVerify() {
  if (!globalThis.crypto?.subtle) return false;
  try {
    await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    return true;
  } catch {
    return false;
  }
}

/**
 * A key ring from `ticketKeys` (`[{ keyId, publicKey, verifiesUntil }]`); `verify(text, at)`
 * resolves to the claims of a genuine code, or null (forged, altered, unknown or retired
 * key), reading nothing from the network.
 */
export async function keyRing(published) {
  const keys = new Map();
  for (const k of published) {
    const key = await crypto.subtle.importKey('raw', base64urlDecode(k.publicKey), { name: 'Ed25519' }, false, ['verify']);
    keys.set(Number(k.keyId), { key, until: k.verifiesUntil ? Date.parse(k.verifiesUntil) : null });
  }
  return {
    async verify(text, at = Date.now()) {
      const code = parseCode(text);
      if (!code) return null;
      const k = keys.get(code.keyId);
      if (!k || (k.until !== null && at >= k.until)) return null;
      const ok = await crypto.subtle.verify({ name: 'Ed25519' }, k.key, code.signature, code.payload);
      return ok ? code : null;
    },
  };
}

/**
 * What an offline scanner answers by itself (crates/ticket-codes' `precheck` plus what
 * this device knows): `show` is `{ scheduleId, doorsOpenAt, endsAt }` (ms), `revoked` a
 * Set of ticket ids, `seen` a Map of ticket id → { at, gate } admitted on this device.
 */
export function decideOffline(code, show, revoked, seen, at = Date.now()) {
  if (!code) return { status: 'INVALID' };
  if (code.scheduleId !== String(show.scheduleId)) return { status: 'WRONG_SCHEDULE' };
  if (revoked.has(code.ticketId)) return { status: 'REVOKED' };
  if (at >= show.endsAt) return { status: 'ENDED' };
  if (at < show.doorsOpenAt) return { status: 'NOT_YET' };
  const first = seen.get(code.ticketId);
  if (first) return { status: 'ALREADY_USED', firstCheckInAt: new Date(first.at).toISOString(), firstGate: first.gate };
  return { status: 'ADMITTED' };
}

/** A small store in localStorage under one key: survives a reload and a lost network. */
export function stored(name, initial) {
  const k = `boxoffice.scan.${name}`;
  return {
    get() {
      try {
        const v = localStorage.getItem(k);
        return v === null ? initial : JSON.parse(v);
      } catch {
        return initial;
      }
    },
    set(value) {
      try { localStorage.setItem(k, JSON.stringify(value)); } catch { /* storage full or off */ }
    },
    clear() {
      try { localStorage.removeItem(k); } catch { /* nothing to clear */ }
    },
  };
}

/** A nonce for one scan: the server counts a scan sent twice with it once. */
export const nonce = () => (crypto.randomUUID ? crypto.randomUUID()
  : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(''));
