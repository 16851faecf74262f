//! Helpers shared by the integration tests: the two databases every store test runs on, a
//! bridge next to a real homeserver, and [`on_both_homeservers!`](crate::on_both_homeservers)
//! to run a test on Synapse and on tuwunel.

#![allow(dead_code)]

pub mod bridge;
pub mod logs;
pub mod process;
pub mod world;

use slack_bridge::store::Store;
use sqlx::{Connection, PgConnection};

/// Runs each `async fn case(hs: testkit::HomeserverKind)` of the file on Synapse and on tuwunel,
/// as the tests `synapse::case` and `tuwunel::case`; cases listed after `synapse_only:` or
/// `tuwunel_only:` run on that one (they test a behaviour the other server does not have).
/// Without the tuwunel binary the tuwunel variants print a NOT RUN line, and fail under `CI`.
#[macro_export]
macro_rules! on_both_homeservers {
    (
        $($case:ident),* $(,)?
        $(; synapse_only: $($s_case:ident),* $(,)?)?
        $(; tuwunel_only: $($t_case:ident),* $(,)?)?
    ) => {
        mod synapse {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(::testkit::HomeserverKind::Synapse).await;
                }
            )*
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $s_case() {
                    super::$s_case(::testkit::HomeserverKind::Synapse).await;
                }
            )*)?
        }
        mod tuwunel {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let hs = ::testkit::HomeserverKind::Tuwunel;
                    if hs.available_for(concat!("tuwunel::", stringify!($case))) {
                        super::$case(hs).await;
                    }
                }
            )*
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $t_case() {
                    let hs = ::testkit::HomeserverKind::Tuwunel;
                    if hs.available_for(concat!("tuwunel::", stringify!($t_case))) {
                        super::$t_case(hs).await;
                    }
                }
            )*)?
        }
    };
}

/// [`on_every_homeserver_and_database!`]'s inner half: one homeserver, both databases.
#[macro_export]
macro_rules! on_both_databases {
    ($hs:ident, $name:ident; $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let hs = ::testkit::HomeserverKind::$hs;
                    if hs.available_for(concat!(stringify!($name), "::sqlite::", stringify!($case))) {
                        super::super::$case(hs, None).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let hs = ::testkit::HomeserverKind::$hs;
                    if hs.available_for(concat!(stringify!($name), "::postgres::", stringify!($case)))
                        && let Some(db) = super::super::TestDb::postgres(stringify!($case)).await
                    {
                        super::super::$case(hs, Some(db)).await;
                    }
                }
            )*
        }
    };
}

/// Runs each `async fn case(hs: testkit::HomeserverKind, db: Option<TestDb>)` of the file on
/// Synapse and tuwunel, each on SQLite and PostgreSQL (`synapse::sqlite::case`, …).
#[macro_export]
macro_rules! on_every_homeserver_and_database {
    ($($case:ident),* $(,)?) => {
        mod synapse {
            $crate::on_both_databases!(Synapse, synapse; $($case),*);
        }
        mod tuwunel {
            $crate::on_both_databases!(Tuwunel, tuwunel; $($case),*);
        }
    };
}

/// The environment variable naming the PostgreSQL server the tests may create databases on.
pub const PG_ENV: &str = "TEST_DATABASE_URL";

/// A throwaway database: a SQLite file in a temp dir, or a fresh PostgreSQL database that is
/// dropped again when the test ends.
pub struct TestDb {
    pub uri: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let uri = format!("sqlite://{}", dir.path().join("bridge.db").display());
        TestDb {
            uri,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (after saying so loudly) when
    /// `TEST_DATABASE_URL` is unset outside CI. In CI (`CI` set) the variable is required.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(admin) = std::env::var(PG_ENV) else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{PG_ENV} is not set, so the PostgreSQL store tests cannot run; CI must run them (.ci/run sets it)"
                );
            }
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! {test}: PostgreSQL variant NOT RUN: set {PG_ENV}=postgres://user@127.0.0.1:5432/test (or run .ci/run) !!!\n"
            );
            return None;
        };
        let name = format!(
            "sbtest_{}_{}",
            std::process::id(),
            slack_bridge::config::secret::random_token(10)
                .unwrap()
                .to_lowercase()
                .replace(['-', '_'], "x")
        );
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {PG_ENV}={admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        Some(TestDb {
            uri: url.to_string(),
            _dir: None,
            pg: Some((admin, name)),
        })
    }

    pub async fn connect(&self) -> Store {
        Store::connect(&self.uri, 5).await.expect("connect store")
    }

    /// Runs `sql` on the database itself, past the store (to write what an older release
    /// wrote, or read what is on disk).
    pub async fn raw_exec(&self, sql: &str) {
        raw_exec(&self.uri, sql).await
    }

    /// The first column of `sql`'s rows, as text.
    pub async fn raw_strings(&self, sql: &str) -> Vec<String> {
        raw_strings(&self.uri, sql).await
    }
}

/// Runs `sql` on the database at `uri` directly, past the store.
pub async fn raw_exec(uri: &str, sql: &str) {
    if uri.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(uri).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = PgConnection::connect(uri).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    }
}

/// A `SELECT COUNT(*)` straight on the database at `uri`.
pub async fn raw_count(uri: &str, sql: &str) -> i64 {
    if uri.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(uri).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = PgConnection::connect(uri).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

/// Every `table.column` of the database at `uri` where some row's value contains `needle`
/// (every table and column the bridge has, whatever their type). For SQLite, the file and
/// its write-ahead log are searched too once checkpointed: `file:` entries.
pub async fn places_holding(uri: &str, needle: &str) -> Vec<String> {
    let columns_sql = if uri.starts_with("sqlite:") {
        "SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p
         WHERE m.type = 'table'"
    } else {
        "SELECT table_name || '.' || column_name FROM information_schema.columns
         WHERE table_schema = 'public'"
    };
    let mut found = Vec::new();
    for column in raw_strings(uri, columns_sql).await {
        let (table, col) = column.split_once('.').unwrap();
        let sql = format!(
            "SELECT COUNT(*) FROM \"{table}\" WHERE CAST(\"{col}\" AS TEXT) LIKE '%{needle}%'"
        );
        if raw_count(uri, &sql).await > 0 {
            found.push(column);
        }
    }
    if let Some(path) = uri.strip_prefix("sqlite://") {
        raw_exec(uri, "PRAGMA wal_checkpoint(TRUNCATE)").await;
        for file in [path.to_owned(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("file:{file}"));
            }
        }
    }
    found
}

/// The first column of `sql`'s rows on the database at `uri`, as text.
pub async fn raw_strings(uri: &str, sql: &str) -> Vec<String> {
    if uri.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(uri).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = PgConnection::connect(uri).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs outside the test's runtime; a short-lived one cleans up.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}
