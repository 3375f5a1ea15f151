//! PostgreSQL: the connection pool, database creation and embedded migrations.
//!
//! Query functions elsewhere take `&mut AsyncPgConnection` so that they compose inside one
//! `conn.transaction(...)`; this module only hands out connections, and maps closed Rust
//! enums to `text` columns ([`text_enum!`](crate::text_enum)).

use std::time::Duration;

use anyhow::Context as _;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl,
    pooled_connection::{AsyncDieselConnectionManager, bb8},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseTimeouts;

pub type Pool = bb8::Pool<AsyncPgConnection>;
pub type PooledConn<'a> = bb8::PooledConnection<'a, AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the advisory lock held while migrating, so that instances starting together do
/// not apply the same migration twice.
const MIGRATION_LOCK: i64 = 0x626f_786f_6666_6963; // "boxoffic"

/// The database URL with the session settings every pooled connection runs with: lock,
/// statement and idle-in-transaction timeouts (so that a frozen instance holding a schedule
/// lock is cut off after seconds, and nobody waits on it for longer), and TCP keepalive (so
/// that a partitioned peer is noticed).
pub fn session_url(url: &str, t: &DatabaseTimeouts) -> anyhow::Result<String> {
    url::Url::parse(url).context("DATABASE_URL is not a URL")?;
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

pub async fn connect_pool(url: &str, size: u32, timeouts: &DatabaseTimeouts) -> anyhow::Result<Pool> {
    let url = session_url(url, timeouts)?;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    bb8::Pool::builder()
        .max_size(size)
        // A request waits at most this long for a connection, then fails with UNAVAILABLE
        // instead of piling up behind a saturated database.
        .connection_timeout(Duration::from_secs(5))
        .build(manager)
        .await
        .context("building the PostgreSQL pool")
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

/// Splits `postgres://u@h:p/name?x` into the URL of the `postgres` database on the same
/// server and `name`.
pub fn split_database_url(url: &str) -> anyhow::Result<(String, String)> {
    let mut parsed = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    if name.is_empty() {
        anyhow::bail!("DATABASE_URL names no database");
    }
    parsed.set_path("/postgres");
    Ok((parsed.to_string(), name))
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
