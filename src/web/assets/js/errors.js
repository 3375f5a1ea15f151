// What each error code of the API means to the person in front of the page.
// Codes are the contract (README "Errors"). A code alone does not say why: CONFLICT is
// "sales have not opened", "the performance is cancelled" or "already on the waiting
// list". So the server's message is shown too, in a fan's words where it is a known one
// (REASONS), as it is otherwise; BAD_USER_INPUT shows the server's words and the field.

const MESSAGES = {
  UNAUTHENTICATED: 'Please log in first (or log in again: your session ended).',
  FORBIDDEN: 'Your account may not do this.',
  NOT_FOUND: 'Not found: it may have been removed, or it is not public yet.',
  CONFLICT: 'Not possible right now.',
  SEAT_UNAVAILABLE: 'Someone was faster: one of those seats was just taken. Pick other seats.',
  SOLD_OUT: 'Sold out: no seats are left.',
  LIMIT_EXCEEDED: 'That is more seats than one person may hold for this performance.',
  HOLD_EXPIRED: 'Your hold expired and the seats were released. Pick seats again.',
  INSUFFICIENT_POINTS: 'Not enough points (or your wallet owes a debt): top up in your wallet, then try again.',
  QUEUE_REQUIRED: 'This performance sells through the waiting queue: enter the queue and wait for your turn.',
  RATE_LIMITED: 'Too many attempts. Wait a moment and try again.',
  UNAVAILABLE: 'The box office is busy or briefly unreachable. Try again in a moment.',
  INTERNAL: 'Something went wrong on our side. Try again.',
  // Refusals of a request before anything ran: the page asked for something it should not.
  GRAPHQL_PARSE_FAILED: 'The page sent a request the server could not read. Reload the page.',
  GRAPHQL_VALIDATION_FAILED: 'The page and the server disagree about this request. Reload the page.',
  QUERY_TOO_DEEP: 'This asks for too much at once.',
  QUERY_TOO_COSTLY: 'This asks for too much at once.',
  QUERY_TOO_LARGE: 'This asks for too much at once.',
  TIMEOUT: 'The server took too long to answer. Try again.',
  RESPONSE_TOO_LARGE: 'The answer is too large to send.',
  PERSISTED_QUERY_NOT_FOUND: 'The server does not know this request yet. Try again.',
  BAD_REQUEST: 'The page sent a request the server could not read. Reload the page.',
  TOO_MANY_SUBSCRIPTIONS: 'Too many live views are open at once. Close some tabs and try again.',
  NETWORK: 'Cannot reach the server. Check your connection.',
};

// Known server messages (src/booking, src/waitlist, src/queue, src/concerts, src/seats),
// said for a fan. Matched loosely: a reworded server message falls back to its own words.
const REASONS = [
  [/sales have not opened/i, 'Sales for this performance have not opened yet.'],
  [/sales (for this performance )?are closed/i, 'Sales for this performance are closed.'],
  [/(performance|schedule|concert) is cancelled/i, 'This performance is cancelled.'],
  [/not on sale/i, 'This concert is not on sale.'],
  [/show has started/i, 'The show has started: it can no longer be cancelled.'],
  [/reservation is cancelled/i, 'This reservation is cancelled.'],
  [/idempotency key was used/i, 'This was already asked with other details. Reload the page and try again.'],
  [/already on this performance's waiting list/i, 'You are already on the waiting list for this performance.'],
  [/seats are available now/i, 'Seats are available now: pick them on the map or use Best available.'],
  [/no waiting queue/i, 'This performance has no waiting queue: pick seats directly.'],
  [/add a schedule and its seat layout/i, 'Add a performance and build its seats before publishing.'],
  [/could not be settled/i, 'The payment could not be completed. Try again.'],
  [/admins cannot change their own role/i, 'Admins cannot change their own role.'],
  [/at most (\d+) seats per person[^;]*; you hold (\d+)/i, (m) => `At most ${m[1]} seats per person for this performance, and you already have ${m[2]}.`],
];

/** The server's reason, for a fan: a known message reworded, else the message itself. */
function reason(message) {
  const m = String(message || '').trim();
  if (!m || /^HTTP \d+$|^network error$/i.test(m)) return '';
  for (const [re, text] of REASONS) {
    const found = re.exec(m);
    if (found) return typeof text === 'function' ? text(found) : text;
  }
  return `${m.charAt(0).toUpperCase()}${m.slice(1)}${/[.!?]$/.test(m) ? '' : '.'}`;
}

// Codes whose message is the whole story: the server's words add nothing for a fan, or
// would say more than a fan should read (INTERNAL, UNAVAILABLE).
const SELF_EXPLAINED = new Set(['UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'SEAT_UNAVAILABLE', 'SOLD_OUT', 'HOLD_EXPIRED',
  'INSUFFICIENT_POINTS', 'QUEUE_REQUIRED', 'RATE_LIMITED', 'UNAVAILABLE', 'INTERNAL', 'NETWORK']);

export class ApiError extends Error {
  constructor(code, message, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

/** A sentence for the user about `error` (an ApiError or anything else thrown). */
export function explain(error) {
  const code = error?.code;
  if (code === 'BAD_USER_INPUT') {
    const f = error.extensions?.field;
    return f ? `${error.message} (${f})` : error.message;
  }
  if (/claim (link|token)/i.test(error?.message || '')) {
    // A claim link's refusals say what to do (ask for a new one, or log in).
    return error.message === 'invalid claim token'
      ? 'This link is not valid (mistyped, or replaced by a newer one). Ask the box office for the latest link.'
      : error.message.replace(/^./, (c) => c.toUpperCase()) + '.';
  }
  if (code === 'RATE_LIMITED' && error.extensions?.retryAfter) {
    return `Too many attempts. Try again in ${error.extensions.retryAfter} s.`;
  }
  if (code === 'UNAUTHENTICATED' && /invalid credentials/i.test(error.message || '')) {
    return 'Wrong email or password.';
  }
  if (code === 'CONFLICT') {
    const why = reason(error.message);
    return why && REASONS.some(([re]) => re.test(error.message)) ? why : `${MESSAGES.CONFLICT}${why ? ` ${why}` : ''}`;
  }
  if (MESSAGES[code] && !SELF_EXPLAINED.has(code)) {
    // LIMIT_EXCEEDED and codes added later: the general sentence, then the server's detail.
    const why = reason(error.message);
    return why && REASONS.some(([re]) => re.test(error.message)) ? why : `${MESSAGES[code]}${why ? ` ${why}` : ''}`;
  }
  return MESSAGES[code] || error?.message || String(error);
}

export const errorCodes = Object.keys(MESSAGES);
