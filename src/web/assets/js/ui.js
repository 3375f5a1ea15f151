// Small DOM helpers: building elements, messages, formatting. No framework.

/**
 * h('button', { class: 'primary', onclick: fn }, 'Save') — attributes starting with "on"
 * become listeners; `false`/`null` attributes are left out; children may be strings,
 * nodes, arrays or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Moves keyboard focus to `el` (made focusable by script if it is not, e.g. a heading), so
 * a keyboard or screen-reader user goes on from there instead of from the top of the page.
 */
export function focusOn(el) {
  if (!el || !el.isConnected) return false;
  if (!el.matches('a[href], button, input, select, textarea, [tabindex]')) el.setAttribute('tabindex', '-1');
  el.focus();
  return document.activeElement === el;
}

/**
 * `fill` for a panel that may hold the focus: when it did, the focus goes to the new
 * element with the same id (the re-drawn button), else to the panel's heading. Without it
 * a re-drawn panel drops the focus to the top of the page.
 */
export function refill(el, ...children) {
  const active = document.activeElement;
  const had = active && active !== el && el.contains(active);
  const id = had ? active.id : '';
  fill(el, ...children);
  if (had) focusOn((id && document.getElementById(id)) || el.querySelector('h1, h2, h3') || el);
  return el;
}

let uid = 0;
/** A labelled form field: returns { wrap, input }. */
export function field(label, attrs = {}, kind = 'input') {
  uid += 1;
  const id = attrs.id || `f${uid}`;
  const input = h(kind, { ...attrs, id });
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), input);
  return { wrap, input };
}

/** A polite status message in the page's toast area (also read by screen readers). */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toast');
  if (!box) return;
  const item = h('div', { class: `msg ${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** An inline message area for a form or panel. */
export function notice(el, text, kind = 'info') {
  fill(el, text ? h('p', { class: `msg ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text) : null);
}

export const points = (n) => `${Number(n).toLocaleString('en-US')} pts`;

export function when(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(undefined, {
    weekday: 'short', year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

/** `datetime-local` input value (local time) from an ISO instant, and back. */
export function toLocalInput(date) {
  const d = new Date(date);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
export const fromLocalInput = (v) => (v ? new Date(v).toISOString() : null);

export function countdown(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** A random key for idempotent mutations (one per intended action). */
export function key(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Runs `fn` while `button` shows it is busy; errors go to `onError`. */
export async function busy(button, fn, onError) {
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } catch (e) {
    if (onError) onError(e); else throw e;
    return undefined;
  } finally {
    button.disabled = was;
    button.removeAttribute('aria-busy');
  }
}

/**
 * Sizes a canvas to its container's width (at least 280 px) and `height`, sharp on
 * high-density screens: returns its 2D context scaled to CSS pixels, and the width.
 */
export function crispCanvas(canvas, height) {
  const width = Math.max(280, canvas.parentElement?.clientWidth || 600);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = width * dpr;
  canvas.height = height * dpr;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, width };
}
