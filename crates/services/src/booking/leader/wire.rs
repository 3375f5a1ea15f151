//! What goes through Redis between instances: the forwarded request, its outcome, the
//! keys, the lease scripts, and the bounded calls that read them.

use super::*;

/// A forwarded request on the inbox.
#[derive(Serialize, Deserialize)]
pub(super) struct Envelope {
    pub(super) id: String,
    /// The forwarding instance's reply list.
    pub(super) reply_to: String,
    pub(super) request: HoldRequest,
}

/// A leader's answer on a reply list.
#[derive(Serialize, Deserialize)]
pub(super) struct Reply {
    pub(super) id: String,
    pub(super) outcome: Outcome,
}

/// The outcome of a forwarded hold as it crosses Redis: the reservation, or the error with
/// what the API shows of it (code, message, field, retryAfter).
#[derive(Serialize, Deserialize, Debug)]
pub(super) enum Outcome {
    Held(ReservationRow),
    Refused(WireError),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(super) struct WireError {
    pub(super) code: ErrorCode,
    pub(super) message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) retry_after_s: Option<u64>,
}

impl From<&AppError> for WireError {
    fn from(e: &AppError) -> Self {
        let (message, field, retry_after_s) = match e {
            AppError::BadInput { field, message } => (message.clone(), Some(field.clone()), None),
            AppError::RateLimited { retry_after_s } => (e.to_string(), None, Some(*retry_after_s)),
            // The cause stays in the leader's log; the follower logs that the leader failed.
            _ => (e.to_string(), None, None),
        };
        Self {
            code: e.code(),
            message,
            field,
            retry_after_s,
        }
    }
}

impl From<WireError> for AppError {
    /// The same error as the API shows it: code, message and extensions. Variants whose
    /// text is static come back as a rule refusal with the same code and message.
    fn from(e: WireError) -> Self {
        match (e.code, e.field, e.retry_after_s) {
            (ErrorCode::BadUserInput, Some(field), _) => AppError::BadInput {
                field,
                message: e.message,
            },
            (ErrorCode::RateLimited, _, Some(retry_after_s)) => AppError::RateLimited { retry_after_s },
            (ErrorCode::Conflict, _, _) => AppError::Conflict(e.message),
            (ErrorCode::Unavailable, _, _) => {
                AppError::unavailable(anyhow::anyhow!("the leading instance answered: {}", e.message))
            }
            (ErrorCode::Internal, _, _) => {
                AppError::internal(anyhow::anyhow!("the leading instance failed: {}", e.message))
            }
            (code, _, _) => AppError::rule(code, e.message),
        }
    }
}

impl From<AppResult<ReservationRow>> for Outcome {
    fn from(r: AppResult<ReservationRow>) -> Self {
        match r {
            Ok(row) => Self::Held(row),
            Err(e) => Self::Refused(WireError::from(&e)),
        }
    }
}

impl From<Outcome> for AppResult<ReservationRow> {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Held(row) => Ok(row),
            Outcome::Refused(e) => Err(e.into()),
        }
    }
}

pub(super) fn lease_key(kv: &Kv, schedule_id: i64) -> String {
    kv.key(&format!("{{s:{schedule_id}}}:book:lease"))
}

pub(super) fn inbox_key(kv: &Kv, schedule_id: i64) -> String {
    kv.key(&format!("{{s:{schedule_id}}}:book:inbox"))
}

pub(super) fn reply_key(kv: &Kv, instance: &str) -> String {
    kv.key(&format!("{{i:{instance}}}:book:replies"))
}

/// Takes the lease if nobody holds it, renews it if we do; returns its holder.
pub(super) const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return holder
";

/// Releases the lease if we hold it.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

pub(super) async fn bounded<T>(f: impl Future<Output = redis::RedisResult<T>>) -> AppResult<T> {
    match tokio::time::timeout(REDIS_BUDGET, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(AppError::unavailable(anyhow::anyhow!(
            "redis: no answer within {REDIS_BUDGET:?}"
        ))),
    }
}

pub(super) async fn acquire(kv: &Kv, schedule_id: i64, instance: &str) -> AppResult<String> {
    let ms = LEASE.as_millis() as u64;
    bounded(
        Script::new(ACQUIRE)
            .key(lease_key(kv, schedule_id))
            .arg(instance)
            .arg(ms)
            .invoke_async(&mut kv.conn()),
    )
    .await
}

pub(super) async fn holder(kv: &Kv, schedule_id: i64) -> AppResult<Option<String>> {
    bounded(kv.conn().get(lease_key(kv, schedule_id))).await
}

/// A connection of its own for blocking pops (a blocked multiplexed connection would hold
/// up every other command sent on it).
pub(super) async fn blocking_conn(kv: &Kv) -> redis::RedisResult<KvConn> {
    kv.dedicated(Duration::from_secs(3)).await
}

/// Pops the first entry of `key`, waiting up to `block_s`, and whatever follows it.
pub(super) async fn pop_all(conn: &mut KvConn, key: &str, block_s: f64) -> redis::RedisResult<Vec<String>> {
    let first: Option<(String, String)> = conn.blpop(key, block_s).await?;
    let Some((_, first)) = first else {
        return Ok(Vec::new());
    };
    let mut all = vec![first];
    let more: Option<Vec<String>> = conn.lpop(key, std::num::NonZeroUsize::new(DRAIN)).await?;
    all.extend(more.unwrap_or_default());
    Ok(all)
}
