//! Seat changes of a schedule, coalesced once per instance.
//!
//! Writers publish every committed `SeatChange` to topic `{s:<schedule>}:seats`. Each instance
//! runs one feed per schedule that has local subscribers: it merges the changes arriving
//! within a window (per seat, the status of the highest version wins, so a message is never
//! stale even when events arrive out of order), reads the per-grade counts once, and sends
//! one update to all local subscribers. A feed with no subscribers left stops.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::Stream;
use tokio::{
    sync::broadcast,
    time::{Instant, sleep_until},
};

use super::{Event, Hub};

use crate::{
    booking::change::SeatChange,
    concerts::store::ScheduleRow,
    seats::{SeatStatus, status_letter, store::GradeCount},
    state::Services,
};

/// At most one update per window per schedule: about ten a second.
pub const WINDOW: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct SeatUpdate {
    pub schedule_id: i64,
    /// The highest version whose changes this update includes.
    pub version: i64,
    /// (seat id, status), ascending seat id.
    pub seats: Vec<(i64, SeatStatus)>,
    pub availability: Vec<GradeCount>,
    /// The schedule row read with `availability` (one snapshot): what the event says of the
    /// schedule itself (`version`, `bookedCount`, `remainingSeats`), so a normalised cache
    /// holding the schedule updates it from the event. None if the read failed.
    pub schedule: Option<Arc<ScheduleRow>>,
    /// Changes may have been missed (a lag or a Redis reconnect): re-read the seat map.
    pub resync: bool,
    /// `seats` as one string, `<id><A|H|S|B>` joined by commas, made once for every
    /// subscriber of this instance: the cheap way to follow a big sale.
    pub packed: Arc<str>,
    /// When the first change of this update reached this instance (None for a state read).
    pub arrived: Option<std::time::Instant>,
}

fn pack(seats: &[(i64, SeatStatus)]) -> Arc<str> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(seats.len() * 9);
    for (i, (id, status)) in seats.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{id}{}", status_letter(*status));
    }
    out.into()
}

pub fn topic(schedule_id: i64) -> String {
    format!("{{s:{schedule_id}}}:seats")
}

pub fn publish(hub: &Hub, change: &SeatChange) {
    match serde_json::to_string(change) {
        Ok(payload) => hub.publish(&topic(change.schedule_id), payload),
        Err(e) => tracing::error!(error = %e, "serializing a seat change"),
    }
}

/// A running feed: its local channel, and the last update it sent.
struct Feed {
    tx: broadcast::Sender<Arc<SeatUpdate>>,
    last: Option<Arc<SeatUpdate>>,
    /// The updates sent lately, oldest first: what a subscriber starting from a version
    /// (`sinceVersion`) missed. Every change with a version above `covered_from` is in
    /// them or in an update still to come.
    history: VecDeque<Delta>,
    /// Seats in `history`, for its bound.
    history_seats: usize,
    /// None until a state read after the feed's topic subscription is known (`remember`).
    covered_from: Option<i64>,
    /// Whether the feed's topic subscription receives what is published now.
    ready: super::hub::Ready,
}

/// The history a feed keeps: about two minutes of a busy sale (ten updates a second), at
/// most this many seats in all. A subscriber starting from an older version is told to
/// re-read the map (`resync`).
const HISTORY_UPDATES: usize = 1_200;
const HISTORY_SEATS: usize = 200_000;

/// A sent update as the history keeps it: what a subscriber starting from a version needs
/// (the seats it changed), not the counts, schedule row and packed text it was sent with.
/// Whole updates in four feeds' full histories were most of the soak's RSS step (issue 28,
/// docs/performance.md).
#[derive(Clone, Debug)]
pub struct Delta {
    pub version: i64,
    pub seats: Arc<[(i64, SeatStatus)]>,
}

impl Feed {
    /// Sends `update` and keeps its seats in the history.
    fn send(&mut self, update: Arc<SeatUpdate>) {
        self.last = Some(update.clone());
        if update.resync {
            // Changes may be lost before it: the history covers only what follows.
            self.history.clear();
            self.history_seats = 0;
            let now = update.schedule.as_ref().map_or(update.version, |s| s.version);
            self.covered_from = Some(now.max(update.version));
        } else {
            self.history_seats += update.seats.len();
            self.history.push_back(Delta {
                version: update.version,
                seats: update.seats.as_slice().into(),
            });
            while self.history.len() > HISTORY_UPDATES || self.history_seats > HISTORY_SEATS {
                let Some(dropped) = self.history.pop_front() else {
                    break;
                };
                self.history_seats -= dropped.seats.len();
                self.covered_from = Some(self.covered_from.unwrap_or(i64::MIN).max(dropped.version));
            }
        }
        let _ = self.tx.send(update);
    }

    /// The sent updates after `since`, if the history covers them all, and the version a
    /// subscriber at `since` is at once it has them: the newest of them, or `since`. (Not
    /// `last`, which may be a state read and remembered: changes up to it may still be on
    /// their way to this feed, and come in updates the subscriber must not skip.)
    fn since(&self, since: i64) -> Option<(Vec<Delta>, i64)> {
        let covered = self.covered_from.is_some_and(|c| since >= c);
        covered.then(|| {
            let missed: Vec<Delta> = self
                .history
                .iter()
                .filter(|u| u.version > since)
                .cloned()
                .collect();
            let at = missed.last().map_or(since, |u| u.version.max(since));
            (missed, at)
        })
    }
}

/// The running feeds of this instance.
#[derive(Default)]
pub struct Feeds(Mutex<HashMap<i64, Feed>>);

impl Feeds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Feed>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a state read after subscribing as the feed's last update, unless the feed
    /// has sent a newer one: the next subscribers start from it without a query.
    ///
    /// The state was read after the feed's topic subscription was ready: every change
    /// after its version reaches the feed, so the history covers versions from there.
    pub fn remember(&self, update: &Arc<SeatUpdate>, covers: bool) {
        if let Some(feed) = self.lock().get_mut(&update.schedule_id) {
            if feed.last.as_ref().is_none_or(|l| l.version < update.version) {
                feed.last = Some(update.clone());
            }
            if covers && feed.covered_from.is_none() {
                feed.covered_from = Some(update.version);
            }
        }
    }
}

/// What a new subscriber gets besides the stream.
pub struct Joined {
    /// The last update the feed sent, if it was already running.
    pub last: Option<Arc<SeatUpdate>>,
    /// With `since`: the updates sent after that version and the version they bring the
    /// subscriber to, if the feed's history covers them (else the caller must find out
    /// what the subscriber missed).
    pub missed: Option<(Vec<Delta>, i64)>,
    /// Whether the feed's topic subscription receives what is published now: read the
    /// current state only after `ready.wait()` (true), or it may miss a change.
    pub ready: super::hub::Ready,
}

/// Merges `missed` updates (oldest first) into one list of seats: per seat the latest.
pub fn merged(missed: &[Delta]) -> (Vec<(i64, SeatStatus)>, Arc<str>) {
    let mut seats: BTreeMap<i64, SeatStatus> = BTreeMap::new();
    for u in missed {
        seats.extend(u.seats.iter().copied());
    }
    let seats: Vec<(i64, SeatStatus)> = seats.into_iter().collect();
    let packed = pack(&seats);
    (seats, packed)
}

/// Updates of one schedule's seats, from now on, and the last update the feed sent (if
/// it was already running): a new subscriber can start from it without reading the
/// database. Every change after that update comes through the stream. With `since`, also
/// the updates sent after that version, taken with the subscription (none is in both).
pub fn updates(
    state: &Services,
    schedule_id: i64,
    since: Option<i64>,
) -> (impl Stream<Item = Arc<SeatUpdate>> + use<>, Joined) {
    let (rx, joined) = {
        let mut feeds = state.live.feeds.lock();
        match feeds.get_mut(&schedule_id) {
            Some(feed) => (
                feed.tx.subscribe(),
                Joined {
                    last: feed.last.clone(),
                    missed: since.and_then(|v| feed.since(v)),
                    ready: feed.ready.clone(),
                },
            ),
            None => {
                let (tx, rx) = broadcast::channel(16);
                // Subscribed to the topic before returning: nothing committed after it is
                // ready can be missed.
                let sub = state.live.hub.subscribe(&topic(schedule_id));
                let ready = sub.ready();
                feeds.insert(
                    schedule_id,
                    Feed {
                        tx: tx.clone(),
                        last: None,
                        history: VecDeque::new(),
                        history_seats: 0,
                        covered_from: None,
                        ready: ready.clone(),
                    },
                );
                tokio::spawn(feed(state.clone(), schedule_id, sub, tx));
                (
                    rx,
                    Joined {
                        last: None,
                        missed: None,
                        ready,
                    },
                )
            }
        }
    };
    let stream = futures_util::stream::unfold((rx, false), |(mut rx, mut missed)| async move {
        loop {
            match rx.recv().await {
                Ok(update) if missed => {
                    let mut u = (*update).clone();
                    u.resync = true;
                    return Some((Arc::new(u), (rx, false)));
                }
                Ok(update) => return Some((update, (rx, false))),
                // Too slow to keep up: skip ahead and say so.
                Err(broadcast::error::RecvError::Lagged(_)) => missed = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    (stream, joined)
}

async fn feed(
    state: Services,
    schedule_id: i64,
    mut sub: super::hub::Subscription,
    tx: broadcast::Sender<Arc<SeatUpdate>>,
) {
    // seat id -> (version, status)
    let mut pending: BTreeMap<i64, (i64, SeatStatus)> = BTreeMap::new();
    let mut version = 0i64;
    let mut resync = false;
    let mut dirty = false;
    let mut arrived: Option<std::time::Instant> = None;
    let mut next_send = Instant::now();
    let mut idle_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = sub.recv() => match event {
                Some(Event::Message(payload)) => {
                    let Ok(change) = serde_json::from_str::<SeatChange>(&payload) else { continue };
                    version = version.max(change.version);
                    arrived.get_or_insert_with(std::time::Instant::now);
                    for (seat, status) in change.seats {
                        let slot = pending.entry(seat).or_insert((i64::MIN, status));
                        if change.version >= slot.0 {
                            *slot = (change.version, status);
                        }
                    }
                    dirty = true;
                }
                Some(Event::Resync) => {
                    resync = true;
                    dirty = true;
                }
                None => return,
            },
            () = sleep_until(next_send), if dirty => {
                let mut update = build(&state, schedule_id, version, std::mem::take(&mut pending), resync).await;
                update.arrived = arrived.take();
                resync = false;
                dirty = false;
                next_send = Instant::now() + WINDOW;
                let update = Arc::new(update);
                match state.live.feeds.lock().get_mut(&schedule_id) {
                    Some(feed) if feed.tx.same_channel(&tx) => feed.send(update),
                    _ => {
                        let _ = tx.send(update);
                    }
                }
            }
            _ = idle_check.tick() => {
                let mut feeds = state.live.feeds.lock();
                if tx.receiver_count() == 0 {
                    if feeds.get(&schedule_id).is_some_and(|f| f.tx.same_channel(&tx)) {
                        feeds.remove(&schedule_id);
                    }
                    return;
                }
            }
        }
    }
}

async fn build(
    state: &Services,
    schedule_id: i64,
    version: i64,
    pending: BTreeMap<i64, (i64, SeatStatus)>,
    resync: bool,
) -> SeatUpdate {
    let (availability, schedule) = match counts(state, schedule_id).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(schedule.id = schedule_id, error = %e, "live: reading availability failed");
            (Vec::new(), None)
        }
    };
    let current = schedule.as_ref().map_or(version, |s| s.version);
    let seats: Vec<(i64, SeatStatus)> = pending
        .into_iter()
        .map(|(id, (_, status))| (id, status))
        .collect();
    SeatUpdate {
        schedule_id,
        // With changes, exactly the versions they cover; a bare resync points at now.
        version: if seats.is_empty() {
            version.max(current)
        } else {
            version
        },
        packed: pack(&seats),
        seats,
        availability,
        schedule,
        resync,
        arrived: None,
    }
}

/// Per-grade counts and the schedule row, from one snapshot (a repeatable-read
/// transaction): an event never pairs one version's counts with another version.
pub async fn counts(
    state: &Services,
    schedule_id: i64,
) -> crate::error::AppResult<(Vec<GradeCount>, Option<Arc<ScheduleRow>>)> {
    let mut conn = state.db.get().await?;
    let read = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            let availability = crate::seats::store::availability(conn, &[schedule_id]).await?;
            let schedule = crate::concerts::store::schedule(conn, schedule_id).await?;
            Ok::<_, diesel::result::Error>((availability, schedule.map(Arc::new)))
        })
        .await?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(version: i64, seats: &[(i64, SeatStatus)], resync: bool) -> Arc<SeatUpdate> {
        Arc::new(SeatUpdate {
            schedule_id: 1,
            version,
            seats: seats.to_vec(),
            availability: Vec::new(),
            schedule: None,
            resync,
            packed: pack(seats),
            arrived: None,
        })
    }

    #[test]
    fn the_history_answers_from_where_it_covers_and_no_further_back() {
        let hub = Hub::local();
        let sub = hub.subscribe("t");
        let mut feed = Feed {
            tx: broadcast::channel(16).0,
            last: None,
            history: VecDeque::new(),
            history_seats: 0,
            covered_from: None,
            ready: sub.ready(),
        };
        assert!(
            feed.since(0).is_none(),
            "nothing is covered before a state is known"
        );
        feed.covered_from = Some(10);
        feed.send(update(12, &[(1, SeatStatus::Held)], false));
        feed.send(update(
            15,
            &[(1, SeatStatus::Available), (2, SeatStatus::Held)],
            false,
        ));
        let (missed, at) = feed.since(12).unwrap();
        assert_eq!((missed.len(), at), (1, 15));
        // Only the seats are kept: an update the feed has moved past is no longer held.
        let first = update(16, &[(2, SeatStatus::Available)], false);
        feed.send(first.clone());
        feed.send(update(17, &[(2, SeatStatus::Held)], false));
        assert_eq!(Arc::strong_count(&first), 1, "the history holds a sent update");
        let (missed, _) = feed.since(15).unwrap();
        assert_eq!(missed.len(), 2);
        assert_eq!(&*missed[0].seats, &[(2, SeatStatus::Available)]);
        let (missed, at) = feed.since(10).unwrap();
        assert_eq!(at, 17);
        let (seats, packed) = merged(&missed);
        assert_eq!(seats, vec![(1, SeatStatus::Available), (2, SeatStatus::Held)]);
        assert_eq!(&*packed, "1A,2H");
        assert!(feed.since(9).is_none(), "older than the feed knows");
        let (missed, at) = feed.since(20).unwrap();
        assert!(missed.is_empty());
        assert_eq!(at, 20, "a reader ahead of the feed stays where it is");

        // Bounded: the oldest updates go, and what they covered with them.
        for v in 0..HISTORY_UPDATES as i64 {
            feed.send(update(100 + v, &[(3, SeatStatus::Held)], false));
        }
        assert_eq!(feed.history.len(), HISTORY_UPDATES);
        // Versions 12 to 17 went: a reader at 17 still has all it needs, one at 16 not.
        assert!(feed.since(16).is_none());
        assert!(feed.since(17).is_some());

        // A resync (changes may be lost before it) starts the history afresh.
        feed.send(update(5_000, &[], true));
        assert!(feed.history.is_empty());
        assert!(feed.since(4_999).is_none());
        assert_eq!(feed.since(5_000).map(|(m, at)| (m.len(), at)), Some((0, 5_000)));
    }
}
