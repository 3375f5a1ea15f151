// GraphiQL for boxoffice, from the pinned builds served beside this file (no CDN).
// Queries and mutations go over HTTP POST with the headers from the headers editor;
// subscriptions go over WebSocket (graphql-transport-ws, the graphql-ws library), with the
// same headers sent as the connection_init payload, which is where boxoffice reads the
// `Authorization` of a socket. A change of headers opens a new socket.
//
// Signed in to the app, signed in here: the playground borrows the app's session (an app
// tab answers on the `boxoffice.session` channel with its access token, see auth.js), or,
// when no app page is open (the app was left for this page in the same tab), resumes the
// tab's session itself as the app does. Requests then carry that token unless the headers
// editor sets its own Authorization.
(function () {
  'use strict';
  var channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('boxoffice.session') : null;
  var borrowed = null;
  var own = null;
  var status = document.getElementById('session');

  function token() {
    if (borrowed && borrowed.accessToken && borrowed.expiresAt > Date.now() + 5000) return borrowed.accessToken;
    return own ? own.accessToken() : null;
  }
  function user() {
    if (token() && borrowed && borrowed.accessToken === token()) return borrowed.user;
    return own && own.accessToken() ? own.currentUser() : null;
  }
  function showStatus() {
    if (!status) return;
    var u = user();
    status.textContent = u
      ? 'Signed in as ' + u.displayName + ' (' + u.role + ') with the app\'s session: requests carry it unless Headers set an Authorization.'
      : 'Not signed in: log in in the app (it shares its session with this page), or put {"Authorization": "Bearer <accessToken>"} in Headers below.';
    status.dataset.user = u ? u.id : '';
  }
  var ready = new Promise(function (resolve) {
    if (!channel) { resolve(false); return; }
    channel.onmessage = function (ev) {
      if (!ev.data || ev.data.type !== 'session') return;
      borrowed = ev.data;
      showStatus();
      if (ev.data.accessToken) resolve(true);
    };
    channel.postMessage({ type: 'ask' });
    setTimeout(function () { resolve(false); }, 400);
  }).then(function (answered) {
    if (answered) return null;
    return import('./auth.js').then(function (auth) {
      return auth.start().then(function () { own = auth; auth.onChange(showStatus); });
    });
  }).catch(function () { /* no session: the headers editor still works */ }).then(showStatus);

  function withSession(opts) {
    return ready.then(function () {
      var headers = Object.assign({}, opts && opts.headers);
      var set = Object.keys(headers).some(function (k) { return k.toLowerCase() === 'authorization'; });
      var t = token();
      if (!set && t) headers.Authorization = 'Bearer ' + t;
      return Object.assign({}, opts, { headers: headers });
    });
  }
  var http = new URL('/graphql', window.location.href).href;
  var ws = http.replace(/^http/, 'ws');
  var httpFetcher = GraphiQL.createFetcher({ url: http });
  var socket = null;
  var socketHeaders = null;

  function client(headers) {
    var key = JSON.stringify(headers || {});
    if (socket && socketHeaders === key) return socket;
    if (socket) socket.dispose();
    socketHeaders = key;
    socket = graphqlWs.createClient({ url: ws, connectionParams: headers || {}, lazy: true, retryAttempts: 3 });
    return socket;
  }

  function isSubscription(params, opts) {
    var doc = opts && opts.documentAST;
    if (!doc) return /^\s*subscription\b/.test(params.query || '');
    var op = GraphiQL.GraphQL.getOperationAST(doc, params.operationName || undefined);
    return !!op && op.operation === 'subscription';
  }

  function fetcher(params, opts) {
    if (!isSubscription(params, opts)) return withSession(opts).then(function (o) { return httpFetcher(params, o); });
    return withSession(opts).then(function (o) { return subscription(params, o); });
  }

  function subscription(params, opts) {
    var c = client(opts && opts.headers);
    return {
      subscribe: function (observer) {
        var dispose = c.subscribe(params, {
          next: function (v) { observer.next(v); },
          error: function (e) {
            // A CloseEvent or an array of GraphQL errors: show something readable.
            if (Array.isArray(e)) observer.next({ errors: e });
            else if (e && typeof e.code === 'number') observer.next({ errors: [{ message: 'socket closed: ' + e.code + ' ' + (e.reason || '') }] });
            observer.complete();
          },
          complete: function () { observer.complete(); },
        });
        return { unsubscribe: dispose };
      },
    };
  }

  var defaultQuery = [
    '# boxoffice GraphQL playground. Docs: the book icon on the left.',
    '# Signed in to the app, signed in here (see the line above). Or put',
    '# {"Authorization": "Bearer <accessToken>"} in Headers below; subscriptions send',
    '# the same headers when their socket opens.',
    '',
    'query Concerts {',
    '  concerts(first: 5) {',
    '    edges { node { id title artist venue schedules { id startsAt remainingSeats } } }',
    '  }',
    '}',
    '',
  ].join('\n');

  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: defaultQuery,
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: 'headers',
    shouldPersistHeaders: false,
  }));
})();
