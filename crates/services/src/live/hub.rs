//! Topics with local fan-out over one Redis pub/sub connection (or in process).
//!
//! On a Redis Cluster the hub uses sharded pub/sub (SPUBLISH/SSUBSCRIBE): a channel lives
//! on the shard that owns its slot, so an event travels to that shard's nodes only, where
//! plain PUBLISH on a cluster is copied to every node over the cluster bus (the cost of
//! every event then grows with the cluster). Channels of one schedule carry its hash tag
//! (`{s:123}:seats`), so they live with the schedule's queue keys.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;
use redis::PushKind;
use tokio::sync::{broadcast, mpsc, watch};

/// What a local subscriber receives.
#[derive(Clone, Debug)]
pub enum Event {
    Message(Arc<str>),
    /// Messages may have been lost (the Redis connection dropped and came back).
    Resync,
}

/// Events buffered per local subscriber; a slower one loses the oldest (and is told).
const BUFFER: usize = 64;

struct Topic {
    tx: broadcast::Sender<Event>,
    subscribers: usize,
    /// True once messages published from now on reach this instance (Redis confirmed the
    /// subscription; at once in process).
    ready: watch::Sender<bool>,
}

enum Control {
    Subscribe(String),
    Unsubscribe(String),
}

struct Inner {
    topics: Mutex<HashMap<String, Topic>>,
    /// `None` in process: publishing fans out locally.
    redis: Option<RedisSide>,
}

struct RedisSide {
    publisher: crate::kv::KvConn,
    /// SPUBLISH (a cluster) or PUBLISH.
    publish: &'static str,
    prefix: String,
    control: mpsc::UnboundedSender<Control>,
}

#[derive(Clone)]
pub struct Hub(Arc<Inner>);

impl Hub {
    /// In-process broker: one instance only.
    pub fn local() -> Self {
        Self(Arc::new(Inner {
            topics: Mutex::default(),
            redis: None,
        }))
    }

    /// Redis broker: the shared connection publishes, a task of its own keeps one pub/sub
    /// connection (on a cluster: one per shard, sharded pub/sub).
    pub fn redis(kv: crate::kv::Kv) -> Self {
        let (control, control_rx) = mpsc::unbounded_channel();
        let prefix = format!("{}live:", kv.prefix());
        let hub = Self(Arc::new(Inner {
            topics: Mutex::default(),
            redis: Some(RedisSide {
                publisher: kv.conn(),
                publish: if kv.is_cluster() { "SPUBLISH" } else { "PUBLISH" },
                prefix: prefix.clone(),
                control,
            }),
        }));
        match kv.client() {
            Some(client) => {
                tokio::spawn(listen(client.clone(), prefix, control_rx, Arc::downgrade(&hub.0)));
            }
            None => {
                tokio::spawn(listen_sharded(kv, prefix, control_rx, Arc::downgrade(&hub.0)));
            }
        }
        hub
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<String, Topic>> {
        self.0
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `payload` to every subscriber of `topic` on every instance. Fire and forget.
    pub fn publish(&self, topic: &str, payload: String) {
        match &self.0.redis {
            None => dispatch(&self.0, topic, Event::Message(payload.into())),
            Some(side) => {
                let mut conn = side.publisher.clone();
                let channel = format!("{}{topic}", side.prefix);
                let command = side.publish;
                tokio::spawn(async move {
                    let sent: redis::RedisResult<()> = redis::cmd(command)
                        .arg(&channel)
                        .arg(payload)
                        .query_async(&mut conn)
                        .await;
                    if let Err(e) = sent {
                        metrics::counter!("live_publish_failures_total").increment(1);
                        tracing::warn!(live.channel = %channel, error = %e, "publish failed");
                    }
                });
            }
        }
    }

    /// Subscribes to `topic`; the Redis subscription lasts while any local one does.
    pub fn subscribe(&self, topic: &str) -> Subscription {
        let mut topics = self.topics();
        let entry = topics.entry(topic.to_owned()).or_insert_with(|| {
            if let Some(side) = &self.0.redis {
                let _ = side.control.send(Control::Subscribe(topic.to_owned()));
            }
            Topic {
                tx: broadcast::channel(BUFFER).0,
                subscribers: 0,
                ready: watch::Sender::new(self.0.redis.is_none()),
            }
        });
        entry.subscribers += 1;
        Subscription {
            rx: entry.tx.subscribe(),
            topic: topic.to_owned(),
            hub: self.clone(),
            ready: entry.ready.subscribe(),
        }
    }

    /// Local topics with subscribers (for tests and metrics).
    pub fn topic_count(&self) -> usize {
        self.topics().len()
    }

    fn leave(&self, topic: &str) {
        let mut topics = self.topics();
        if let Some(t) = topics.get_mut(topic) {
            t.subscribers -= 1;
            if t.subscribers == 0 {
                topics.remove(topic);
                if let Some(side) = &self.0.redis {
                    let _ = side.control.send(Control::Unsubscribe(topic.to_owned()));
                }
            }
        }
    }
}

pub struct Subscription {
    rx: broadcast::Receiver<Event>,
    topic: String,
    hub: Hub,
    ready: watch::Receiver<bool>,
}

impl Subscription {
    /// Whether everything published from now on reaches this subscription.
    pub fn ready(&self) -> Ready {
        Ready(self.ready.clone())
    }

    /// The next event; a lag (this subscriber was too slow) comes out as `Resync`.
    /// `None` once the hub is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.rx.recv().await {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("live_lagged_events_total").increment(n);
                Some(Event::Resync)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Whether a topic subscription receives what is published now: with Redis, once the
/// server confirmed it (a state read after that misses nothing that follows it).
#[derive(Clone)]
pub struct Ready(watch::Receiver<bool>);

impl Ready {
    /// Waits until the subscription is confirmed; gives up after two seconds (Redis
    /// away): false.
    pub async fn wait(mut self) -> bool {
        tokio::time::timeout(ready_wait(), self.0.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.leave(&self.topic);
    }
}

/// How long a new subscriber waits for Redis to confirm its subscription.
fn ready_wait() -> Duration {
    Duration::from_secs(2)
}

/// Marks `topic` as subscribed at Redis.
fn confirmed(inner: &Inner, topic: &str) {
    let topics = inner
        .topics
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(t) = topics.get(topic) {
        t.ready.send_replace(true);
    }
}

fn dispatch(inner: &Inner, topic: &str, event: Event) {
    let topics = inner
        .topics
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(t) = topics.get(topic) {
        let _ = t.tx.send(event);
    }
}

/// The instance's one pub/sub connection: follows subscribe/unsubscribe requests, hands
/// messages to local topics, and reconnects (resubscribing, telling subscribers to resync)
/// when Redis goes away.
async fn listen(
    client: redis::Client,
    prefix: String,
    mut control: mpsc::UnboundedReceiver<Control>,
    inner: std::sync::Weak<Inner>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        let Some(hub) = inner.upgrade() else { return };
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                drop(hub);
                tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "live: Redis pub/sub unavailable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let current: Vec<String> = hub
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        let mut ok = true;
        for topic in &current {
            if sink.subscribe(format!("{prefix}{topic}")).await.is_err() {
                ok = false;
            } else {
                confirmed(&hub, topic);
            }
        }
        if connected_before && ok {
            tracing::info!(topics = current.len(), "live: Redis pub/sub reconnected");
            for topic in &current {
                dispatch(&hub, topic, Event::Resync);
            }
        }
        drop(hub);
        if !ok {
            tokio::time::sleep(backoff).await;
            continue;
        }
        connected_before = true;
        backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                c = control.recv() => {
                    let result = match c {
                        Some(Control::Subscribe(t)) => {
                            let done = sink.subscribe(format!("{prefix}{t}")).await;
                            if done.is_ok() && let Some(hub) = inner.upgrade() {
                                confirmed(&hub, &t);
                            }
                            done
                        }
                        Some(Control::Unsubscribe(t)) => sink.unsubscribe(format!("{prefix}{t}")).await,
                        None => return,
                    };
                    if result.is_err() {
                        break;
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Some(hub) = inner.upgrade() else { return };
                    let channel = msg.get_channel_name().to_owned();
                    if let (Some(topic), Ok(payload)) = (channel.strip_prefix(&prefix), msg.get_payload::<String>()) {
                        dispatch(&hub, topic, Event::Message(payload.into()));
                    }
                }
            }
        }
        tracing::warn!("live: Redis pub/sub connection lost; reconnecting");
        tokio::time::sleep(backoff).await;
    }
}

/// The cluster's side of [`listen`]: one cluster connection speaking RESP3 whose pushes
/// carry the messages. A node's connection that dropped is announced by a `Disconnection`
/// push; the connection is then replaced by a new one, which subscribes every topic again,
/// and the topics are told to resync once their subscription is confirmed.
///
/// Replaced, not left to the cluster client: it resubscribes a dropped node's channels only
/// on that same node once it is back, and learns a new slot map only from a redirection,
/// which a connection that only listens never meets. So a master killed for good left its
/// channels silent after its replica's promotion (`cluster_failover::seat_changes_keep_
/// arriving_after_the_master_of_their_channel_fails_over`), and one that came back as a
/// replica got them again only then. A new connection routes each channel to a live node
/// of its shard: the promoted master, or, before the promotion, the replica (Redis 7 serves
/// a shard's sharded subscriptions on its replicas too, and a promoted replica keeps them).
async fn listen_sharded(
    kv: crate::kv::Kv,
    prefix: String,
    mut control: mpsc::UnboundedReceiver<Control>,
    inner: std::sync::Weak<Inner>,
) {
    let (push_tx, mut pushes) = mpsc::unbounded_channel::<redis::PushInfo>();
    let mut backoff = Duration::from_millis(100);
    let mut conn = loop {
        if inner.upgrade().is_none() {
            return;
        }
        match kv.cluster_pubsub(push_tx.clone()).await {
            Some(Ok(c)) => break c,
            Some(Err(e)) => {
                tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "live: Redis Cluster pub/sub unavailable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            None => return,
        }
    };
    drop(push_tx);
    // Set by a dropped node connection: the connection is replaced at the next retry.
    let mut replace = false;
    // Topics whose subscription failed (a shard away): tried again every second.
    let mut pending: std::collections::HashSet<String> = match inner.upgrade() {
        Some(hub) => hub
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect(),
        None => return,
    };
    // Topics subscribed when a node's connection dropped: resynced once confirmed again.
    let mut lost: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            c = control.recv() => match c {
                Some(Control::Subscribe(t)) => {
                    pending.insert(t);
                    retry.reset_immediately();
                }
                Some(Control::Unsubscribe(t)) => {
                    pending.remove(&t);
                    if let Err(e) = conn.sunsubscribe(format!("{prefix}{t}")).await {
                        tracing::warn!(error = %e, "live: sharded unsubscribe failed");
                    }
                }
                None => return,
            },
            _ = retry.tick(), if replace || !pending.is_empty() => {
                let Some(hub) = inner.upgrade() else { return };
                if replace {
                    // A channel of its own: what the old connection still says (its nodes'
                    // connections closing) is not heard.
                    let (push_tx, new_pushes) = mpsc::unbounded_channel::<redis::PushInfo>();
                    match kv.cluster_pubsub(push_tx).await {
                        Some(Ok(c)) => {
                            // The old connection and its subscriptions go with it.
                            conn = c;
                            pushes = new_pushes;
                            replace = false;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "live: a new Redis Cluster pub/sub connection failed; retrying");
                            continue;
                        }
                        None => return,
                    }
                }
                for t in std::mem::take(&mut pending) {
                    match conn.ssubscribe(format!("{prefix}{t}")).await {
                        Ok(()) => confirmed(&hub, &t),
                        Err(e) => {
                            tracing::warn!(error = %e, live.topic = %t, "live: sharded subscribe failed; retrying");
                            pending.insert(t);
                        }
                    }
                }
            }
            p = pushes.recv() => {
                let Some(p) = p else { return };
                let Some(hub) = inner.upgrade() else { return };
                let channel = p.data.first().and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
                let topic = channel.as_deref().and_then(|c| c.strip_prefix(&prefix));
                match (p.kind, topic) {
                    (PushKind::SMessage, Some(topic)) => {
                        if let Some(Ok(payload)) = p.data.get(1).map(redis::from_redis_value_ref::<String>) {
                            dispatch(&hub, topic, Event::Message(payload.into()));
                        }
                    }
                    (PushKind::SSubscribe, Some(topic)) if lost.remove(topic) => {
                        tracing::info!(live.topic = %topic, "live: sharded subscription restored");
                        confirmed(&hub, topic);
                        dispatch(&hub, topic, Event::Resync);
                    }
                    (PushKind::Disconnection, _) => {
                        tracing::warn!("live: a Redis Cluster node's connection dropped; resubscribing on a new connection");
                        let topics: Vec<String> = hub
                            .topics
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .keys()
                            .cloned()
                            .collect();
                        lost.extend(topics.iter().cloned());
                        pending.extend(topics);
                        replace = true;
                        retry.reset_immediately();
                    }
                    _ => {}
                }
            }
        }
    }
}
