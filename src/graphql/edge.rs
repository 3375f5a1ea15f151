//! The schema's one extension: the stages every request passes through, in their order.
//!
//! Why one: once a schema has any extension, async-graphql sends every field it resolves
//! through the whole chain (`Extensions::resolve` builds a `ResolveInfo` with two registry
//! lookups and walks `NextResolve::run` through each extension's `resolve`: one boxed future
//! per extension per field), even when no extension does anything per field. With the five
//! this replaced (codes, field order, persisted queries, limits, depth), a profile of the
//! seat-map benchmark (a 20,000-seat compact map, 200 row objects of 4 fields per answer)
//! put about half of the server's CPU in that walk. One extension pays it once per field.
//!
//! What each stage knows stays in its module; this one only says the order, which is that
//! of the five extensions, outermost first:
//!
//! 1. codes (`refusal`): an error that leaves a stage without a code gets that stage's, so
//!    the refusals of every stage below carry one;
//! 2. field order (`order`): the answer in the request's order, after everything else;
//! 3. persisted queries (`apq`): a hash becomes its query before anything looks at it;
//! 4. the variables against the types the operation declares (`variables`); what one
//!    request may cost (`crate::limits`): document size, selections, root fields, text
//!    inputs, booking rate, the cost model; then the deadline and the response size;
//! 5. depth and the bounds of introspection (`depth`).

use std::sync::{Arc, OnceLock};

use async_graphql::{
    Request, Response, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
        NextRequest, NextSubscribe, NextValidation,
    },
    futures_util::stream::BoxStream,
    parser::types::ExecutableDocument,
};
use futures_util::StreamExt as _;

use super::{
    apq::{PersistedQueries, Sent},
    depth, documents, order, refusal,
};
use crate::{
    auth::Viewer,
    limits::{Admitted, Limiter},
};

/// The extension, as registered on the schema: what every request shares.
pub struct Edge(Arc<Shared>);

struct Shared {
    persisted_queries: PersistedQueries,
    limiter: Limiter,
    /// `GRAPHQL_INTROSPECTION`.
    introspection: bool,
}

impl Edge {
    pub fn new(persisted_queries: PersistedQueries, limiter: Limiter, introspection: bool) -> Self {
        Self(Arc::new(Shared {
            persisted_queries,
            limiter,
            introspection,
        }))
    }

    /// For tests of the limits: no booking rate, introspection on.
    #[cfg(test)]
    pub fn with_limits(limits: crate::limits::Limits) -> Self {
        Self::new(PersistedQueries::default(), Limiter::new(limits, None), true)
    }
}

impl ExtensionFactory for Edge {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest(Arc::new(State {
            shared: self.0.clone(),
            operation_name: OnceLock::new(),
            document: OnceLock::new(),
            shape: OnceLock::new(),
            admitted: OnceLock::new(),
            sent_query: std::sync::Mutex::new(None),
        })))
    }
}

/// One request's extension. Its state is shared with the stream of a subscription, whose
/// events come after the request's stages.
struct PerRequest(Arc<State>);

/// What one stage learns for a later one. Each is set by the one stage that learns it, once
/// per request, so a `set` never finds a value there.
struct State {
    shared: Arc<Shared>,
    operation_name: OnceLock<Option<String>>,
    /// The parsed document, to order the answers by (shared with the document cache when
    /// it came from there).
    document: OnceLock<Arc<ExecutableDocument>>,
    /// For the depth judged after validation.
    shape: OnceLock<depth::Shape>,
    /// For the limits of execution; `None` when no operation has the name.
    admitted: OnceLock<Option<Admitted>>,
    /// A persisted query sent with its hash: kept once the request passes validation.
    sent_query: std::sync::Mutex<Option<Sent>>,
}

impl State {
    fn operation_name(&self) -> Option<&str> {
        self.operation_name.get().and_then(Option::as_deref)
    }

    /// The response ordered, then coded: the two outermost stages.
    fn finish(&self, mut response: Response) -> Response {
        if let Some(doc) = self.document.get() {
            order::sort_response(&mut response.data, doc, self.operation_name());
        }
        refusal::tag_response(response)
    }
}

#[async_trait::async_trait]
impl Extension for PerRequest {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        self.0.finish(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let state = self.0.clone();
        next.run(ctx, stream)
            .map(move |response| state.finish(response))
            .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let shared = &self.0.shared;
        let (request, sent) = shared.persisted_queries.resolve(request)?;
        *self
            .0
            .sent_query
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = sent;
        let request = shared.limiter.prepare(request)?;
        let _ = self.0.operation_name.set(request.operation_name.clone());
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let state = &self.0;
        let parsed = async {
            // A document from the cache of accepted ones (`documents`) was counted when it
            // first came: the count depends on its text alone.
            let known = ctx.data_opt::<documents::Known>();
            if known.is_none() {
                state.shared.limiter.precount(query)?;
            }
            let doc = next.run(ctx, query, variables).await?;
            let name = state.operation_name();
            super::variables::check(&ctx.schema_env.registry, &doc, name, variables)?;
            let _ = state.shape.set(depth::shape(&doc, name));
            let admitted = state.shared.limiter.admit(
                &ctx.schema_env.registry,
                ctx.data_opt::<Viewer>(),
                &doc,
                name,
                variables,
            )?;
            let _ = state.admitted.set(admitted);
            let kept = known.map_or_else(|| Arc::new(doc.clone()), |k| k.0.clone());
            let _ = state.document.set(kept);
            Ok(doc)
        };
        parsed.await.map_err(refusal::tag_parse_error)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let shape = self.0.shape.get().copied().unwrap_or_default();
        next.run(ctx)
            .await
            .and_then(|result| {
                depth::judge(self.0.shared.introspection, shape, &result).map_err(|e| vec![e])?;
                // Parsed, within every limit and valid: a sent persisted query may be kept.
                let sent = self
                    .0
                    .sent_query
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                if let Some(sent) = sent {
                    self.0.shared.persisted_queries.keep(sent);
                }
                Ok(result)
            })
            .map_err(refusal::tag_validation_errors)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let admitted = self.0.admitted.get().copied().flatten();
        self.0
            .shared
            .limiter
            .execute(
                admitted,
                ctx.data_opt::<Arc<crate::limits::HeavyTurn>>()
                    .map(|turn| &**turn),
                next.run(ctx, operation_name),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::Value;
    use sha2::{Digest, Sha256};

    use super::*;

    fn code(response: &Response) -> Option<Value> {
        response.errors.first()?.extensions.as_ref()?.get("code").cloned()
    }

    #[test]
    fn a_hash_becomes_its_query_before_the_limits_and_the_codes_see_everything() {
        let limits = crate::limits::Limits {
            max_document_bytes: 30,
            ..Default::default()
        };
        let schema = crate::graphql::builder()
            .extension(Edge::with_limits(limits))
            .finish();
        let query = "{ __typename a: __typename b: __typename }";
        let by_hash = |text: &str| {
            let mut request = Request::new(text);
            let hash = hex::encode(Sha256::digest(query.as_bytes()));
            request.extensions.insert(
                "persistedQuery".into(),
                Value::from_json(serde_json::json!({ "version": 1, "sha256Hash": hash })).unwrap(),
            );
            request
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sent = runtime.block_on(schema.execute(by_hash(query)));
        assert_eq!(code(&sent), Some(Value::from("QUERY_TOO_LARGE")));
        // A refused query is not kept (issue 21, finding 7): its hash stays unknown.
        let stored = runtime.block_on(schema.execute(by_hash("")));
        assert_eq!(code(&stored), Some(Value::from("PERSISTED_QUERY_NOT_FOUND")));
        let unparsed = runtime.block_on(schema.execute("{"));
        assert_eq!(code(&unparsed), Some(Value::from("GRAPHQL_PARSE_FAILED")));
        let invalid = runtime.block_on(schema.execute("{ nope }"));
        assert_eq!(code(&invalid), Some(Value::from("GRAPHQL_VALIDATION_FAILED")));
    }
}
