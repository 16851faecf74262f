//! The bridge database: `Store::connect` picks SQLite (embedded default) or PostgreSQL from the
//! URI, applies the versioned migrations of that dialect, and refuses a schema newer than this
//! binary. One file per table below holds its SQL at the top and its queries.
//!
//! Queries are written once in the common subset of both dialects (`$1` placeholders, which
//! SQLite also accepts, `ON CONFLICT`, `RETURNING`) and run on either pool through
//! [`on_pool!`], instead of `sqlx::Any` and its limited types.

mod emoji;
mod ghosts;
mod history;
mod inbox;
mod key_check;
mod logins;
mod management;
mod messages;
mod outgoing;
mod portals;
mod queues;
mod reactions;
mod user_logins;

use std::{str::FromStr, time::Duration};

use crate::ids::{BotId, ChannelId, SenderId, TeamId, Ts, UserId};
use sqlx::{
    PgPool, SqlitePool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use emoji::CustomEmoji;
pub use ghosts::Ghost;
pub use history::{Backfill, HistoryRun};
pub use inbox::{HsTxn, InboxDepths, NewSlackEvent, SlackInboxEntry};
pub use logins::{Login, LoginState};
pub use messages::MessageRow;
pub use outgoing::{Outgoing, OutgoingFile};
pub use portals::{Portal, PortalKind};
pub use queues::{
    COMMAND_QUEUE, NewOutboxEvent, QueueFailure, QueueStats, QueueTable, QueuedItem, slack_queue,
};
pub use reactions::ReactionRow;
pub use user_logins::UserLogin;

/// A Matrix ID read back from a column: stored only after being parsed, so one that does not
/// parse means the database was changed behind the bridge's back.
pub(crate) fn matrix_id<T: TryFrom<String>>(column: &str, value: String) -> Result<T>
where
    T::Error: std::fmt::Display,
{
    T::try_from(value.clone())
        .map_err(|e| StoreError::Corrupt(format!("{column} `{value}` is not a Matrix ID: {e}")))
}

/// Slack IDs are stored as the text Slack sent, on either database.
macro_rules! text_column {
    ($($name:ty),*) => {$(
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode_by_ref(&self.0, buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                <String as sqlx::Decode<'r, DB>>::decode(value).map(<$name>::from)
            }
        }
    )*};
}
text_column!(TeamId, ChannelId, UserId, BotId, SenderId, Ts);

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database uri scheme in `{0}`: use sqlite://path or postgres://user@host/db"
    )]
    Scheme(String),
    #[error("invalid database uri: {0}")]
    Uri(#[source] sqlx::Error),
    #[error("cannot open the database ({target}): {source}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the database schema is at version {db}, newer than this slack-bridge knows ({known}); it was written by a newer release. Run that release, or restore a backup taken before the upgrade"
    )]
    SchemaTooNew { db: i64, known: i64 },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
    #[error(
        "the database did not answer within {secs} s while {step} ({target}); is it overloaded, or is another process holding a lock on it?"
    )]
    Timeout {
        target: String,
        step: &'static str,
        secs: u64,
    },
    #[error(
        "the encryption key in {origin} does not open this database's secrets: they were sealed with another key. Start with the key they were sealed with (restore its file from a backup), or, if `slack-bridge rotate-key` was interrupted, run it again"
    )]
    WrongKey { origin: String },
    #[error(
        "this database's secrets are sealed with an encryption key, but its key file {path} does not exist: restore it from a backup (or set database.encryption_key_file / SLACK_BRIDGE_ENCRYPTION_KEY to where the key is)"
    )]
    KeyMissing { path: String },
    #[error(
        "the stored Slack tokens are encrypted and this database was opened without its key; open it with Store::unlock"
    )]
    Locked,
    #[error("cannot seal a secret: {0}")]
    Seal(String),
    #[error("cannot open the database (SQLite file {db}): cannot lock {lock}: {source}")]
    Lock {
        db: String,
        lock: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether trying again can help: a connection or pool problem, not a refused write
    /// (a constraint violation fails the same way every time).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Query(sqlx::Error::Database(_)) | Self::Corrupt(_) => false,
            Self::Query(_) | Self::Connect { .. } => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query code against whichever pool the store has.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// The key the stored secrets are sealed with, once [`Store::unlock`] checked it.
    cipher: Option<std::sync::Arc<crate::crypto::Cipher>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect())
            .finish()
    }
}

/// Holds an exclusive lock on `<db>-migrate.lock` next to a SQLite file while it lives.
async fn lock_file(db: &std::path::Path) -> Result<Option<std::fs::File>> {
    if db.as_os_str().is_empty() || db.to_string_lossy().contains(":memory:") {
        return Ok(None);
    }
    let mut name = db.as_os_str().to_owned();
    name.push("-migrate.lock");
    let path = std::path::PathBuf::from(name);
    let lock = path.display().to_string();
    let file = tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        f.lock()?;
        Ok::<_, std::io::Error>(f)
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("migration lock task failed: {e}")))?
    .map_err(|source| StoreError::Lock {
        db: db.display().to_string(),
        lock,
        source,
    })?;
    Ok(Some(file))
}

/// How long opening the database may wait on one step before it is an error, not a hang.
const OPEN_STEP_TIMEOUT: Duration = Duration::from_secs(60);

async fn timed<T>(
    target: &str,
    step: &'static str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(OPEN_STEP_TIMEOUT, fut)
        .await
        .map_err(|_| StoreError::Timeout {
            target: target.to_owned(),
            step,
            secs: OPEN_STEP_TIMEOUT.as_secs(),
        })?
}

/// The current time in milliseconds since the Unix epoch, the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Store {
    /// Opens `uri` (`sqlite://path`, created if absent, WAL and foreign keys on; or
    /// `postgres://…`) and migrates it to the schema this binary knows.
    pub async fn connect(uri: &str, max_connections: u32) -> Result<Store> {
        if uri.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(uri)
                .map_err(StoreError::Uri)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a stored inbox entry survives power loss, not only a process crash,
                // because it is acknowledged to Slack or the homeserver right after.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // What is deleted or overwritten (a command's tokens once it ran, a done
                // event's payload) is zeroed in the file, not left in free pages.
                .pragma("secure_delete", "on")
                .busy_timeout(Duration::from_secs(10));
            let target = format!("SQLite file {}", opts.get_filename().display());
            // sqlx serialises migrations with an advisory lock on PostgreSQL only; two
            // processes opening a fresh SQLite file at once would both create the tables. The
            // first connection also turns the file to WAL, which needs it alone and does not
            // wait for a busy database: opening and migrating hold the lock together.
            tracing::debug!(%target, "waiting for the migration lock");
            let _guard = timed(
                &target,
                "waiting for its migration lock",
                lock_file(opts.get_filename()),
            )
            .await?;
            tracing::debug!(%target, "opening the database");
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    target: target.clone(),
                    source,
                })?;
            let store = Store {
                pool: Pool::Sqlite(pool),
                cipher: None,
            };
            tracing::debug!(%target, "database open; migrating");
            timed(&target, "migrating", store.migrate()).await?;
            Ok(store)
        } else if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(uri).map_err(StoreError::Uri)?;
            let target = format!(
                "PostgreSQL {}:{} database {}",
                opts.get_host(),
                opts.get_port(),
                opts.get_database().unwrap_or("(default)")
            );
            tracing::debug!(%target, "connecting to the database");
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    target: target.clone(),
                    source,
                })?;
            let store = Store {
                pool: Pool::Postgres(pool),
                cipher: None,
            };
            tracing::debug!(%target, "database connected; migrating");
            timed(&target, "migrating", store.migrate()).await?;
            Ok(store)
        } else {
            let scheme = uri.split(':').next().unwrap_or_default();
            Err(StoreError::Scheme(format!("{scheme}:")))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// The newest migration this binary carries.
    pub fn known_version(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The newest migration applied to the database, 0 for a fresh one.
    pub async fn schema_version(&self) -> Result<i64> {
        let exists: bool = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(pool)
                .await?
                    > 0
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar::<_, bool>(
                    "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
                )
                .fetch_one(pool)
                .await?
            }
        };
        if !exists {
            return Ok(0);
        }
        let v: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success"
        )
        .fetch_one(pool)
        .await?);
        Ok(v.unwrap_or(0))
    }

    async fn migrate(&self) -> Result<()> {
        let db = self.schema_version().await?;
        let known = self.known_version();
        if db > known {
            return Err(StoreError::SchemaTooNew { db, known });
        }
        on_pool!(self, pool => self.migrator().run(pool).await?);
        Ok(())
    }

    /// A trivial query, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await?.rows_affected());
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}
