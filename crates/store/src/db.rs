//! PostgreSQL: the connection pool, database creation, embedded migrations, and
//! [`Prepared`], raw SQL kept as a prepared statement.
//!
//! Query functions elsewhere take `&mut AsyncPgConnection` so that they compose inside one
//! `conn.transaction(...)`; this module only hands out connections, and maps closed Rust
//! enums to `text` columns ([`text_enum!`](crate::text_enum)).

use std::time::Duration;

use anyhow::Context as _;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod, bb8},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub mod pipelined;
mod prepared;
pub use prepared::Prepared;

pub type Pool = bb8::Pool<AsyncPgConnection>;
pub type PooledConn<'a> = bb8::PooledConnection<'a, AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Key of the advisory lock held while migrating, so that instances starting together do
/// not apply the same migration twice.
const MIGRATION_LOCK: i64 = 0x626f_786f_6666_6963; // "boxoffic"

/// A PostgreSQL URL cut where this module needs it. The `url` crate cannot read the
/// multi-host form (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`) that
/// tokio-postgres connects with, so the cut is made here, on the characters that cannot
/// appear unencoded in a user, password or host.
struct PgUrl<'a> {
    /// `postgres://user@host:port[,host:port…]`
    server: &'a str,
    database: &'a str,
    /// After the `?`, if any.
    query: Option<&'a str>,
}

impl<'a> PgUrl<'a> {
    fn parse(url: &'a str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .context("DATABASE_URL must start with postgres:// or postgresql://")?;
        let (before_query, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
        let server_len = url.len() - rest.len() + authority_len;
        if authority_len == 0 {
            anyhow::bail!("DATABASE_URL names no host");
        }
        let database = before_query[server_len.min(before_query.len())..].trim_start_matches('/');
        Ok(Self {
            server: &url[..server_len],
            database,
            query,
        })
    }
}

/// The database URL with the session settings every pooled connection runs with: lock,
/// statement and idle-in-transaction timeouts (so that a frozen instance holding a schedule
/// lock is cut off after seconds, and nobody waits on it for longer), and TCP keepalive (so
/// that a partitioned peer is noticed). PgBouncer cannot pass `options` on: behind it they
/// are dropped (`ignore_startup_parameters`) and the same settings belong on the role.
pub fn session_url(url: &str, t: &DatabaseTimeouts) -> anyhow::Result<String> {
    PgUrl::parse(url)?;
    // Percent-encoded by hand: tokio-postgres decodes `%20`, not the `+` of form encoding.
    let options = format!(
        "-c%20lock_timeout%3D{}%20-c%20statement_timeout%3D{}%20-c%20idle_in_transaction_session_timeout%3D{}",
        t.lock.as_millis(),
        t.statement.as_millis(),
        t.idle_in_transaction.as_millis()
    );
    let keepalive = t.keepalive_idle.as_secs().max(1);
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{url}{sep}options={options}&keepalives=1&keepalives_idle={keepalive}\
         &keepalives_interval={keepalive}&keepalives_retries=3"
    ))
}

/// Bounds on how long a database session may wait or hold locks: a frozen or partitioned
/// instance holding a schedule lock blocks the others for seconds, not hours.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct DatabaseTimeouts {
    pub lock: Duration,
    pub statement: Duration,
    pub idle_in_transaction: Duration,
    pub keepalive_idle: Duration,
}

/// How pooled connections are made and checked.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings<'a> {
    pub size: u32,
    pub timeouts: &'a DatabaseTimeouts,
}

pub async fn connect_pool(url: &str, settings: PoolSettings<'_>) -> anyhow::Result<Pool> {
    let url = session_url(url, settings.timeouts)?;
    let mut config = ManagerConfig::default();
    // Every checkout asks the server whether it still takes writes (the round trip the
    // default check spends on `SELECT 1`): a connection to a primary that was demoted, or
    // that a multi-host URL reached as standby, is dropped and another one made, which the
    // multi-host URL's `target_session_attrs=read-write` or HAProxy sends to the new primary.
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
        Box::pin(async move { check_writable(conn).await })
    }));
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    bb8::Pool::builder()
        .max_size(settings.size)
        // A request waits at most this long for a connection, then fails with UNAVAILABLE
        // instead of piling up behind a saturated database.
        .connection_timeout(Duration::from_secs(5))
        .build(manager)
        .await
        .context("building the PostgreSQL pool")
}

/// The server of this connection no longer takes writes (a standby, or a primary being
/// demoted): the pool must not hand it out.
#[derive(Debug, thiserror::Error)]
#[error("the database server is read-only (a standby, or a demoted primary)")]
pub struct ReadOnlyServer;

/// `Ok` when the connection is open and its server takes writes; an error (the pool then
/// discards the connection) otherwise.
///
/// It runs at every checkout, so it is written with the query builder: a statement of a
/// static shape is prepared once per connection and then only executed. (As `sql_query`
/// text it was prepared again at every checkout, a round trip and a plan of its own: two of
/// them per GraphQL seat-map read.)
pub async fn check_writable(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    diesel::define_sql_function! {
        /// PostgreSQL's `current_setting(name)`.
        fn current_setting(name: diesel::sql_types::Text) -> diesel::sql_types::Text;
    }
    let read_only: String = diesel::select(current_setting("transaction_read_only"))
        .get_result(conn)
        .await?;
    if read_only == "on" {
        return Err(diesel::result::Error::QueryBuilderError(Box::new(ReadOnlyServer)));
    }
    Ok(())
}

/// Creates the database named in `url` if it does not exist yet (local convenience: a
/// fresh machine runs the server without a manual `createdb`).
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let (maintenance_url, name) = split_database_url(url)?;
    if AsyncPgConnection::establish(url).await.is_ok() {
        return Ok(());
    }
    let mut conn = AsyncPgConnection::establish(&maintenance_url)
        .await
        .context("connecting to the maintenance database `postgres`")?;
    let created = diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(&name)))
        .execute(&mut conn)
        .await;
    match created {
        Ok(_) => {
            tracing::info!(db.name = %name, "created database");
            Ok(())
        }
        // Another instance created it between our two connections.
        Err(diesel::result::Error::DatabaseError(_, info)) if info.message().contains("already exists") => {
            Ok(())
        }
        Err(e) => Err(e).context("creating the database"),
    }
}

/// Applies pending migrations under an advisory lock. Needs the multi-thread runtime
/// (diesel-async's harness blocks in place).
pub async fn run_migrations(url: &str) -> anyhow::Result<usize> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .context("connecting to run migrations")?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))?
        .len();
    let mut conn = harness.into_inner();
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .await?;
    Ok(applied)
}

/// Splits `postgres://u@h:p/name?x` (or the multi-host form) into the URL of the
/// `postgres` database on the same servers and `name`.
pub fn split_database_url(url: &str) -> anyhow::Result<(String, String)> {
    let parsed = PgUrl::parse(url)?;
    if parsed.database.is_empty() {
        anyhow::bail!("DATABASE_URL names no database");
    }
    let query = parsed.query.map(|q| format!("?{q}")).unwrap_or_default();
    Ok((
        format!("{}/postgres{query}", parsed.server),
        parsed.database.to_owned(),
    ))
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A `text` column held a value its Rust enum does not know: bad data is an error, never
/// a default.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{value}` in the database")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// Declares a closed status enum stored in a `text` column, and maps it once: each variant
/// has one spelling, used in the database and in serde alike, and reading anything else
/// fails the query. The enum is also a GraphQL enum (its doc comments are the schema's
/// descriptions), so every status is declared in one place with one set of derives.
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(
            async_graphql::Enum,
            Copy,
            Clone,
            Debug,
            Eq,
            PartialEq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $ty {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $ty {
            /// The spelling in the database.
            pub const fn as_db(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            pub fn from_db(s: &str) -> Result<Self, $crate::db::UnknownValue> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err($crate::db::UnknownValue {
                        what: stringify!($ty),
                        value: other.to_owned(),
                    }),
                }
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $ty {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let s = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::pg::Pg,
                >>::from_sql(bytes)?;
                Ok(Self::from_db(&s)?)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_db(),
                    &mut out.reborrow(),
                )
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_database_name() {
        let (m, n) =
            split_database_url("postgres://postgres@127.0.0.1:5432/boxoffice?sslmode=disable").unwrap();
        assert_eq!(n, "boxoffice");
        assert_eq!(m, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable");
        assert!(split_database_url("postgres://127.0.0.1/").is_err());
        assert!(split_database_url("mysql://127.0.0.1/bo").is_err());
    }

    #[test]
    fn reads_the_multi_host_form() {
        let url = "postgres://app@10.0.0.1:5432,10.0.0.2:5433/sales?target_session_attrs=read-write";
        let (m, n) = split_database_url(url).unwrap();
        assert_eq!(n, "sales");
        assert_eq!(
            m,
            "postgres://app@10.0.0.1:5432,10.0.0.2:5433/postgres?target_session_attrs=read-write"
        );
        let (m, n) = split_database_url("postgresql://h1,h2/bo").unwrap();
        assert_eq!((m.as_str(), n.as_str()), ("postgresql://h1,h2/postgres", "bo"));
        assert!(split_database_url("postgres://h1,h2?sslmode=disable").is_err());
        assert!(split_database_url("postgres:///bo").is_err());
        let t = DatabaseTimeouts {
            lock: Duration::from_millis(3000),
            statement: Duration::from_secs(30),
            idle_in_transaction: Duration::from_secs(5),
            keepalive_idle: Duration::from_secs(10),
        };
        let session = session_url(url, &t).unwrap();
        assert!(session.starts_with(&format!("{url}&options=-c%20lock_timeout%3D3000")));
    }

    #[test]
    fn sessions_carry_their_timeouts() {
        let t = DatabaseTimeouts {
            lock: Duration::from_millis(3000),
            statement: Duration::from_secs(30),
            idle_in_transaction: Duration::from_secs(5),
            keepalive_idle: Duration::from_secs(10),
        };
        let url = session_url("postgres://postgres@127.0.0.1:5432/bo?sslmode=disable", &t).unwrap();
        assert!(url.starts_with(
            "postgres://postgres@127.0.0.1:5432/bo?sslmode=disable&options=-c%20lock_timeout%3D3000%20"
        ));
        assert!(url.contains("idle_in_transaction_session_timeout%3D5000"));
        assert!(url.ends_with("&keepalives_idle=10&keepalives_interval=10&keepalives_retries=3"));
        assert!(
            session_url("postgres://h/bo", &t)
                .unwrap()
                .contains("/bo?options=")
        );
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
