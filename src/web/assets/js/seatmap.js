// Seat maps: the compact model read from `schedule { seatMap { ... } }` (or built from a
// layout being designed), and a canvas view of it that draws up to 50,000 seats, lets a
// mouse or the keyboard move over and pick seats, and redraws at most once a frame when
// live changes arrive.

export const AVAILABLE = 0;
export const HELD = 1;
export const SOLD = 2;
/** Kept back by the host (blockSeats): never for sale, drawn like a sold seat but hatched. */
export const BLOCKED = 3;
const LETTER = { A: AVAILABLE, H: HELD, S: SOLD, B: BLOCKED };
export const STATUS_OF = { AVAILABLE, HELD, SOLD, BLOCKED };
export const STATUS_NAME = ['available', 'held', 'sold', 'blocked'];
export const HELD_COLOR = '#b9bec6';
/** The smallest seat a finger can pick (CSS px; WCAG 2.5.8's minimum target size). */
export const TOUCH_SEAT = 24;
/** Canvas backing stores above this many pixels fail on phones (iOS: 16.7 M): past it the
 *  map is drawn at a lower resolution rather than not at all. */
const MAX_CANVAS_PIXELS = 16_000_000;
const MAX_CANVAS_SIDE = 32_000;
export const SOLD_COLOR = '#3c4043';
export const BLOCKED_COLOR = '#8d6e63';

/**
 * The latest compact map of a schedule as plain HTTP (`GET /schedules/{id}/seat-map`,
 * the same fields as GraphQL's `seatMap`): the browser's cache and a CDN keep it and
 * revalidate it with its ETag (a 304 costs the server almost nothing). Read without a
 * token, so it stays shareable; `fallback()` reads it another way when it is not there
 * for everyone (a draft, which only its host sees, through GraphQL).
 */
export async function readSeatMap(scheduleId, fallback) {
  try {
    const r = await fetch(`/schedules/${encodeURIComponent(scheduleId)}/seat-map`, { headers: { accept: 'application/json' } });
    if (r.ok) return await r.json();
  } catch { /* the fallback reports a network error its own way */ }
  return fallback();
}

/** The model of a `SeatMap` answer: one entry per seat in layout order. */
export function fromSeatMap(sm) {
  const count = sm.statuses.length;
  const ids = new Float64Array(count);
  let i = 0;
  for (let r = 0; r < sm.idRuns.length; r += 2) {
    for (let k = 0; k < sm.idRuns[r + 1]; k += 1) ids[i++] = sm.idRuns[r] + k;
  }
  const status = new Uint8Array(count);
  for (let k = 0; k < count; k += 1) status[k] = LETTER[sm.statuses[k]] ?? AVAILABLE;
  const index = new Map();
  for (let k = 0; k < count; k += 1) index.set(ids[k], k);
  return { version: sm.version, grades: sm.grades, ...rowsOf(sm.rows), ids, status, index };
}

/** The model of a layout being designed (SeatLayoutInput): every seat available. */
export function fromLayout(layout) {
  const gradeIndex = new Map(layout.grades.map((g, i) => [g.name, i]));
  const rows = [];
  for (const s of layout.sections) {
    for (const r of s.rows) rows.push({ section: s.name, row: r.label, seats: Math.max(0, r.seats | 0), grade: gradeIndex.get(r.grade) ?? -1 });
  }
  const built = rowsOf(rows);
  return { version: 0, grades: layout.grades, ...built, ids: null, status: new Uint8Array(built.count), index: new Map() };
}

function rowsOf(rows) {
  let start = 0;
  const out = rows.map((r) => {
    const row = { ...r, start };
    start += r.seats;
    return row;
  });
  // seat index -> row index, for labels and keyboard moves.
  const rowOf = new Uint32Array(start);
  out.forEach((r, ri) => rowOf.fill(ri, r.start, r.start + r.seats));
  return { rows: out, rowOf, count: start };
}

/** Seats per grade by status, counted from the model (for a fresh read). */
export function countByGrade(model) {
  const out = model.grades.map((g) => ({ grade: g.name, price: g.price, color: g.color, total: 0, available: 0, held: 0, sold: 0, blocked: 0 }));
  for (const r of model.rows) {
    const g = out[r.grade];
    if (!g) continue;
    for (let i = r.start; i < r.start + r.seats; i += 1) {
      g.total += 1;
      g[STATUS_NAME[model.status[i]]] += 1;
    }
  }
  return out;
}

export function describe(model, i) {
  const r = model.rows[model.rowOf[i]];
  const g = model.grades[r.grade];
  return { section: r.section, row: r.row, number: i - r.start + 1, grade: g?.name ?? '?', price: g?.price ?? 0, status: STATUS_NAME[model.status[i]] };
}

/**
 * A canvas view of a model. Options: `pickable` (seats can be chosen), `selection()`
 * (the chosen seat indexes), `mine()` (the viewer's own seats, marked with a dot),
 * `onPick(i)` (click / Enter / Space on a seat), `onCursor(i)` (the seat under the mouse
 * or keyboard cursor, for a text description).
 */
export class SeatCanvas {
  constructor(canvas, model, opts = {}) {
    this.canvas = canvas;
    this.opts = opts;
    this.cursor = -1;
    this.pending = false;
    // On a phone (a finger, or a narrow screen) a fitted map of a big venue has seats of
    // a few pixels: start zoomed so that a seat is big enough to tap, and let the box pan.
    this.touch = !!opts.pickable && !!window.matchMedia?.('(pointer: coarse), (max-width: 640px)').matches;
    this.setModel(model);
    if (this.touch && this.zoom > 1) {
      const box = this.canvas.parentElement;
      if (box) box.scrollLeft = Math.max(0, (this.width - box.clientWidth) / 2);
    }
    this.resize = () => { this.layout(); this.draw(); };
    window.addEventListener('resize', this.resize);
    if (opts.pickable) this.listen();
  }

  /** Zooms in (factor > 1) or out, keeping the cursor's seat in view. */
  setZoom(zoom) {
    this.zoom = Math.max(1, Math.min(16, zoom));
    this.layout();
    this.draw();
    if (this.cursor >= 0) this.setCursor(this.cursor);
    return this.zoom;
  }

  destroy() {
    window.removeEventListener('resize', this.resize);
  }

  setModel(model) {
    this.model = model;
    if (this.cursor >= model.count) this.cursor = -1;
    this.layout();
    this.draw();
  }

  layout() {
    const m = this.model;
    const width = Math.max(240, this.canvas.parentElement?.clientWidth || 600);
    const widest = m.rows.reduce((w, r) => Math.max(w, r.seats), 1);
    const labelW = 34;
    // Fit the widest row at zoom 1; zooming in multiplies the seat size (the box scrolls).
    const fit = Math.max(2, Math.min(26, Math.floor((width - labelW - 8) / widest)));
    if (this.zoom === undefined) this.zoom = this.touch && fit < TOUCH_SEAT ? TOUCH_SEAT / fit : 1;
    const cell = Math.min(48, Math.max(fit, Math.round(fit * (this.zoom || 1))));
    const gap = cell >= 8 ? 2 : cell >= 4 ? 1 : 0;
    const header = 16;
    const drawWidth = Math.max(width, labelW + widest * cell + 8);
    let y = 4;
    let section = null;
    this.rowY = new Float64Array(m.rows.length);
    this.rowX = new Float64Array(m.rows.length);
    this.headers = [];
    m.rows.forEach((r, ri) => {
      if (r.section !== section) {
        section = r.section;
        this.headers.push({ name: section, y: y + 12 });
        y += header;
      }
      this.rowY[ri] = y;
      this.rowX[ri] = labelW + Math.floor((drawWidth - labelW - r.seats * cell) / 2);
      y += cell;
    });
    Object.assign(this, { cell, gap, labelW, width: drawWidth, height: Math.max(40, y + 4) });
    const area = drawWidth * this.height;
    const dpr = Math.min(window.devicePixelRatio || 1, Math.sqrt(MAX_CANVAS_PIXELS / area),
      MAX_CANVAS_SIDE / Math.max(drawWidth, this.height));
    this.canvas.dataset.cell = String(cell);
    this.canvas.width = Math.round(drawWidth * dpr);
    this.canvas.height = Math.round(this.height * dpr);
    this.canvas.style.width = `${drawWidth}px`;
    this.canvas.style.height = `${this.height}px`;
    this.dpr = dpr;
  }

  /** Redraws on the next frame (many live changes cost one redraw). */
  invalidate() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    const { model: m, cell, gap } = this;
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#444';
    for (const hd of this.headers) ctx.fillText(hd.name, 4, hd.y);
    const colors = m.grades.map((g) => g.color);
    const size = cell - gap;
    let style = '';
    m.rows.forEach((r, ri) => {
      const y = this.rowY[ri];
      if (cell >= 10) {
        ctx.fillStyle = '#666';
        ctx.fillText(r.row, 4, y + cell - 2);
        style = '';
      }
      let x = this.rowX[ri];
      for (let i = r.start; i < r.start + r.seats; i += 1, x += cell) {
        const st = m.status[i];
        const c = st === HELD ? HELD_COLOR : st === SOLD ? SOLD_COLOR : st === BLOCKED ? BLOCKED_COLOR : (colors[r.grade] || '#888');
        if (c !== style) { ctx.fillStyle = c; style = c; }
        ctx.fillRect(x, y, size, size);
      }
    });
    // Selected seats and the cursor on top, outlined so they read on any grade colour.
    // The viewer's own held or bought seats: a white dot in the middle.
    if (size >= 4) {
      ctx.fillStyle = '#fff';
      const dot = Math.max(2, Math.floor(size / 3));
      for (const i of this.opts.mine?.() || []) {
        const { x, y } = this.rect(i);
        ctx.fillRect(x + (size - dot) / 2, y + (size - dot) / 2, dot, dot);
      }
    }
    ctx.lineWidth = Math.max(1, Math.min(3, cell / 5));
    for (const i of this.opts.selection?.() || []) this.mark(ctx, i, '#111', true);
    if (this.cursor >= 0) this.mark(ctx, this.cursor, '#0a58ca', false);
  }

  rect(i) {
    const ri = this.model.rowOf[i];
    const r = this.model.rows[ri];
    return { x: this.rowX[ri] + (i - r.start) * this.cell, y: this.rowY[ri] };
  }

  mark(ctx, i, color, fill) {
    const { x, y } = this.rect(i);
    const size = this.cell - this.gap;
    if (fill) {
      ctx.fillStyle = '#fff';
      ctx.fillRect(x, y, size, size);
      ctx.strokeStyle = color;
      ctx.strokeRect(x + 0.5, y + 0.5, Math.max(1, size - 1), Math.max(1, size - 1));
      ctx.fillStyle = color;
      const inset = Math.max(1, size / 4);
      ctx.fillRect(x + inset, y + inset, Math.max(1, size - 2 * inset), Math.max(1, size - 2 * inset));
    } else {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.strokeRect(x - 1.5, y - 1.5, size + 3, size + 3);
    }
  }

  /** The seat index at canvas coordinates (CSS pixels), or -1. */
  hit(px, py) {
    const { rowY, cell, model: m } = this;
    let lo = 0;
    let hi = m.rows.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (rowY[mid] + cell <= py) lo = mid + 1;
      else if (rowY[mid] > py) hi = mid - 1;
      else {
        const r = m.rows[mid];
        const k = Math.floor((px - this.rowX[mid]) / cell);
        return k >= 0 && k < r.seats ? r.start + k : -1;
      }
    }
    return -1;
  }

  setCursor(i) {
    this.cursor = i;
    this.opts.onCursor?.(i);
    this.invalidate();
    if (i >= 0) {
      // Keep the cursor in view inside the scrolling map box.
      const box = this.canvas.parentElement;
      const { x, y } = this.rect(i);
      if (box && (x < box.scrollLeft || x > box.scrollLeft + box.clientWidth - this.cell)) box.scrollLeft = x - box.clientWidth / 2;
      if (box && (y < box.scrollTop || y > box.scrollTop + box.clientHeight - this.cell)) box.scrollTop = y - box.clientHeight / 2;
    }
  }

  listen() {
    const c = this.canvas;
    const at = (ev) => {
      const b = c.getBoundingClientRect();
      return this.hit(ev.clientX - b.left, ev.clientY - b.top);
    };
    c.addEventListener('click', (ev) => {
      const i = at(ev);
      if (i < 0) return;
      this.setCursor(i);
      this.opts.onPick?.(i);
    });
    c.addEventListener('mousemove', (ev) => {
      const i = at(ev);
      if (i >= 0 && i !== this.cursor) this.setCursor(i);
    });
    c.addEventListener('focus', () => {
      if (this.cursor < 0) this.setCursor(this.firstAvailable(0, 1));
    });
    c.addEventListener('keydown', (ev) => {
      const m = this.model;
      if (m.count === 0) return;
      let i = this.cursor < 0 ? 0 : this.cursor;
      const ri = m.rowOf[i];
      const r = m.rows[ri];
      const sameSpot = (to) => {
        const t = m.rows[to];
        const frac = r.seats > 1 ? (i - r.start) / (r.seats - 1) : 0;
        return t.start + Math.round(frac * Math.max(0, t.seats - 1));
      };
      switch (ev.key) {
        case 'ArrowRight': i = Math.min(m.count - 1, i + 1); break;
        case 'ArrowLeft': i = Math.max(0, i - 1); break;
        case 'ArrowDown': if (ri + 1 < m.rows.length) i = sameSpot(ri + 1); break;
        case 'ArrowUp': if (ri > 0) i = sameSpot(ri - 1); break;
        case 'PageDown': i = sameSpot(Math.min(m.rows.length - 1, ri + 10)); break;
        case 'PageUp': i = sameSpot(Math.max(0, ri - 10)); break;
        case 'Home': i = r.start; break;
        case 'End': i = r.start + r.seats - 1; break;
        case '+': case '=': this.setZoom((this.zoom || 1) * 2); ev.preventDefault(); return;
        case '-': this.setZoom((this.zoom || 1) / 2); ev.preventDefault(); return;
        case 'n': case 'N': i = this.firstAvailable(i + 1, 1); break;
        case 'p': case 'P': i = this.firstAvailable(i - 1, -1); break;
        case 'Enter': case ' ':
          ev.preventDefault();
          if (this.cursor >= 0) this.opts.onPick?.(this.cursor);
          return;
        default: return;
      }
      ev.preventDefault();
      this.setCursor(i);
    });
  }

  /** The next available seat from `from` in direction `dir` (wrapping), or `from`. */
  firstAvailable(from, dir) {
    const m = this.model;
    for (let k = 0; k < m.count; k += 1) {
      const i = (((from + dir * k) % m.count) + m.count) % m.count;
      if (m.status[i] === AVAILABLE) return i;
    }
    return Math.max(0, Math.min(m.count - 1, from));
  }
}
