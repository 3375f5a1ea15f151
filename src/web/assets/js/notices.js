// Notices: what boxoffice tells the signed-in user unasked, such as a webhook of theirs
// that was given up on. The unread ones sit above every page until marked read.
import { h, fill, busy, when, notice } from './ui.js';
import { gql } from './api.js';
import { explain } from './errors.js';

const UNREAD = 'query { notices(first: 5, unread: true) { edges { node { id kind message createdAt } } } }';
const MARK = 'mutation($u: ID!) { markNoticesRead(upTo: $u) }';

/** Shows the user's unread notices in #notices (nothing when signed out or none). */
export async function showNotices(user) {
  const box = document.getElementById('notices');
  if (!box) return;
  if (!user) { fill(box); return; }
  let edges;
  try {
    edges = (await gql(UNREAD)).notices.edges;
  } catch {
    return; // A notice is never worth an error on every page; the next page tries again.
  }
  if (!edges.length) { fill(box); return; }
  const msg = h('div');
  const done = h('button', { type: 'button' }, 'Mark read');
  // Notices come newest first: marking up to the first marks every one shown.
  done.onclick = () => busy(done, async () => {
    await gql(MARK, { u: edges[0].node.id });
    fill(box);
  }, (e) => notice(msg, explain(e), 'error'));
  fill(box, h('section', { class: 'msg info notices', 'aria-label': 'Notices' },
    h('strong', {}, edges.length === 1 ? 'A notice for you' : `${edges.length} notices for you`),
    h('ul', {}, ...edges.map(({ node }) => h('li', { 'data-kind': node.kind },
      node.message, ' ', h('span', { class: 'muted' }, when(node.createdAt))))),
    done, msg));
}
