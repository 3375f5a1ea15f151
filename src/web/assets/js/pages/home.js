// `/`: concerts on sale, searchable by text, category and dates, each with its
// performances and the seats they have left.
import { h, fill, field, notice, when, busy } from '../ui.js';
import { gql } from '../api.js';
import { explain } from '../errors.js';

const QUERY = `query Concerts($f: ConcertFilter, $after: String) {
  concerts(filter: $f, first: 20, after: $after) {
    edges { node { id title artist venue category description
      host { displayName }
      schedules { id startsAt salesOpenAt salesCloseAt onSale status remainingSeats capacity queueEnabled } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export function render(main) {
  const text = field('Search', { type: 'search', name: 'text', placeholder: 'Title, artist, venue…' });
  const category = field('Category', { name: 'category', placeholder: 'pop, rock, classical…' });
  const from = field('From', { type: 'date', name: 'from' });
  const to = field('Until', { type: 'date', name: 'to' });
  const only = h('input', { type: 'checkbox', id: 'only-available', name: 'onlyAvailable' });
  const go = h('button', { type: 'submit', class: 'primary' }, 'Search');
  const form = h('form', { class: 'search', role: 'search', 'aria-label': 'Find concerts' },
    text.wrap, category.wrap, from.wrap, to.wrap,
    h('div', { class: 'field check' }, only, h('label', { for: 'only-available' }, 'Only with seats left')), go);
  const msg = h('div');
  const list = h('ul', { class: 'concerts', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', hidden: true }, 'More concerts');
  fill(main, h('h1', {}, 'Concerts on sale'), form, msg, list, more);

  let after = null;
  const filter = () => {
    const f = { onlyAvailable: only.checked };
    if (text.input.value.trim()) { f.text = text.input.value.trim(); f.sort = 'RELEVANCE'; }
    if (category.input.value.trim()) f.category = category.input.value.trim().toLowerCase();
    if (from.input.value) f.startsFrom = new Date(`${from.input.value}T00:00:00`).toISOString();
    if (to.input.value) f.startsBefore = new Date(`${to.input.value}T23:59:59`).toISOString();
    return f;
  };
  const load = async (append) => {
    const d = await gql(QUERY, { f: filter(), after: append ? after : null });
    const { edges, pageInfo } = d.concerts;
    if (!append) fill(list);
    for (const { node } of edges) list.append(card(node));
    if (!append && edges.length === 0) list.append(h('li', { class: 'muted' }, 'No concerts match.'));
    after = pageInfo.endCursor;
    more.hidden = !pageInfo.hasNextPage;
    notice(msg, '');
  };
  form.onsubmit = (ev) => { ev.preventDefault(); busy(go, () => load(false), (e) => notice(msg, explain(e), 'error')); };
  more.onclick = () => busy(more, () => load(true), (e) => notice(msg, explain(e), 'error'));
  load(false).catch((e) => notice(msg, explain(e), 'error'));
}

function card(c) {
  const shows = c.schedules.filter((s) => s.status === 'SCHEDULED');
  return h('li', { class: 'card concert' },
    h('h2', {}, c.title),
    h('p', { class: 'meta' }, `${c.artist} · ${c.venue} · `, h('span', { class: 'badge' }, c.category)),
    c.description ? h('p', {}, c.description) : null,
    h('ul', { class: 'shows', 'aria-label': `Performances of ${c.title}` }, shows.map((s) => h('li', {},
      h('a', { href: `/schedules/${s.id}`, 'data-nav': true }, when(s.startsAt)),
      ' ',
      h('span', { class: s.remainingSeats > 0 ? 'ok' : 'muted' },
        s.remainingSeats > 0 ? `${s.remainingSeats} of ${s.capacity} seats left` : 'sold out'),
      s.onSale ? null : h('span', { class: 'muted' }, ` · sales ${new Date(s.salesOpenAt) > new Date() ? `open ${when(s.salesOpenAt)}` : 'closed'}`),
      s.queueEnabled ? h('span', { class: 'badge' }, 'queue') : null))),
    h('p', { class: 'muted small' }, `Hosted by ${c.host.displayName}`));
}
