// What each error code of the API means to the person in front of the page.
// Codes are the contract (README "Errors"); messages from the server are shown as detail
// for BAD_USER_INPUT, where they name what is wrong.

const MESSAGES = {
  UNAUTHENTICATED: 'Please log in first (or log in again: your session ended).',
  FORBIDDEN: 'Your account may not do this.',
  NOT_FOUND: 'Not found: it may have been removed, or it is not public yet.',
  CONFLICT: 'Not possible right now: sales may not be open, the show may have started, or this was already done.',
  SEAT_UNAVAILABLE: 'Someone was faster: one of those seats was just taken. Pick other seats.',
  SOLD_OUT: 'Sold out: no seats are left.',
  LIMIT_EXCEEDED: 'That is more seats than one person may hold for this performance.',
  HOLD_EXPIRED: 'Your hold expired and the seats were released. Pick seats again.',
  INSUFFICIENT_POINTS: 'Not enough points (or your wallet owes a debt): top up in your wallet, then try again.',
  QUEUE_REQUIRED: 'This performance sells through the waiting queue: enter the queue and wait for your turn.',
  RATE_LIMITED: 'Too many attempts. Wait a moment and try again.',
  UNAVAILABLE: 'The box office is busy or briefly unreachable. Try again in a moment.',
  INTERNAL: 'Something went wrong on our side. Try again.',
  NETWORK: 'Cannot reach the server. Check your connection.',
};

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
  if (code === 'RATE_LIMITED' && error.extensions?.retryAfter) {
    return `Too many attempts. Try again in ${error.extensions.retryAfter} s.`;
  }
  if (code === 'UNAUTHENTICATED' && /invalid credentials/i.test(error.message || '')) {
    return 'Wrong email or password.';
  }
  return MESSAGES[code] || error?.message || String(error);
}

export const errorCodes = Object.keys(MESSAGES);
