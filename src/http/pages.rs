//! The HTML pages: the index and the GraphiQL playground.

use async_graphql::http::GraphiQLSource;
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

use super::Http;

pub(super) fn graphiql() -> Response {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .title("boxoffice")
            .finish(),
    )
    .into_response()
}

pub(super) async fn playground(State(http): State<Http>) -> Response {
    if http.state.config.playground {
        graphiql()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

pub(super) async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><title>boxoffice</title><h1>boxoffice</h1>\
         <p>GraphQL API at <code>/graphql</code>. Open the <a href=\"/playground\">playground</a>.</p>\
         <p><a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a> · <a href=\"/metrics\">/metrics</a></p>",
    )
}
