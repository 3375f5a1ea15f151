// `/wallet`: the fan's money. The balance and any debt, a top-up button, the top-ups
// (with a refund to the card while unspent) and the ledger, each entry saying what it
// was for. On the sandbox provider (development, the demo) top-ups are free, capped per
// day and labelled SANDBOX everywhere; with Toss Payments the top-up opens Toss's payment
// window, which comes back here with `paymentKey`, `orderId` and `amount` to confirm.
import { h, fill, field, notice, points, when, busy, key, toast } from '../ui.js';
import { gql } from '../api.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';

const WALLET = `{ wallet { points debt inTickets provider sandbox sandboxDailyLimit sandboxRemaining maxTopUp clientKey checkoutScript } }`;
const TOP_UP = 'id amount status orderId orderName provider sandbox failure createdAt confirmedAt';

// The server's own words where the generic ones would mislead (the sandbox's cap, a debt).
const say = (e) => (['LIMIT_EXCEEDED', 'INSUFFICIENT_POINTS', 'FORBIDDEN'].includes(e?.code) ? e.message : explain(e));

/**
 * Starts a top-up of `amount` points and sees it paid: on the sandbox it is confirmed at
 * once (resolves to the top-up); with Toss the browser leaves for the payment window and
 * comes back to `/wallet` (resolves to null). `back` is where the wallet sends the fan
 * after a confirmed payment (e.g. the seat page whose hold they were paying).
 */
export async function topUp(amount, { back = null, idempotencyKey = key('topup') } = {}) {
  const { startTopUp: t } = await gql(`mutation($a: Int!, $k: String!) { startTopUp(amount: $a, idempotencyKey: $k) { ${TOP_UP} } }`,
    { a: amount, k: idempotencyKey });
  if (t.status !== 'PENDING') return t;
  const { wallet } = await gql(WALLET);
  await openTossWindow(wallet, t, back);
  return null;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    if (window.TossPayments) { resolve(); return; }
    const s = h('script', { src });
    s.onload = resolve;
    s.onerror = () => reject(new Error('the payment window could not be loaded'));
    document.head.append(s);
  });
}

async function openTossWindow(wallet, t, back) {
  // The wallet page's own document allows Toss's script (its Content-Security-Policy):
  // from another page, come here first with a full page load.
  if (location.pathname !== '/wallet') {
    location.assign(`/wallet?${new URLSearchParams({ pay: t.orderId, ...(back ? { back } : {}) })}`);
    return;
  }
  // The provider's script, named by the server (`wallet.checkoutScript`).
  await loadScript(wallet.checkoutScript);
  const here = `${location.origin}/wallet${back ? `?${new URLSearchParams({ back })}` : ''}`;
  const payment = window.TossPayments(wallet.clientKey).payment({ customerKey: window.TossPayments.ANONYMOUS });
  await payment.requestPayment({
    method: 'CARD',
    amount: { currency: 'KRW', value: t.amount },
    orderId: t.orderId,
    orderName: t.orderName,
    successUrl: here,
    failUrl: here,
  });
}

export async function render(main) {
  if (!auth.signedIn()) {
    fill(main, h('h1', {}, 'Wallet'), h('p', {}, 'Log in to see your points and top up.'));
    return null;
  }
  const params = new URLSearchParams(location.search);
  const back = params.get('back');
  const msg = h('div', { id: 'wallet-msg' });
  const summary = h('section', { class: 'panel', 'aria-labelledby': 'balance-title' });
  const form = h('form', { class: 'row', id: 'top-up-form' });
  const topUps = h('section', { 'aria-labelledby': 'top-ups-title' });
  const ledger = h('section', { 'aria-labelledby': 'ledger-title' });
  fill(main, h('h1', {}, 'Wallet'), msg, summary, form, topUps, ledger);

  // Back from Toss's payment window: confirm (success) or say why not (fail).
  if (params.get('paymentKey') && params.get('orderId')) {
    try {
      const { confirmTopUp: t } = await gql(`mutation($p: String!, $o: String!, $a: Int!) { confirmTopUp(paymentKey: $p, orderId: $o, amount: $a) { ${TOP_UP} } }`,
        { p: params.get('paymentKey'), o: params.get('orderId'), a: Number(params.get('amount')) });
      notice(msg, t.status === 'CONFIRMED' ? `Paid: ${points(t.amount)} added.`
        : 'Payment received; the provider has not confirmed it yet. Your points appear as soon as it does.', 'ok');
    } catch (e) {
      notice(msg, say(e), 'error');
    }
    history.replaceState(null, '', back ? `/wallet?${new URLSearchParams({ back })}` : '/wallet');
  } else if (params.get('code') && params.get('message')) {
    notice(msg, `The payment was not made: ${params.get('message')}`, 'error');
    history.replaceState(null, '', '/wallet');
  }

  let wallet;
  const load = async () => {
    ({ wallet } = await gql(WALLET));
    const sandbox = wallet.sandbox ? h('p', { class: 'msg info', id: 'sandbox-label' }, h('strong', {}, 'SANDBOX'),
      ` — no money moves: top-ups are free for development and demos, up to ${points(wallet.sandboxDailyLimit)} a day (${points(wallet.sandboxRemaining)} left today).`) : null;
    fill(summary, h('h2', { id: 'balance-title' }, 'Balance'),
      h('p', { class: 'big' }, h('strong', { id: 'wallet-points' }, points(wallet.points))),
      h('p', { class: 'muted' }, `${points(wallet.inTickets)} in paid tickets`),
      wallet.debt > 0 ? h('p', { class: 'msg error', role: 'alert', id: 'wallet-debt' },
        `You owe ${points(wallet.debt)}: a payment was cancelled after its points were spent. Your next top-up pays it first; until then you cannot hold seats.`) : null,
      sandbox,
      back ? h('p', {}, h('a', { href: back, 'data-nav': true }, 'Back to your seats')) : null);
    const amount = field('Points to add', { type: 'number', name: 'amount', min: 1, max: wallet.maxTopUp, step: 1, required: true, value: params.get('amount') || 10000 });
    const go = h('button', { type: 'submit', class: 'primary', id: 'top-up' },
      wallet.provider === null ? 'Top-ups are off' : wallet.sandbox ? 'Top up (sandbox, free)' : 'Top up with Toss Payments');
    go.disabled = wallet.provider === null;
    fill(form, amount.wrap, go);
    form.onsubmit = (ev) => {
      ev.preventDefault();
      busy(go, async () => {
        const t = await topUp(Number(amount.input.value), { back });
        if (t) {
          toast(`${points(t.amount)} added${t.sandbox ? ' (sandbox)' : ''}.`, 'ok');
          await auth.reloadUser().catch(() => {});
          await load();
        }
      }, (e) => notice(msg, say(e), 'error'));
    };
    await Promise.all([loadTopUps(), loadLedger()]);
  };

  async function loadTopUps() {
    const { myTopUps } = await gql(`{ myTopUps(first: 20) { nodes { ${TOP_UP} } } }`);
    fill(topUps, h('h2', { id: 'top-ups-title' }, 'Top-ups'),
      myTopUps.nodes.length === 0 ? h('p', { class: 'muted' }, 'None yet.') : h('ul', { class: 'top-ups' }, myTopUps.nodes.map((t) => {
        const refund = t.status === 'CONFIRMED' ? h('button', { type: 'button', class: 'link' }, 'Refund to card') : null;
        if (refund) {
          refund.onclick = () => busy(refund, async () => {
            await gql('mutation($t: ID!) { refundTopUp(topUpId: $t) { id status } }', { t: t.id });
            toast('Refunded to the card.', 'ok');
            await auth.reloadUser().catch(() => {});
            await load();
          }, (e) => notice(msg, say(e), 'error'));
        }
        return h('li', {}, `${points(t.amount)} · `, h('span', { class: `badge ${t.status.toLowerCase()}` }, t.status),
          t.sandbox ? h('span', { class: 'badge' }, 'SANDBOX') : null, ` · ${when(t.createdAt)} `,
          t.failure ? h('span', { class: 'muted' }, t.failure) : null, refund);
      })));
  }

  let after = null;
  const entries = h('ul', { class: 'ledger', id: 'ledger' });
  const more = h('button', { type: 'button', hidden: true }, 'Older entries');
  async function loadLedger(append = false) {
    if (!append) { after = null; entries.replaceChildren(); }
    const { pointHistory } = await gql('query($a: String) { pointHistory(first: 20, after: $a) { nodes { id kind amount balanceAfter description createdAt } pageInfo { hasNextPage endCursor } } }', { a: after });
    for (const e of pointHistory.nodes) {
      entries.append(h('li', {}, h('strong', {}, `${e.amount > 0 ? '+' : ''}${points(e.amount)}`), ` ${e.description} · balance ${points(e.balanceAfter)} · ${when(e.createdAt)}`));
    }
    after = pointHistory.pageInfo.endCursor;
    more.hidden = !pointHistory.pageInfo.hasNextPage;
    fill(ledger, h('h2', { id: 'ledger-title' }, 'History'), entries.childElementCount ? entries : h('p', { class: 'muted' }, 'No entries yet.'), more);
  }
  more.onclick = () => busy(more, () => loadLedger(true), (e) => notice(msg, say(e), 'error'));

  try {
    await load();
    // Sent here from a seat page to pay a top-up with the provider's window.
    const pay = params.get('pay');
    if (pay && !wallet.sandbox) {
      const { myTopUps } = await gql(`{ myTopUps(first: 20) { nodes { ${TOP_UP} } } }`);
      const t = myTopUps.nodes.find((n) => n.orderId === pay && n.status === 'PENDING');
      if (t) await openTossWindow(wallet, t, back);
    }
  } catch (e) {
    notice(msg, say(e), 'error');
  }
  return null;
}
