//! Redis scripts and reads of the queue.

use chrono::{DateTime, Utc};
use std::sync::LazyLock;

use redis::Script;

use crate::{error::AppResult, kv::Kv, state::Services};

pub struct Keys {
    pub waiting: String,
    pub seq: String,
    pub early: String,
    pub seen: String,
    pub active: String,
    pub bucket: String,
    pub lease: String,
}

pub fn keys(kv: &Kv, schedule_id: i64) -> Keys {
    let k = |name: &str| kv.key(&format!("{{s:{schedule_id}}}:{name}"));
    Keys {
        waiting: k("waiting"),
        seq: k("seq"),
        early: k("early"),
        seen: k("seen"),
        active: k("active"),
        bucket: k("bucket"),
        lease: k("lease"),
    }
}

/// Where a user stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Place {
    /// Came before sales opened; gets a random place among the early at opening.
    Early,
    /// `ahead` people before them.
    Waiting { ahead: i64 },
    /// May book until the instant given.
    Admitted { until: DateTime<Utc> },
    /// Not in this queue.
    Absent,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

const ENTER: &str = r"
local waiting, seq, early, seen, active = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user, now, is_early, enter = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4] == '1'
-- Entering carries a deadline (ARGV[5], unix ms): past it nothing is written, since its
-- caller was told UNAVAILABLE (kv::deadline).
if ARGV[5] then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[5]) then
    return redis.error_reply('LATE the entry arrived after its deadline: nothing was written')
  end
end
local expiry = redis.call('ZSCORE', active, user)
if expiry and tonumber(expiry) > now then return {'admitted', tonumber(expiry)} end
local rank = redis.call('ZRANK', waiting, user)
if rank then
  redis.call('ZADD', seen, now, user)
  return {'waiting', rank}
end
if redis.call('SISMEMBER', early, user) == 1 then
  redis.call('ZADD', seen, now, user)
  return {'early', 0}
end
if not enter then return {'absent', 0} end
redis.call('ZADD', seen, now, user)
if is_early then
  redis.call('SADD', early, user)
  return {'early', 0}
end
local n = redis.call('INCR', seq)
redis.call('ZADD', waiting, n, user)
return {'waiting', redis.call('ZRANK', waiting, user)}
";
// Built once: `Script::new` hashes its source (SHA-1) each time, a cost per call on the
// hot path for a value that never changes.
static ENTER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ENTER));

/// Enters the queue (or reports the place already held: entering again keeps it), or with
/// `enter = false` only reports. Either way it counts as a sign of life.
pub async fn enter(
    state: &Services,
    schedule_id: i64,
    user_id: i64,
    before_opening: bool,
    enter: bool,
) -> AppResult<Place> {
    let kv = state.kv()?;
    let k = keys(kv, schedule_id);
    let script = &*ENTER_SCRIPT;
    let call = || {
        let mut call = script.prepare_invoke();
        call.key(&k.waiting)
            .key(&k.seq)
            .key(&k.early)
            .key(&k.seen)
            .key(&k.active)
            .arg(user_id)
            .arg(now_ms())
            .arg(if before_opening { "1" } else { "0" })
            .arg(if enter { "1" } else { "0" });
        call
    };
    let (kind, value): (String, i64) = if enter {
        // A place is answered once a replica has it (when replicas are awaited): else a
        // master lost now would lose it. Entering again keeps the place, so a client told
        // UNAVAILABLE that retries loses nothing either way; and so a lost reply is settled
        // by entering again on a fresh connection, whose answer is the place either way.
        let (place, not_replicated) = kv
            .write_replicated(
                &k.waiting,
                async |conn, deadline| call().arg(deadline.unix_ms()).invoke_async(conn).await,
                async |conn, deadline| call().arg(deadline.unix_ms()).invoke_async(conn).await.map(Some),
            )
            .await?;
        if let Some(why) = not_replicated {
            metrics::counter!("queue_not_replicated_total").increment(1);
            return Err(crate::error::AppError::unavailable(anyhow::anyhow!(
                "queue place not replicated: {why}"
            )));
        }
        place
    } else {
        call().invoke_async(&mut kv.conn()).await?
    };
    Ok(match kind.as_str() {
        "admitted" => Place::Admitted {
            until: DateTime::from_timestamp_millis(value).unwrap_or_default(),
        },
        "waiting" => Place::Waiting { ahead: value },
        "early" => Place::Early,
        _ => Place::Absent,
    })
}

/// The admission expiry, if the user holds a live admission.
pub async fn admitted(state: &Services, schedule_id: i64, user_id: i64) -> AppResult<Option<DateTime<Utc>>> {
    let kv = state.kv()?;
    let k = keys(kv, schedule_id);
    let until: Option<i64> = redis::cmd("ZSCORE")
        .arg(&k.active)
        .arg(user_id)
        .query_async(&mut kv.conn())
        .await?;
    Ok(until
        .filter(|u| *u > now_ms())
        .and_then(DateTime::from_timestamp_millis))
}

const TICK: &str = r"
local waiting, early, seen, active, bucket, seq = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now, rate, max_active, admission_ms, abandon_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
-- Admissions that lapsed free their slots.
redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
-- Waiters silent for too long drop out.
local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now - abandon_ms, 'LIMIT', 0, 1000)
for _, u in ipairs(gone) do
  if not redis.call('ZSCORE', active, u) then
    redis.call('ZREM', waiting, u)
    redis.call('SREM', early, u)
    redis.call('ZREM', seen, u)
  end
end
-- Token bucket: rate per second, at most half a second saved up (a late tick loses
-- nothing; a long idle spell does not turn into a burst).
local b = redis.call('HMGET', bucket, 'tokens', 'at')
local tokens, at = tonumber(b[1]) or 0, tonumber(b[2]) or now
if now > at then tokens = math.min(tokens + (now - at) * rate / 1000, math.max(rate / 2, 1)) end
local room = max_active - redis.call('ZCARD', active)
local n = math.min(math.floor(tokens), room)
local admitted = 0
if n > 0 then
  local popped = redis.call('ZPOPMIN', waiting, n)
  for i = 1, #popped, 2 do
    redis.call('ZADD', active, now + admission_ms, popped[i])
    admitted = admitted + 1
  end
  tokens = tokens - admitted
end
redis.call('HSET', bucket, 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', bucket, 3600000)
return admitted
";
static TICK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TICK));

pub struct GateSettings {
    pub admit_per_second: i32,
    pub max_active: i32,
    pub admission_seconds: i32,
}

/// One gate step: drop lapsed admissions and silent waiters, admit what the bucket allows.
/// Returns how many were admitted.
pub async fn tick(kv: &Kv, schedule_id: i64, s: &GateSettings, abandon_ms: i64) -> AppResult<i64> {
    let k = keys(kv, schedule_id);
    let admitted: i64 = TICK_SCRIPT
        .key(&k.waiting)
        .key(&k.early)
        .key(&k.seen)
        .key(&k.active)
        .key(&k.bucket)
        .key(&k.seq)
        .arg(now_ms())
        .arg(s.admit_per_second)
        .arg(s.max_active)
        .arg(i64::from(s.admission_seconds) * 1000)
        .arg(abandon_ms)
        .invoke_async(&mut kv.conn())
        .await?;
    Ok(admitted)
}

const OPEN: &str = r"
local waiting, early, seq = KEYS[1], KEYS[2], KEYS[3]
local placed = 0
for i = 1, #ARGV do
  if redis.call('SREM', early, ARGV[i]) == 1 then
    redis.call('ZADD', waiting, 'NX', redis.call('INCR', seq), ARGV[i])
    placed = placed + 1
  end
end
return placed
";

/// At opening: the early arrivals, in a random order, go to the head of the queue.
pub async fn shuffle_in_early(kv: &Kv, schedule_id: i64) -> AppResult<i64> {
    use rand::seq::SliceRandom as _;
    let k = keys(kv, schedule_id);
    let mut early: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&k.early)
        .query_async(&mut kv.conn())
        .await?;
    if early.is_empty() {
        return Ok(0);
    }
    early.shuffle(&mut rand::rng());
    let mut placed = 0;
    let open = Script::new(OPEN);
    for chunk in early.chunks(1000) {
        let mut script = open.prepare_invoke();
        script.key(&k.waiting).key(&k.early).key(&k.seq);
        for u in chunk {
            script.arg(u);
        }
        let n: i64 = script.invoke_async(&mut kv.conn()).await?;
        placed += n;
    }
    Ok(placed)
}

const LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Takes or renews the gate lease of a schedule for `ttl_ms`. True if this instance holds it.
pub async fn lease(kv: &Kv, schedule_id: i64, instance: &str, ttl_ms: i64) -> AppResult<bool> {
    let k = keys(kv, schedule_id);
    let held: i64 = Script::new(LEASE)
        .key(&k.lease)
        .arg(instance)
        .arg(ttl_ms)
        .invoke_async(&mut kv.conn())
        .await?;
    Ok(held == 1)
}
