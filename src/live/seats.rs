//! Seat changes of a schedule, coalesced once per instance.
//!
//! Writers publish every committed `SeatChange` to topic `seats:{schedule}`. Each instance
//! runs one feed per schedule that has local subscribers: it merges the changes arriving
//! within a window (per seat, the status of the highest version wins, so a message is never
//! stale even when events arrive out of order), reads the per-grade counts once, and sends
//! one update to all local subscribers. A feed with no subscribers left stops.

use std::{
    collections::{BTreeMap, HashMap},
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
    booking::SeatChange,
    concerts::store::ScheduleRow,
    seats::{SeatStatus, store::GradeCount},
    state::AppState,
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
}

/// The one-letter status codes of `packed` strings and compact seat maps.
pub fn status_letter(status: SeatStatus) -> char {
    match status {
        SeatStatus::Available => 'A',
        SeatStatus::Held => 'H',
        SeatStatus::Sold => 'S',
        SeatStatus::Blocked => 'B',
    }
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
    format!("seats:{schedule_id}")
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
    pub fn remember(&self, update: &Arc<SeatUpdate>) {
        if let Some(feed) = self.lock().get_mut(&update.schedule_id)
            && feed.last.as_ref().is_none_or(|l| l.version < update.version)
        {
            feed.last = Some(update.clone());
        }
    }
}

/// Updates of one schedule's seats, from now on, and the last update the feed sent (if
/// it was already running): a new subscriber can start from it without reading the
/// database. Every change after that update comes through the stream.
pub fn updates(
    state: &AppState,
    schedule_id: i64,
) -> (
    impl Stream<Item = Arc<SeatUpdate>> + use<>,
    Option<Arc<SeatUpdate>>,
) {
    let (rx, last) = {
        let mut feeds = state.live.feeds.lock();
        match feeds.get(&schedule_id) {
            Some(feed) => (feed.tx.subscribe(), feed.last.clone()),
            None => {
                let (tx, rx) = broadcast::channel(16);
                feeds.insert(
                    schedule_id,
                    Feed {
                        tx: tx.clone(),
                        last: None,
                    },
                );
                // Subscribed to the topic before returning: nothing committed after this
                // call can be missed.
                let sub = state.live.hub.subscribe(&topic(schedule_id));
                tokio::spawn(feed(state.clone(), schedule_id, sub, tx));
                (rx, None)
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
    (stream, last)
}

async fn feed(
    state: AppState,
    schedule_id: i64,
    mut sub: super::hub::Subscription,
    tx: broadcast::Sender<Arc<SeatUpdate>>,
) {
    // seat id -> (version, status)
    let mut pending: BTreeMap<i64, (i64, SeatStatus)> = BTreeMap::new();
    let mut version = 0i64;
    let mut resync = false;
    let mut dirty = false;
    let mut next_send = Instant::now();
    let mut idle_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = sub.recv() => match event {
                Some(Event::Message(payload)) => {
                    let Ok(change) = serde_json::from_str::<SeatChange>(&payload) else { continue };
                    version = version.max(change.version);
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
                let update = build(&state, schedule_id, version, std::mem::take(&mut pending), resync).await;
                resync = false;
                dirty = false;
                next_send = Instant::now() + WINDOW;
                let update = Arc::new(update);
                if let Some(feed) = state.live.feeds.lock().get_mut(&schedule_id) {
                    feed.last = Some(update.clone());
                }
                let _ = tx.send(update);
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
    state: &AppState,
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
    }
}

/// Per-grade counts and the schedule row, from one snapshot (a repeatable-read
/// transaction): an event never pairs one version's counts with another version.
pub async fn counts(
    state: &AppState,
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
