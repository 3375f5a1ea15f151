//! Subscriptions executed once per event for every socket that asked the same thing.
//!
//! async-graphql runs a subscription's selection set once per subscriber and event: with
//! 15,000 sockets watching one sale, that is 15,000 executions and serializations of the
//! same answer ten times a second. Here the sockets of an instance whose subscriptions are
//! identical — same document, operation name, variables and extensions, same audience
//! (anonymous or signed in) — form a group. The group runs one execution; each event is
//! executed and serialized once, and the bytes (`Arc<str>`) are shared by every member,
//! whose socket only wraps them in a frame with its own operation id.
//!
//! Only subscriptions whose events cannot depend on the socket beyond that key are grouped
//! ([`SHARED_FIELDS`]); every other one keeps running per socket. Each member still gets
//! its own first event (the current state, which depends on when it joined) from an
//! execution of its own, which also runs the limits of the request for that socket.
//!
//! Slow sockets cannot hold the others back: the group sends into a bounded broadcast
//! channel and never waits for a member. A member that falls more than [`BUFFER`] events
//! behind is handled as a lagging per-socket subscriber was: it gets a fresh current state
//! marked `resync`, and goes on from there.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use async_graphql::{Request, Response, parser::types::Selection};
use futures_util::{Stream, StreamExt as _, stream::BoxStream};
use tokio::sync::{broadcast, watch};

use crate::auth::Viewer;

/// Root fields whose events depend only on their arguments: their first event is the state
/// when the subscriber joined, every later one is the same for everyone, as long as the
/// selection reads none of [`VIEWER_FIELDS`].
pub const SHARED_FIELDS: &[&str] = &["seatChanges"];

/// Fields reachable from a shared root whose value depends on who asks (a
/// `seatChanges { schedule { waitlistLength } }` is for the schedule's host and admins
/// only): a subscription that selects one, anywhere in its document, runs per socket.
pub const VIEWER_FIELDS: &[&str] = &["waitlistLength"];

/// Whether any selection of the document (its operations and fragments) names a field of
/// [`VIEWER_FIELDS`].
fn reads_viewer(doc: &async_graphql::parser::types::ExecutableDocument) -> bool {
    fn set(s: &async_graphql::parser::types::SelectionSet) -> bool {
        s.items.iter().any(|item| match &item.node {
            Selection::Field(f) => {
                VIEWER_FIELDS.contains(&f.node.name.node.as_str()) || set(&f.node.selection_set.node)
            }
            Selection::InlineFragment(i) => set(&i.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    doc.operations
        .iter()
        .any(|(_, op)| set(&op.node.selection_set.node))
        || doc.fragments.values().any(|f| set(&f.node.selection_set.node))
}

/// Events buffered per group; a member further behind is told to resync.
pub const BUFFER: usize = 16;

/// What makes two subscriptions the same.
#[derive(Clone, Debug)]
pub struct GroupKey {
    query: String,
    operation_name: Option<String>,
    /// Variables and extensions as JSON text: equal text, equal answers. (Two spellings of
    /// the same variables only make two groups.) Without the variable given as
    /// `sinceVersion`: it changes only a member's first event, which is its own.
    variables: String,
    extensions: String,
    /// Anonymous or signed in: a guard may tell them apart; the selection reads nothing
    /// more of the viewer.
    signed_in: bool,
    /// All the variables of the request, for [`request`](Self::request): not part of what
    /// makes two subscriptions the same.
    all_variables: String,
}

impl GroupKey {
    fn identity(&self) -> (&str, Option<&str>, &str, &str, bool) {
        (
            &self.query,
            self.operation_name.as_deref(),
            &self.variables,
            &self.extensions,
            self.signed_in,
        )
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for GroupKey {}

impl std::hash::Hash for GroupKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

/// The argument of a shared root field that only moves its first event.
const START_ARGUMENT: &str = "sinceVersion";

impl GroupKey {
    /// The key of a request, if its events may be shared; `None` runs it per socket.
    pub fn of(request: &Request, viewer: &Viewer) -> Option<Self> {
        // A persisted query sent by hash alone: its document is not known here.
        if request.query.is_empty() || !request.uploads.is_empty() {
            return None;
        }
        let doc = async_graphql::parser::parse_query(&request.query).ok()?;
        let name = request.operation_name.as_deref();
        let op = crate::limits::operation(&doc, name)?;
        if op.ty != async_graphql::parser::types::OperationType::Subscription {
            return None;
        }
        // Exactly one root field, a shared one: its events are then one stream whose
        // versions the group can follow.
        let [root] = op.selection_set.node.items.as_slice() else {
            return None;
        };
        let Selection::Field(field) = &root.node else {
            return None;
        };
        if !SHARED_FIELDS.contains(&field.node.name.node.as_str()) || reads_viewer(&doc) {
            return None;
        }
        // Members starting from different versions share the events after their start.
        let mut variables = request.variables.clone();
        for (name, value) in &field.node.arguments {
            if name.node == START_ARGUMENT
                && let async_graphql_value::Value::Variable(var) = &value.node
            {
                variables.remove(var);
            }
        }
        Some(Self {
            query: request.query.clone(),
            operation_name: request.operation_name.clone(),
            variables: serde_json::to_string(&variables).ok()?,
            extensions: serde_json::to_string(&request.extensions).ok()?,
            signed_in: matches!(viewer, Viewer::User(_)),
            all_variables: serde_json::to_string(&request.variables).ok()?,
        })
    }

    /// A fresh request with this key's document, variables and extensions (no data).
    pub fn request(&self) -> Request {
        let mut r = Request::new(self.query.clone());
        r.operation_name.clone_from(&self.operation_name);
        if let Ok(v) = serde_json::from_str(&self.all_variables) {
            r.variables = v;
        }
        if let Ok(e) = serde_json::from_str(&self.extensions) {
            r.extensions = e;
        }
        r
    }
}

/// Set by a shared resolver for each event it yields, read by whoever runs the execution
/// right after the event's response comes out (a subscription's events are executed one
/// at a time): the event's version and whether it says resync.
#[derive(Default)]
pub struct EventProbe(Mutex<Option<(i64, bool)>>, Mutex<Option<std::time::Instant>>);

impl EventProbe {
    pub fn set(&self, version: i64, resync: bool) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((version, resync));
    }

    /// When the event's first change reached this instance (for `live_delivery_seconds`).
    pub fn set_arrived(&self, at: Option<std::time::Instant>) {
        *self.1.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }

    fn take_arrived(&self) -> Option<std::time::Instant> {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn take(&self) -> Option<(i64, bool)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Request data asking a shared resolver to mark its first event `resync`: the member
/// lagged and may have missed events.
pub struct FirstIsResync;

/// One execution of a request: its responses, and the probe its resolver fills in.
pub type Execution = (BoxStream<'static, Response>, Arc<EventProbe>);

/// One event of a group, serialized once.
#[derive(Debug)]
pub struct SharedEvent {
    /// The response as JSON: the `payload` of every member's frame.
    pub payload: Arc<str>,
    version: Option<i64>,
    resync: bool,
    /// When its first change reached this instance: a socket that writes the event
    /// records how long it took since (`live_delivery_seconds`, the server's share of a
    /// delivery, apart from whatever delays the client).
    pub arrived: Option<std::time::Instant>,
}

#[derive(Clone, Debug)]
enum Shared {
    Event(Arc<SharedEvent>),
    /// The group's execution ended (the hub is gone): members complete.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The execution has not yet produced its first event.
    Starting,
    Live,
    /// The execution failed at once or ended: members run on their own.
    Ended,
}

/// What a member's stream yields to its socket.
pub enum Out {
    /// A response of the member's own execution (its first event, or everything when the
    /// group could not run).
    Own(Box<Response>),
    /// A shared event (its payload serialized once for every member).
    Shared(Arc<SharedEvent>),
}

/// The running groups of this instance, by key.
#[derive(Default)]
pub struct Groups {
    map: Mutex<HashMap<GroupKey, Weak<Group>>>,
    /// Events executed for a group (once each, whatever the number of members).
    executed: std::sync::atomic::AtomicU64,
}

pub struct Group {
    key: GroupKey,
    groups: Weak<Groups>,
    tx: broadcast::Sender<Shared>,
    phase: watch::Receiver<Phase>,
    task: tokio::task::AbortHandle,
}

impl Drop for Group {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(groups) = self.groups.upgrade() {
            let mut map = groups.lock();
            if map.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
                map.remove(&self.key);
            }
        }
    }
}

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GroupKey, Weak<Group>>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Groups with members (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().values().filter(|w| w.strong_count() > 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events executed for groups so far, on this instance.
    pub fn executed(&self) -> u64 {
        self.executed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Joins the group of `key`, starting it with `start` if there is none. The stream
    /// yields the member's responses: its own first event from `own(false)`, then the
    /// group's events. `own(true)` is asked for a fresh state marked resync after a lag.
    /// Dropping the stream leaves the group; the last member to leave stops it.
    pub fn join<S, O>(
        self: &Arc<Self>,
        key: GroupKey,
        start: S,
        own: O,
    ) -> impl Stream<Item = Out> + Send + use<S, O>
    where
        S: FnOnce() -> Execution,
        O: Fn(bool) -> Execution + Send + 'static,
    {
        let group = {
            let mut map = self.lock();
            // A group that ended (its first answer was an error, perhaps a passing one)
            // is not joined: its members run alone, and the next one starts afresh.
            match map.get(&key).and_then(Weak::upgrade) {
                Some(g) if *g.phase.borrow() != Phase::Ended => g,
                _ => {
                    let g = self.start(key.clone(), start());
                    map.insert(key, Arc::downgrade(&g));
                    g
                }
            }
        };
        // Subscribed before the member's own first event is read: nothing sent after that
        // read can be missed.
        let rx = group.tx.subscribe();
        member(group, rx, own)
    }

    fn start(self: &Arc<Self>, key: GroupKey, (mut stream, probe): Execution) -> Arc<Group> {
        let (tx, _) = broadcast::channel(BUFFER);
        let (phase_tx, phase) = watch::channel(Phase::Starting);
        let sender = tx.clone();
        let groups = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            // The first event is the state when the group started: each member reads its
            // own. It also tells whether the subscription runs at all.
            match stream.next().await {
                Some(first) if first.is_ok() => {
                    probe.take();
                    phase_tx.send_replace(Phase::Live);
                }
                _ => {
                    phase_tx.send_replace(Phase::Ended);
                    return;
                }
            }
            while let Some(response) = stream.next().await {
                let (version, resync) = probe.take().map_or((None, false), |(v, r)| (Some(v), r));
                let arrived = probe.take_arrived();
                let payload = match serde_json::to_string(&response) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "serializing a shared subscription event");
                        continue;
                    }
                };
                if let Some(g) = groups.upgrade() {
                    g.executed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                metrics::counter!("live_group_events_total").increment(1);
                let _ = sender.send(Shared::Event(Arc::new(SharedEvent {
                    payload: payload.into(),
                    version,
                    resync,
                    arrived,
                })));
            }
            phase_tx.send_replace(Phase::Ended);
            let _ = sender.send(Shared::End);
        });
        Arc::new(Group {
            key,
            groups: Arc::downgrade(self),
            tx,
            phase,
            task: task.abort_handle(),
        })
    }
}

/// Where a member is.
enum Step {
    /// Waiting for the group to run; then reads its own state (`resync`: after a lag).
    Own {
        resync: bool,
    },
    /// Following the group; events up to `after` are already in the member's state.
    Follow {
        after: Option<i64>,
    },
    /// The group could not run: the member's own execution, to its end.
    Alone(BoxStream<'static, Response>),
    Done,
}

fn member<O>(group: Arc<Group>, rx: broadcast::Receiver<Shared>, own: O) -> impl Stream<Item = Out> + Send
where
    O: Fn(bool) -> Execution + Send + 'static,
{
    struct State<O> {
        group: Arc<Group>,
        rx: broadcast::Receiver<Shared>,
        own: O,
        step: Step,
    }
    let state = State {
        group,
        rx,
        own,
        step: Step::Own { resync: false },
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            match std::mem::replace(&mut s.step, Step::Done) {
                Step::Done => return None,
                Step::Alone(mut stream) => {
                    let next = stream.next().await?;
                    s.step = Step::Alone(stream);
                    return Some((Out::Own(Box::new(next)), s));
                }
                Step::Own { resync } => {
                    let mut phase = s.group.phase.clone();
                    let phase = phase
                        .wait_for(|p| *p != Phase::Starting)
                        .await
                        .map_or(Phase::Ended, |p| *p);
                    if phase == Phase::Ended {
                        s.step = Step::Alone((s.own)(resync).0);
                        continue;
                    }
                    let (mut stream, probe) = (s.own)(resync);
                    let first = stream.next().await?;
                    if first.is_ok() {
                        s.step = Step::Follow {
                            after: probe.take().map(|(v, _)| v),
                        };
                    } else {
                        // Refused for this socket (a limit, a schedule gone): the error
                        // ends it.
                        s.step = Step::Done;
                    }
                    return Some((Out::Own(Box::new(first)), s));
                }
                Step::Follow { after } => {
                    s.step = Step::Follow { after };
                    match s.rx.recv().await {
                        Ok(Shared::Event(e)) => {
                            let seen = matches!((after, e.version), (Some(a), Some(v)) if v <= a);
                            if seen && !e.resync {
                                continue;
                            }
                            return Some((Out::Shared(e), s));
                        }
                        Ok(Shared::End) | Err(broadcast::error::RecvError::Closed) => return None,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            metrics::counter!("live_lagged_events_total").increment(n);
                            // Skip ahead to now, and say so.
                            s.rx = s.rx.resubscribe();
                            s.step = Step::Own { resync: true };
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A fake shared execution: a first event, then whatever is sent on `events`.
    fn fake(events: &broadcast::Sender<i64>, executions: Arc<std::sync::atomic::AtomicU64>) -> Execution {
        let probe = Arc::new(EventProbe::default());
        let p = probe.clone();
        let rx = events.subscribe();
        let first = futures_util::stream::once(async { 0 });
        let later = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(v) => return Some((v, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let stream = first
            .chain(later)
            .map(move |v| {
                executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                p.set(v, false);
                Response::new(async_graphql::Value::from(v))
            })
            .boxed();
        (stream, probe)
    }

    fn key(q: &str) -> GroupKey {
        GroupKey::of(
            &Request::new(format!(
                "subscription {{ seatChanges(scheduleId: \"{q}\") {{ version }} }}"
            )),
            &Viewer::Anonymous,
        )
        .unwrap()
    }

    fn payload(out: Out) -> String {
        match out {
            Out::Shared(p) => p.payload.to_string(),
            Out::Own(r) => serde_json::to_string(&*r).unwrap(),
        }
    }

    #[test]
    fn only_single_shared_root_fields_are_grouped() {
        let anon = Viewer::Anonymous;
        let shared = Request::new("subscription { seatChanges(scheduleId: \"1\") { version } }");
        assert!(GroupKey::of(&shared, &anon).is_some());
        let two = Request::new(
            "subscription { a: seatChanges(scheduleId: \"1\") { version } b: seatChanges(scheduleId: \"2\") { version } }",
        );
        assert!(GroupKey::of(&two, &anon).is_none());
        let other = Request::new("subscription { queuePosition(scheduleId: \"1\") { position } }");
        assert!(GroupKey::of(&other, &anon).is_none());
        let query = Request::new("query { seatChanges }");
        assert!(GroupKey::of(&query, &anon).is_none());
        let hash_only = Request::new("");
        assert!(GroupKey::of(&hash_only, &anon).is_none());
        // The schedule in an event is shared, but not what only its host may read.
        let schedule = Request::new(
            "subscription { seatChanges(scheduleId: \"1\") { schedule { id version remainingSeats } } }",
        );
        assert!(GroupKey::of(&schedule, &anon).is_some());
        let host_only = Request::new(
            "subscription { seatChanges(scheduleId: \"1\") { schedule { id waitlistLength } } }",
        );
        assert!(GroupKey::of(&host_only, &anon).is_none());
        let in_fragment = Request::new(
            "subscription { seatChanges(scheduleId: \"1\") { schedule { ...S } } } fragment S on Schedule { waitlistLength }",
        );
        assert!(GroupKey::of(&in_fragment, &anon).is_none());
    }

    #[test]
    fn members_starting_from_different_versions_share_a_group_but_keep_their_start() {
        let anon = Viewer::Anonymous;
        let q =
            "subscription($s: ID!, $v: Int) { seatChanges(scheduleId: $s, sinceVersion: $v) { version } }";
        let at = |v: i64| {
            Request::new(q).variables(async_graphql::Variables::from_json(
                serde_json::json!({ "s": "1", "v": v }),
            ))
        };
        let (a, b) = (
            GroupKey::of(&at(3), &anon).unwrap(),
            GroupKey::of(&at(9), &anon).unwrap(),
        );
        assert_eq!(a, b);
        let other = Request::new(q).variables(async_graphql::Variables::from_json(
            serde_json::json!({ "s": "2", "v": 3 }),
        ));
        assert_ne!(a, GroupKey::of(&other, &anon).unwrap());
        // Each member's own execution still starts from its own version.
        assert_eq!(
            b.request().variables.get(&async_graphql::Name::new("v")),
            Some(&async_graphql::Value::from(9))
        );
    }

    #[tokio::test]
    async fn a_stalled_member_does_not_hold_back_the_others_and_is_told_to_resync() {
        let groups = Arc::new(Groups::default());
        let (events, _) = broadcast::channel(1024);
        let executions = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let start = || fake(&events, executions.clone());
        let own = {
            let events = events.clone();
            let executions = executions.clone();
            move |_resync| fake(&events, executions.clone())
        };
        let mut fast = Box::pin(groups.join(key("1"), start, own.clone()));
        let mut stalled = Box::pin(groups.join(key("1"), || unreachable!("the group runs"), own));
        assert_eq!(groups.len(), 1);
        assert_eq!(payload(fast.next().await.unwrap()), r#"{"data":0}"#);
        assert_eq!(payload(stalled.next().await.unwrap()), r#"{"data":0}"#);
        // The stalled member reads nothing while far more events than the buffer pass.
        let n = (BUFFER * 4) as i64;
        for v in 1..=n {
            events.send(v).unwrap();
            let got = tokio::time::timeout(Duration::from_secs(1), fast.next())
                .await
                .expect("the fast member is not held back")
                .unwrap();
            assert_eq!(payload(got), format!(r#"{{"data":{v}}}"#));
        }
        // Once it reads again it gets a fresh state of its own (here the fake's 0), then
        // the group's events.
        assert!(matches!(stalled.next().await.unwrap(), Out::Own(_)));
        events.send(n + 1).unwrap();
        assert_eq!(
            payload(fast.next().await.unwrap()),
            format!(r#"{{"data":{}}}"#, n + 1)
        );
        assert_eq!(
            payload(stalled.next().await.unwrap()),
            format!(r#"{{"data":{}}}"#, n + 1)
        );
        drop((fast, stalled));
        tokio::task::yield_now().await;
        assert_eq!(groups.len(), 0);
    }

    #[tokio::test]
    async fn a_group_whose_first_answer_failed_is_started_afresh() {
        let groups = Arc::new(Groups::default());
        let (events, _) = broadcast::channel(1024);
        let executions = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let failing = || -> Execution {
            let error = Response::from_errors(vec![async_graphql::ServerError::new("not yet", None)]);
            (
                futures_util::stream::once(async { error }).boxed(),
                Arc::default(),
            )
        };
        let own = {
            let events = events.clone();
            let executions = executions.clone();
            move |_| fake(&events, executions.clone())
        };
        // The group cannot run: its member runs alone (here its own fake succeeds).
        let mut alone = Box::pin(groups.join(key("1"), failing, own.clone()));
        assert_eq!(payload(alone.next().await.unwrap()), r#"{"data":0}"#);
        // The next subscriber starts a new group instead of joining the dead one.
        let mut grouped = Box::pin(groups.join(key("1"), || fake(&events, executions.clone()), own));
        grouped.next().await.unwrap();
        events.send(5).unwrap();
        assert_eq!(payload(grouped.next().await.unwrap()), r#"{"data":5}"#);
        assert_eq!(groups.executed(), 1);
        assert_eq!(groups.len(), 1);
    }

    #[tokio::test]
    async fn events_are_executed_once_per_group() {
        let groups = Arc::new(Groups::default());
        let (events, _) = broadcast::channel(1024);
        let executions = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let own = {
            let events = events.clone();
            let executions = executions.clone();
            move |_| fake(&events, executions.clone())
        };
        let mut members = Vec::new();
        for _ in 0..10 {
            let mut m = Box::pin(groups.join(key("1"), || fake(&events, executions.clone()), own.clone()));
            m.next().await.unwrap();
            members.push(m);
        }
        let mut other = Box::pin(groups.join(key("2"), || fake(&events, executions.clone()), own.clone()));
        other.next().await.unwrap();
        assert_eq!(groups.len(), 2);
        events.send(7).unwrap();
        for m in &mut members {
            assert_eq!(payload(m.next().await.unwrap()), r#"{"data":7}"#);
        }
        assert_eq!(payload(other.next().await.unwrap()), r#"{"data":7}"#);
        // One execution per group for the event, whatever the number of members.
        assert_eq!(groups.executed(), 2);
    }
}
