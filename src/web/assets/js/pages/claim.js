// `/claim?token=...`: the guest of a complimentary ticket, invited by e-mail, sets the
// password of the account the host made for them (the host passed this link on) and lands
// on their tickets. The token leaves the address bar at once, so it is not kept in the
// history or shown over a shoulder; it works once, and the server says why when it does not.
import { h, fill, field, notice, busy } from '../ui.js';
import { explain } from '../errors.js';
import * as auth from '../auth.js';
import { navigate } from '../app.js';

export function render(main) {
  const token = new URLSearchParams(location.search).get('token') || '';
  history.replaceState(null, '', '/claim');
  const msg = h('div');
  if (!token) {
    fill(main, h('h1', {}, 'Claim your account'),
      h('p', {}, 'This page needs the link the box office gave you, with its token. Ask them for it again.'));
    return null;
  }
  const password = field('New password', { type: 'password', name: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const name = field('Your name (optional)', { name: 'displayName', autocomplete: 'nickname' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Set password and see my tickets');
  const form = h('form', { class: 'panel claim-form' }, msg, name.wrap, password.wrap, h('div', { class: 'row' }, submit));
  notice(msg, 'Passwords: at least 8 characters, letters with digits or symbols.');
  form.onsubmit = (ev) => {
    ev.preventDefault();
    busy(submit, async () => {
      await auth.claimAccount(token, password.input.value, name.input.value.trim());
      navigate('/tickets');
    }, (e) => notice(msg, explain(e), 'error'));
  };
  fill(main, h('h1', {}, 'Claim your account'),
    h('p', {}, 'You were given tickets. Choose a password for your account to see them; you log in with your e-mail and this password from now on.'),
    form);
  password.input.focus();
  return null;
}
