//! `slack-bridge doctor`: every startup check, run without starting the bridge, each reported
//! with its outcome so the operator sees all that is wrong in one go.

use std::{path::Path, sync::Arc};

use tokio::sync::Notify;

use crate::{
    Error, bind,
    config::{Config, Mode},
    matrix::{self, appservice::AppserviceState},
    matrix_client, server,
    store::Store,
};

fn report(ok: bool, what: &str, detail: &str) {
    let mark = if ok { "ok  " } else { "FAIL" };
    if detail.is_empty() {
        println!("[{mark}] {what}");
    } else {
        println!("[{mark}] {what}: {detail}");
    }
}

/// Runs the checks, printing each; fails when any failed.
pub async fn run(config_path: &Path, registration: &Path) -> Result<(), Error> {
    let config = match Config::load(config_path, Mode::Run) {
        Ok(c) => {
            report(true, "config", &config_path.display().to_string());
            c
        }
        Err(e) => {
            report(false, "config", &e.to_string());
            return Err(Error::Doctor("the config has problems (above)".into()));
        }
    };
    let mut failures = 0;
    let store = match Store::connect(config.database.uri(), 1).await {
        Ok(s) => {
            let v = s.schema_version().await.unwrap_or_default();
            report(
                true,
                "database",
                &format!("{:?}, schema version {v}", s.dialect()),
            );
            Some(s)
        }
        Err(e) => {
            failures += 1;
            report(false, "database", &e.to_string());
            None
        }
    };
    let client = Arc::new(matrix_client(&config)?);
    let hs_ok = match matrix::checks::homeserver(&client, registration).await {
        Ok(()) => {
            report(
                true,
                "homeserver",
                &format!(
                    "{} accepts the as_token of {}",
                    config.homeserver.address,
                    client.bot()
                ),
            );
            true
        }
        Err(e) => {
            failures += 1;
            report(false, "homeserver", &e.to_string());
            false
        }
    };
    if hs_ok {
        // Listen like the bridge would, unless a running bridge already does: then the ping
        // reaches that one, which proves the same thing.
        let listener = match (bind(&config).await, &store) {
            (Ok(l), Some(store)) => Some((l, store.clone())),
            (Ok(_), None) => None,
            (Err(e), _) => {
                println!("       (listener: {e}; pinging whatever listens there)");
                None
            }
        };
        let server = listener.map(|(listener, store)| {
            let state = AppserviceState::new(&config, store, Arc::new(Notify::new()));
            server::spawn(listener, server::router(state, client.clone(), None, false))
        });
        match matrix::checks::ping(&client, &config.appservice.address).await {
            Ok(rtt) => report(
                true,
                "appservice ping",
                &format!(
                    "the homeserver reached the bridge at {} ({} ms)",
                    config.appservice.address,
                    rtt.as_millis()
                ),
            ),
            Err(e) => {
                failures += 1;
                report(false, "appservice ping", &e.to_string());
            }
        }
        if let Some((stop, _)) = server {
            let _ = stop.send(true);
        }
    }
    if failures == 0 {
        println!("All checks passed.");
        Ok(())
    } else {
        Err(Error::Doctor(format!("{failures} check(s) failed (above)")))
    }
}
