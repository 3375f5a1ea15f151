//! Topics with local fan-out over one Redis pub/sub connection (or in process).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;
use redis::aio::ConnectionManager;
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
    publisher: ConnectionManager,
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

    /// Redis broker: `publisher` sends, a task of its own keeps one pub/sub connection.
    pub fn redis(client: redis::Client, publisher: ConnectionManager, prefix: &str) -> Self {
        let (control, control_rx) = mpsc::unbounded_channel();
        let hub = Self(Arc::new(Inner {
            topics: Mutex::default(),
            redis: Some(RedisSide {
                publisher,
                prefix: format!("{prefix}live:"),
                control,
            }),
        }));
        tokio::spawn(listen(
            client,
            format!("{prefix}live:"),
            control_rx,
            Arc::downgrade(&hub.0),
        ));
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
                tokio::spawn(async move {
                    let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
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
