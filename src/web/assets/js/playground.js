// GraphiQL for boxoffice, from the pinned builds served beside this file (no CDN).
// Queries and mutations go over HTTP POST with the headers from the headers editor;
// subscriptions go over WebSocket (graphql-transport-ws, the graphql-ws library), with the
// same headers sent as the connection_init payload, which is where boxoffice reads the
// `Authorization` of a socket. A change of headers opens a new socket.
(function () {
  'use strict';
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
    if (!isSubscription(params, opts)) return httpFetcher(params, opts);
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
    '# Signed-in requests: put {"Authorization": "Bearer <accessToken>"} in Headers below;',
    '# subscriptions send the same headers when their socket opens.',
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
