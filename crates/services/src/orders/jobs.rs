//! The order stream and the job hashes in Redis.

use std::{collections::HashMap, sync::LazyLock};

use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};

use crate::{error::AppResult, error::ErrorCode, kv::Kv};

pub const GROUP: &str = "workers";
/// Entries kept in the stream (acknowledged ones are only history).
const MAX_LEN: usize = 100_000;

/// Every key of the order stream (the stream, job hashes, client key claims) carries this
/// hash tag: the enqueue script touches all three kinds at once, so on a Redis Cluster they
/// live on one slot, and so on one master (see docs/operations.md, Redis Cluster).
const TAG: &str = "{orders}:";

pub fn stream_key(kv: &Kv) -> String {
    kv.key(&format!("{TAG}stream"))
}

/// The prefix of job hashes (the enqueue script names a claimed key's job with it).
fn job_prefix(kv: &Kv) -> String {
    kv.key(&format!("{TAG}order:"))
}

pub fn job_key(kv: &Kv, job_id: &str) -> String {
    format!("{}{job_id}", job_prefix(kv))
}

/// The claim of a client's idempotency key, which names the job that holds it.
pub fn claim_key(kv: &Kv, user_id: i64, key: &str) -> String {
    kv.key(&format!("{TAG}orderkey:{user_id}:{key}"))
}

pub fn topic(job_id: &str) -> String {
    format!("order:{job_id}")
}

#[derive(Clone, Copy, Debug, Eq, PartialEq, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Queued,
    Processing,
    Done,
    Failed,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Processing => "PROCESSING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
        }
    }

    /// Unknown data is an error, never a default.
    fn parse(s: &str) -> AppResult<Self> {
        match s {
            "QUEUED" => Ok(Self::Queued),
            "PROCESSING" => Ok(Self::Processing),
            "DONE" => Ok(Self::Done),
            "FAILED" => Ok(Self::Failed),
            other => Err(crate::error::AppError::internal(anyhow::anyhow!(
                "unknown order job status `{other}`"
            ))),
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// What an order asks for (the stream entry).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    pub job_id: String,
    pub user_id: i64,
    pub schedule_id: i64,
    /// The seats asked for; empty for a best-available order.
    #[serde(default)]
    pub seat_ids: Vec<i64>,
    /// A best-available order's ask, instead of seats (absent in entries of older
    /// instances, which only took named seats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_available: Option<BestAsk>,
    /// The client's key, if it sent one.
    pub key: Option<String>,
}

/// `count` best-available seats, of `grade` if named.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BestAsk {
    pub count: u32,
    pub grade: Option<String>,
}

impl Order {
    /// The hold's idempotency key: the client's, or one made from the job id. Either way
    /// the same on every attempt, so an order takes effect at most once.
    /// The hold request this order makes for its user.
    pub fn hold_request(&self) -> crate::booking::HoldRequest {
        let want = match &self.best_available {
            Some(b) => crate::booking::Want::BestAvailable {
                count: b.count,
                grade: b.grade.clone(),
            },
            None => crate::booking::Want::Seats(self.seat_ids.clone()),
        };
        crate::booking::HoldRequest {
            user_id: self.user_id,
            want,
            idempotency_key: Some(self.idempotency_key()),
            origin: crate::booking::Origin::Order,
        }
    }

    pub fn idempotency_key(&self) -> String {
        self.key
            .clone()
            .unwrap_or_else(|| format!("order:{}", self.job_id))
    }
}

/// Where a job stands (the job hash), also what `order:{job}` publishes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub user_id: i64,
    pub status: JobStatus,
    pub reservation_id: Option<i64>,
    pub error_code: Option<ErrorCode>,
    pub error_message: Option<String>,
}

/// Creates the consumer group (and the stream) if missing.
pub async fn ensure_group(kv: &Kv) -> AppResult<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream_key(kv))
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut kv.conn())
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => Ok(other?),
    }
}

const ENQUEUE: &str = r"
-- KEYS: job hash, stream, client key claim (absent when the client sent no key: an empty
--       name would hash to another slot of a cluster)
-- ARGV: job id, user id, ttl seconds, max stream length, order payload, job key prefix,
--       the order's fingerprint, the deadline (unix ms), then the error codes a job may be
--       placed again after
-- Returns the job id, or '' when the key belongs to another order.
-- Past its deadline, or once settled as not placed (a void job hash), it writes nothing:
-- its caller was told UNAVAILABLE (kv::deadline).
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[8]) then
  return redis.error_reply('LATE the order arrived after its deadline: nothing was written')
end
if redis.call('HEXISTS', KEYS[1], 'void') == 1 then
  return redis.error_reply('LATE the order was settled as not placed: nothing was written')
end
-- A copy of this very call (a client's retry of a command whose reply was lost) placed it.
if redis.call('EXISTS', KEYS[1]) == 1 then return ARGV[1] end
if KEYS[3] then
  local existing = redis.call('GET', KEYS[3])
  if existing then
    local job = ARGV[6] .. existing
    local status, fp = unpack(redis.call('HMGET', job, 'status', 'fp'))
    if fp and fp ~= ARGV[7] then return '' end
    local again = status == false
    if status == 'FAILED' then
      local code = redis.call('HGET', job, 'error_code')
      for i = 9, #ARGV do
        if code == ARGV[i] then again = true end
      end
    end
    if not again then return existing end
  end
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
end
redis.call('HSET', KEYS[1], 'status', 'QUEUED', 'user_id', ARGV[2], 'fp', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'order', ARGV[5])
return ARGV[1]
";
// Built once: `Script::new` hashes its source (SHA-1) each time, a cost per call on the
// hot path for a value that never changes.
static ENQUEUE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ENQUEUE));

const SETTLE: &str = r"
-- KEYS: job hash. ARGV: user id, ttl seconds, message.
-- Decides an enqueue whose reply was lost: placed (its job hash exists; returns 1), or
-- never (returns 0, leaving a void job hash the enqueue script will not write over). Writes
-- either way, so a WAIT after it covers the job it found.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HEXISTS', KEYS[1], 'void') == 1 then return 0 end
  redis.call('HSET', KEYS[1], 'settled', '1')
  return 1
end
redis.call('HSET', KEYS[1], 'status', 'FAILED', 'error_code', 'UNAVAILABLE', 'error_message', ARGV[3], 'user_id', ARGV[1], 'void', '1')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
";
static SETTLE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SETTLE));

/// Failures that say nothing about the order itself: a job that ended with one of these is
/// placed again when its key comes again. UNAVAILABLE is what a transient failure is now
/// (workers retry it and never fail a job with it, but older builds did); INTERNAL is how
/// older builds failed a database blip, and whatever else it stands for, nothing was held
/// (a hold commits or fails whole). Placing again is safe: the new job holds with the same
/// client key, so if the first attempt did take effect after all, it answers that hold.
const PLACE_AGAIN_AFTER: [ErrorCode; 2] = [ErrorCode::Unavailable, ErrorCode::Internal];

/// Records the job and appends the order in one step: durable from here on. With a
/// client key, the key is claimed in the same step, so a key never points at a job that
/// was not enqueued; a key already claimed answers its job instead, unless that job is gone
/// or failed for a reason in [`PLACE_AGAIN_AFTER`] (then the key moves to the new job). A
/// key claimed by another order (its `fingerprint`, `HoldRequest::fingerprint`, differs) is
/// a CONFLICT. Returns the job id.
pub async fn enqueue(kv: &Kv, order: &Order, fingerprint: i64, ttl_s: u64) -> AppResult<String> {
    let payload = serde_json::to_string(order).map_err(crate::error::AppError::internal)?;
    let script = &*ENQUEUE_SCRIPT;
    let mut invocation = script.prepare_invoke();
    invocation.key(job_key(kv, &order.job_id)).key(stream_key(kv));
    if let Some(k) = &order.key {
        invocation.key(claim_key(kv, order.user_id, k));
    }
    invocation
        .arg(&order.job_id)
        .arg(order.user_id)
        .arg(ttl_s)
        .arg(MAX_LEN)
        .arg(payload)
        .arg(job_prefix(kv))
        .arg(fingerprint);
    let settle = &*SETTLE_SCRIPT;
    let (job_id, not_replicated) = kv
        .write_replicated(
            &stream_key(kv),
            async |conn, deadline| {
                invocation.arg(deadline.unix_ms());
                for code in PLACE_AGAIN_AFTER {
                    invocation.arg(code.as_str());
                }
                invocation.invoke_async::<String>(conn).await
            },
            async |conn, _| {
                let placed: i64 = settle
                    .key(job_key(kv, &order.job_id))
                    .arg(order.user_id)
                    .arg(ttl_s)
                    .arg("not placed: no reply from Redis in time")
                    .invoke_async(conn)
                    .await?;
                Ok((placed == 1).then(|| order.job_id.clone()))
            },
        )
        .await?;
    // A new job on the master only: withdrawn, unless a worker already took it (then it
    // runs, and the answer is the job). Either way the answer is what will happen. A
    // withdrawal that fails is no answer either: the job stays placed (or is withdrawn
    // later, which its client then reads as FAILED UNAVAILABLE), so the answer is the job.
    if let Some(why) = not_replicated
        && job_id == order.job_id
        && withdraw(kv, &order.job_id, &why)
            .await
            .inspect_err(|e| tracing::warn!(order.job = %order.job_id, error = %e, "withdrawing an order no replica confirmed failed; answering its job"))
            .unwrap_or(false)
    {
        metrics::counter!("orders_not_replicated_total").increment(1);
        return Err(crate::error::AppError::unavailable(anyhow::anyhow!(
            "order not replicated, withdrawn: {why}"
        )));
    }
    if job_id.is_empty() {
        return Err(crate::error::AppError::Conflict(
            crate::booking::KEY_USED.to_owned(),
        ));
    }
    Ok(job_id)
}

const WITHDRAW: &str = r"
-- KEYS: job hash. ARGV: error code, message. Fails the job if no worker took it yet.
if redis.call('HGET', KEYS[1], 'status') ~= 'QUEUED' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'FAILED', 'error_code', ARGV[1], 'error_message', ARGV[2])
return 1
";
static WITHDRAW_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(WITHDRAW));

/// Fails a job no worker has taken yet (UNAVAILABLE: its key places it again); false if a
/// worker took it first.
async fn withdraw(kv: &Kv, job_id: &str, why: &str) -> AppResult<bool> {
    let withdrawn: i64 = WITHDRAW_SCRIPT
        .key(job_key(kv, job_id))
        .arg(ErrorCode::Unavailable.as_str())
        .arg(format!("not replicated: {why}"))
        .invoke_async(&mut kv.conn())
        .await?;
    Ok(withdrawn == 1)
}

pub async fn job(kv: &Kv, job_id: &str) -> AppResult<Option<Job>> {
    let map: HashMap<String, String> = kv.conn().hgetall(job_key(kv, job_id)).await?;
    if map.is_empty() {
        return Ok(None);
    }
    Ok(Some(Job {
        job_id: job_id.to_owned(),
        // A job without an owner is nobody's: unreadable rather than user 0's.
        user_id: map.get("user_id").and_then(|v| v.parse().ok()).ok_or_else(|| {
            crate::error::AppError::internal(anyhow::anyhow!("order job {job_id} has no owner"))
        })?,
        status: JobStatus::parse(map.get("status").map_or("", String::as_str))?,
        reservation_id: map.get("reservation_id").and_then(|v| v.parse().ok()),
        error_code: map
            .get("error_code")
            .and_then(|v| serde_json::from_str(&format!("\"{v}\"")).ok()),
        error_message: map.get("error_message").cloned(),
    }))
}

const SET_PROCESSING: &str = r"
-- KEYS: job hash. ARGV: user id, ttl seconds. Refuses a job already decided (withdrawn).
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'DONE' or status == 'FAILED' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'PROCESSING', 'user_id', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
return 1
";
static SET_PROCESSING_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SET_PROCESSING));

/// Marks the job as being processed, unless it was decided meanwhile (withdrawn because
/// it did not reach a replica): false then, and the job must not run. Writes its owner and
/// an expiry too: if Redis lost the job hash, the one re-created here still has both.
pub async fn set_processing(kv: &Kv, order: &Order, ttl_s: u64) -> AppResult<bool> {
    let taken: i64 = SET_PROCESSING_SCRIPT
        .key(job_key(kv, &order.job_id))
        .arg(order.user_id)
        .arg(ttl_s)
        .invoke_async(&mut kv.conn())
        .await?;
    Ok(taken == 1)
}

/// Sets fields of a job's hash, which always has an owner (`user_id`) and an expiry: the
/// hash's own if it has one, else `ttl_s` (a worker re-creating a record Redis lost).
async fn write_fields(kv: &Kv, job_id: &str, fields: &[(&str, String)], ttl_s: u64) -> AppResult<()> {
    let key = job_key(kv, job_id);
    let () = redis::pipe()
        .atomic()
        .hset_multiple(&key, fields)
        .ignore()
        .cmd("EXPIRE")
        .arg(&key)
        .arg(ttl_s)
        .arg("NX")
        .ignore()
        .query_async(&mut kv.conn())
        .await?;
    Ok(())
}

/// Stores the outcome (keeping the hash's expiry, or setting one if it had none).
pub async fn finish(kv: &Kv, job: &Job, ttl_s: u64) -> AppResult<()> {
    let mut fields: Vec<(&str, String)> = vec![("status", job.status.as_str().to_owned())];
    if let Some(r) = job.reservation_id {
        fields.push(("reservation_id", r.to_string()));
    }
    if let Some(code) = job.error_code {
        fields.push(("error_code", code.as_str().to_owned()));
    }
    if let Some(m) = &job.error_message {
        fields.push(("error_message", m.clone()));
    }
    fields.push(("user_id", job.user_id.to_string()));
    write_fields(kv, &job.job_id, &fields, ttl_s).await
}

pub async fn ack(kv: &Kv, entry_id: &str) -> AppResult<()> {
    let () = redis::cmd("XACK")
        .arg(stream_key(kv))
        .arg(GROUP)
        .arg(entry_id)
        .query_async(&mut kv.conn())
        .await?;
    Ok(())
}
