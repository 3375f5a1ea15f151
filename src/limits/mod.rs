//! What one GraphQL request may cost, and the checks that refuse the ones that cost more.
//!
//! Every number lives in [`Limits`] (defaults here, overridden by the `GRAPHQL_*` variables of
//! `config`). The checks run in the order that keeps each one cheap (the schema's one
//! extension, `graphql::edge`, calls each at its stage):
//!
//! 1. the document's size in bytes ([`Limiter::prepare`], before parsing);
//! 2. after parsing, the selections the document asks for with every fragment spread inlined,
//!    counted with one memoised pass over the fragments (`document`), so a document of
//!    fragments that each spread the previous one twice is refused in microseconds instead of
//!    being walked 2^22 times by validation; then the root fields of the operation;
//! 3. the cost of the operation (`cost`): lists weighed by page size or known bounds, database
//!    root fields dearer than scalars, every alias counted;
//! 4. during execution, a budget of seats read (a seat map costs its capacity, known only once
//!    the schedule row is loaded: [`charge_seats`]);
//! 5. a deadline for queries (not mutations: a mutation cut short could still take effect
//!    after its error was sent) and a cap on the response size.
//!
//! Each refusal is a GraphQL error with one of the codes of
//! [`Refusal`](crate::graphql::refusal::Refusal), the one list of refusal codes.

mod cost;
mod document;

/// The operation a request runs (by name, or the only one): also used to tell which
/// subscriptions may be shared (`live::groups`).
pub use document::operation;

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_graphql::{
    Context, ErrorExtensionValues, Request, Response, ServerError, ServerResult, Value, Variables,
    parser::types::{ExecutableDocument, OperationType},
    registry::Registry,
};

use crate::{auth::Viewer, graphql::refusal::Refusal};

pub use boxoffice_services::config::Limits;

/// A refusal as a GraphQL error: `extensions.code`, plus the limit and (when known) what
/// the request asked for, so a client can see by how much it missed.
pub fn refusal(code: Refusal, message: impl Into<String>, asked: Option<u64>, limit: u64) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code.code());
    if let Some(asked) = asked {
        ext.set("asked", asked);
    }
    ext.set("limit", limit);
    err.extensions = Some(ext);
    err
}

/// Seats read so far by one request, charged by the seat-map fields.
#[derive(Default)]
pub struct SeatBudget(AtomicU64);

/// Charges `seats` × `weight` to the request's budget; QUERY_TOO_COSTLY once it is spent.
/// Called by a resolver before it builds a seat list, with the schedule's capacity; the
/// weight is what one seat costs there (1 in the compact map, more as full objects).
pub fn charge_seats(ctx: &Context<'_>, seats: i32, weight: u64) -> async_graphql::Result<()> {
    let (Ok(budget), Ok(limits)) = (ctx.data::<Arc<SeatBudget>>(), ctx.data::<Arc<Limits>>()) else {
        // Requests built outside the HTTP layer (unit tests, export) carry no budget.
        return Ok(());
    };
    let seats = u64::try_from(seats).unwrap_or(0).saturating_mul(weight);
    let total = budget.0.fetch_add(seats, Ordering::Relaxed) + seats;
    if total > limits.max_seats_read {
        let e = refusal(
            Refusal::TooCostly,
            format!(
                "this request would read {total} seats of seat maps; the limit is {}",
                limits.max_seats_read
            ),
            Some(total),
            limits.max_seats_read,
        );
        let mut err = async_graphql::Error::new(e.message);
        err.extensions = e.extensions;
        return Err(err);
    }
    Ok(())
}

/// Booking mutations per user: a token bucket per account, on this instance.
pub struct BookingRate(
    governor::RateLimiter<
        i64,
        governor::state::keyed::DefaultKeyedStateStore<i64>,
        governor::clock::DefaultClock,
    >,
);

impl BookingRate {
    pub fn new(per_second: u32, burst: u32) -> Arc<Self> {
        let quota = governor::Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let rate = Arc::new(Self(governor::RateLimiter::keyed(quota)));
        // Forget accounts whose buckets are full again, so the map stays as small as the
        // set of recent bookers.
        let weak = Arc::downgrade(&rate);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                let Some(rate) = weak.upgrade() else { return };
                rate.0.retain_recent();
                rate.0.shrink_to_fit();
            }
        });
        rate
    }

    /// `Err(seconds to wait)` when `user` may not book `n` more times now.
    fn check(&self, user: i64, n: u32) -> Result<(), u64> {
        use governor::clock::Clock as _;
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match self.0.check_key_n(&user, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until
                // The limiter's own clock: a new one calibrates itself (cpuid and more),
                // which showed in the profile of a sale where many requests are refused.
                .wait_time_from(self.0.clock().now())
                .as_secs()
                .max(1)),
            // More at once than the burst allows: never.
            Err(_) => Err(60),
        }
    }
}

/// The root mutations that hold seats or queue orders, rate limited per user.
const BOOKING_FIELDS: &[&str] = &["reserveSeats", "placeOrder", "reserveBestAvailable"];
/// The root mutations that run argon2: one per request.
const PASSWORD_FIELDS: &[&str] = &["signUp", "logIn"];

/// [`Limits`] with what enforcing them takes on this instance: the per-user booking rate
/// and the permits of heavy queries. Also the control-character rule for text inputs
/// (`text`) and one password mutation per request.
pub struct Limiter {
    limits: Arc<Limits>,
    booking: Option<Arc<BookingRate>>,
    heavy: Arc<tokio::sync::Semaphore>,
}

/// What the parse-time checks learnt of the operation that will run, for its execution.
#[derive(Clone, Copy, Debug)]
pub struct Admitted {
    kind: OperationType,
    /// The estimated cost.
    cost: u64,
}

impl Limiter {
    pub fn new(limits: Limits, booking: Option<Arc<BookingRate>>) -> Self {
        Self {
            heavy: Arc::new(tokio::sync::Semaphore::new(limits.heavy_concurrency.max(1))),
            limits: Arc::new(limits),
            booking,
        }
    }

    /// Before parsing: refuses a document over the size limit, and gives the request the
    /// seat budget that resolvers charge.
    pub fn prepare(&self, request: Request) -> ServerResult<Request> {
        let limit = self.limits.max_document_bytes;
        if request.query.len() > limit {
            return Err(refusal(
                Refusal::TooLarge,
                format!(
                    "the query document is {} bytes; the limit is {limit}",
                    request.query.len()
                ),
                Some(request.query.len() as u64),
                limit as u64,
            ));
        }
        Ok(request
            .data(Arc::new(SeatBudget::default()))
            .data(self.limits.clone()))
    }

    /// Before async-graphql's own parse, which walks every fragment spread (recursion-depth
    /// and directive checks) and which a doubling document turns into millions of visits:
    /// the document is parsed here first, and only one that passes the count goes on to it.
    pub fn precount(&self, query: &str) -> ServerResult<()> {
        let counted = async_graphql::parser::parse_query(query)
            .map(|doc| document::inlined_selections(&doc, self.limits.max_selections));
        let limits = &self.limits;
        if let Ok(selections) = counted
            && selections > limits.max_selections
        {
            return Err(refusal(
                Refusal::TooLarge,
                format!(
                    "the query selects more than {} fields with its fragments expanded",
                    limits.max_selections
                ),
                None,
                limits.max_selections,
            ));
        }
        Ok(())
    }

    /// After parsing: the operation's root fields, text inputs, password and booking
    /// mutations, and estimated cost. `None` when no operation has that name (validation
    /// reports it).
    pub fn admit(
        &self,
        registry: &Registry,
        viewer: Option<&Viewer>,
        doc: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> ServerResult<Option<Admitted>> {
        let limits = &self.limits;
        let Some(op) = document::operation(doc, operation_name) else {
            return Ok(None);
        };
        let roots = document::root_fields(doc, &op.selection_set.node);
        if roots > limits.max_root_fields {
            return Err(refusal(
                Refusal::TooLarge,
                format!(
                    "the operation has {roots} root fields (aliases count); the limit is {}",
                    limits.max_root_fields
                ),
                Some(roots),
                limits.max_root_fields,
            ));
        }
        crate::text::check_request_strings(doc, variables)?;
        if op.ty == OperationType::Mutation {
            let root = &op.selection_set.node;
            if document::root_fields_named(doc, root, PASSWORD_FIELDS) > 1 {
                let mut err = refusal(
                    Refusal::TooLarge,
                    "send at most one signUp or logIn per request",
                    None,
                    1,
                );
                if let Some(ext) = err.extensions.as_mut() {
                    ext.set("code", crate::error::ErrorCode::BadUserInput.as_str());
                }
                return Err(err);
            }
            let bookings = document::root_fields_named(doc, root, BOOKING_FIELDS);
            if bookings > 0
                && let Some(rate) = &self.booking
                && let Some(Viewer::User(user)) = viewer
                && let Err(retry_after_s) = rate.check(user.id, u32::try_from(bookings).unwrap_or(u32::MAX))
            {
                let mut err = ServerError::new(
                    format!("too many bookings from this account; retry in {retry_after_s} s"),
                    None,
                );
                let mut ext = ErrorExtensionValues::default();
                ext.set("code", crate::error::ErrorCode::RateLimited.as_str());
                ext.set("retryAfter", retry_after_s);
                err.extensions = Some(ext);
                return Err(err);
            }
        }
        let cost = cost::operation_cost(registry, doc, op, variables);
        if cost > limits.max_cost {
            return Err(refusal(
                Refusal::TooCostly,
                format!(
                    "the query's estimated cost is {cost}; the limit is {} (ask for smaller pages, fewer aliases or less nesting)",
                    limits.max_cost
                ),
                Some(cost),
                limits.max_cost,
            ));
        }
        Ok(Some(Admitted { kind: op.ty, cost }))
    }

    /// Runs the execution `run` of an admitted operation: a query within its deadline (and,
    /// when heavy, in a turn: [`HeavyTurn`]), and any answer within the response size cap.
    /// A heavy query's turn passes to `turn` when the request has one, so that writing the
    /// answer out is counted in the turn as well.
    pub async fn execute(
        &self,
        admitted: Option<Admitted>,
        turn: Option<&HeavyTurn>,
        run: impl Future<Output = Response>,
    ) -> Response {
        let (response, permit) = match admitted {
            Some(Admitted {
                kind: OperationType::Query,
                cost,
            }) => {
                let timeout = self.limits.query_timeout;
                let heavy = cost > self.limits.heavy_cost;
                let run = async {
                    // A heavy query waits for its turn within the same deadline.
                    let permit = if heavy {
                        metrics::counter!("graphql_heavy_queries_total").increment(1);
                        let permit = self.heavy.clone().acquire_owned().await.ok();
                        permit.map(|permit| HeavyPermit::new(permit, &self.limits))
                    } else {
                        None
                    };
                    (run.await, permit)
                };
                match tokio::time::timeout(timeout, run).await {
                    Ok(ran) => ran,
                    Err(_) => {
                        return Response::from_errors(vec![refusal(
                            Refusal::Timeout,
                            format!("the query did not finish within {} ms", timeout.as_millis()),
                            None,
                            timeout.as_millis() as u64,
                        )]);
                    }
                }
            }
            _ => (run.await, None),
        };
        let cap = self.limits.max_response_bytes;
        let within_cap = within(&response.data, cap);
        if let (Some(permit), Some(turn)) = (permit, turn) {
            turn.keep(permit);
        }
        if !within_cap {
            // A mutation's effect stands; only its answer is withheld, and the error says so.
            let mut refused = Response::from_errors(vec![refusal(
                Refusal::ResponseTooLarge,
                format!("the response would exceed {cap} bytes; select less"),
                None,
                cap as u64,
            )]);
            refused.http_headers = response.http_headers;
            return refused;
        }
        response
    }
}

/// Where a heavy query's turn is kept until its answer is written: the HTTP handler puts
/// one in the request's data and drops it after serializing the response, which for a heavy
/// query (megabytes of seats) costs about as much as executing it. Without one (a query over
/// a WebSocket) the turn ends with the execution.
#[derive(Default)]
pub struct HeavyTurn(std::sync::OnceLock<HeavyPermit>);

impl HeavyTurn {
    /// A request runs one operation, so it keeps at most one permit.
    fn keep(&self, permit: HeavyPermit) {
        let _ = self.0.set(permit);
    }
}

/// The part of a heavy turn that never rests: the estimate calls some everyday pages heavy
/// (the web app's concert list, 2,064 against 2,000) that take a few milliseconds, and they
/// should not wait three times that for each other.
const FREE_TURN: Duration = Duration::from_millis(50);

/// One of the heavy permits, taken at `started`. When dropped it rests before it frees the
/// permit: the time the query held it beyond [`FREE_TURN`], times `100 / share - 1` (at most
/// the query deadline), so costly queries sent back to back, from however many accounts,
/// take at most `GRAPHQL_HEAVY_SHARE_PERCENT` of a worker per permit. A cap on how many run
/// at once alone still let one costly query after another keep a whole core busy: half of
/// this machine, during a sale.
struct HeavyPermit {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    started: std::time::Instant,
    limits: Arc<Limits>,
}

impl HeavyPermit {
    fn new(permit: tokio::sync::OwnedSemaphorePermit, limits: &Arc<Limits>) -> Self {
        Self {
            permit: Some(permit),
            started: std::time::Instant::now(),
            limits: limits.clone(),
        }
    }
}

/// How long a heavy turn that `held` its permit rests before freeing it.
fn rest(held: Duration, limits: &Limits) -> Duration {
    let share = u128::from(limits.heavy_share_percent.clamp(1, 100));
    let beyond = held.saturating_sub(FREE_TURN).as_micros();
    let rest = u64::try_from(beyond * (100 - share) / share).unwrap_or(u64::MAX);
    Duration::from_micros(rest).min(limits.query_timeout)
}

impl Drop for HeavyPermit {
    fn drop(&mut self) {
        let rest = rest(self.started.elapsed(), &self.limits);
        let permit = self.permit.take();
        if rest.is_zero() {
            return;
        }
        // Outside a runtime (never in the server) the permit is freed at once.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tokio::time::sleep(rest).await;
                drop(permit);
            });
        }
    }
}

/// Whether `value` serializes to at most `cap` bytes; stops counting at the cap.
fn within(value: &Value, cap: usize) -> bool {
    struct Counter {
        n: usize,
        cap: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n += buf.len();
            if self.n > self.cap {
                return Err(std::io::Error::other("over the cap"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter { n: 0, cap }, value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doubling_document_is_refused_before_validation_walks_it() {
        let mut doc = String::from("query { ...F22 }\nfragment F0 on Query { me { id } }\n");
        for i in 1..=22 {
            doc.push_str(&format!(
                "fragment F{i} on Query {{ ...F{p} ...F{p} }}\n",
                p = i - 1
            ));
        }
        let schema = crate::graphql::builder()
            .extension(crate::graphql::edge::Edge::with_limits(Limits::default()))
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let started = std::time::Instant::now();
        let response = runtime.block_on(schema.execute(doc.as_str()));
        let took = started.elapsed();
        let code = response.errors[0]
            .extensions
            .as_ref()
            .and_then(|e| e.get("code").cloned());
        assert_eq!(code, Some(Value::from("QUERY_TOO_LARGE")));
        assert!(took < Duration::from_millis(100), "{took:?}");
    }

    /// Starts `run` as an admitted query of `cost`, noting when it began.
    async fn query_at(
        limiter: &Limiter,
        cost: u64,
        turn: Option<&HeavyTurn>,
        busy: Duration,
    ) -> (Response, tokio::time::Instant) {
        let began = std::sync::Mutex::new(None);
        let admitted = Some(Admitted {
            kind: OperationType::Query,
            cost,
        });
        let response = limiter
            .execute(admitted, turn, async {
                *began.lock().unwrap() = Some(tokio::time::Instant::now());
                tokio::time::sleep(busy).await;
                Response::new(Value::Null)
            })
            .await;
        let began = began.into_inner().unwrap().expect("the query ran");
        (response, began)
    }

    #[tokio::test]
    async fn heavy_queries_back_to_back_take_only_their_share_of_a_worker() {
        let limits = Limits {
            heavy_share_percent: 25,
            ..Limits::default()
        };
        let heavy = limits.heavy_cost + 1;
        let limiter = Limiter::new(limits, None);
        let busy = Duration::from_millis(80);

        // Executed in 80 ms, its answer written in another 80 ms: the turn held 160 ms.
        let turn = HeavyTurn::default();
        let (response, _) = query_at(&limiter, heavy, Some(&turn), busy).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        tokio::time::sleep(busy).await;
        drop(turn);
        let freed = tokio::time::Instant::now();

        // A light query does not wait for the heavy turn.
        let (_, light_began) = query_at(&limiter, 1, None, Duration::ZERO).await;
        assert!(light_began - freed < Duration::from_millis(100));

        // The next heavy one starts after the turn rested three times what it held beyond
        // the free 50 ms: 3 × 110 ms (90 ms, had the turn ended with the execution).
        let (response, next_began) = query_at(&limiter, heavy, None, Duration::ZERO).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let waited = next_began - freed;
        assert!(
            waited >= Duration::from_millis(320),
            "the next heavy query began {waited:?} after the last one's answer"
        );
    }

    #[test]
    fn a_turn_rests_for_what_it_held_beyond_the_free_part_times_its_share() {
        let at = |share: u32| Limits {
            heavy_share_percent: share,
            ..Limits::default()
        };
        let ms = Duration::from_millis;
        assert_eq!(rest(ms(30), &at(25)), Duration::ZERO);
        assert_eq!(rest(ms(50), &at(25)), Duration::ZERO);
        assert_eq!(rest(ms(150), &at(25)), ms(300));
        assert_eq!(rest(ms(150), &at(50)), ms(100));
        assert_eq!(rest(ms(150), &at(100)), Duration::ZERO);
        // Never longer than a query's deadline: a turn stalled by a slow database does not
        // shut heavy queries out for minutes.
        assert_eq!(rest(Duration::from_secs(60), &at(1)), at(1).query_timeout);
    }

    #[test]
    fn response_size_is_counted_up_to_the_cap() {
        let v = Value::String("x".repeat(100));
        assert!(within(&v, 102));
        assert!(!within(&v, 101));
    }
}
