//! Startup checks of the homeserver connection, each failing with one paragraph that names the
//! cause and the fix: the classic hours-long appservice misconfigurations, diagnosed in a line.

use std::{path::Path, time::Duration};

use tokio::net::TcpStream;

use super::{MatrixClient, MatrixError};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("homeserver.address `{0}` is not a usable http(s) URL")]
    BadAddress(String),
    #[error(
        "cannot resolve the homeserver host `{host}`: {error}. Use the homeserver's IP address in homeserver.address, e.g. http://127.0.0.1:8008"
    )]
    Resolve { host: String, error: String },
    #[error(
        "cannot connect to the homeserver at {address}; tried every address `{host}` resolves to:\n{tried}\n{hint}"
    )]
    Unreachable {
        address: String,
        host: String,
        tried: String,
        hint: String,
    },
    #[error(
        "something listens at {address} but it does not answer as a Matrix homeserver ({error}). Check homeserver.address: it must be the client-server API base URL, e.g. http://127.0.0.1:8008"
    )]
    NotMatrix { address: String, error: String },
    #[error(
        "the homeserver does not know this as_token ({errcode}: {error}): the registration file ({registration}) is not loaded, holds other tokens than config.yaml, or the homeserver was not restarted after registering it. Fix: run `slack-bridge -g` (it keeps the tokens of config.yaml), then on Synapse list the file under app_service_config_files in homeserver.yaml and restart Synapse; on tuwunel put it in a [global.appservice.<id>] table or appservice_dir and restart tuwunel; or, on tuwunel / continuwuity / conduwuit, send `!admin appservices register` with the file's YAML in a code block in the admin room (effective at once)"
    )]
    UnknownToken {
        registration: String,
        errcode: String,
        error: String,
    },
    #[error(
        "the as_token belongs to {actual}, not to the bot {expected}: the registration's sender_localpart differs from appservice.bot.username. Regenerate the registration with `slack-bridge -g`, install it and restart the homeserver"
    )]
    WrongBot { expected: String, actual: String },
    #[error(
        "the homeserver knows the as_token but has no user {bot} ({errcode}: {error}), and the bridge could not register it ({register_error}). tuwunel before 1.6.0 does not create the sender_localpart user of a registration from its config file. Fix: check that the registration's sender_localpart is appservice.bot.username and that its user namespaces include {bot} (`slack-bridge -g` writes both), then restart the homeserver; or register the appservice with `!admin appservices register` in the admin room, which creates the user"
    )]
    BotMissing {
        bot: String,
        errcode: String,
        error: String,
        register_error: String,
    },
    #[error(
        "the homeserver could not reach the bridge at {address}: {errcode}: {error}. Check that the bridge listens where the registration's url points (appservice.hostname/port vs appservice.address), that both use the same IP family (127.0.0.1 vs [::1]: prefer the literal 127.0.0.1), and that no firewall blocks the port. If you changed appservice.address, regenerate the registration and restart the homeserver"
    )]
    PingFailed {
        address: String,
        errcode: String,
        error: String,
    },
    #[error("homeserver check failed: {0}")]
    Matrix(#[from] MatrixError),
}

/// Connects to every address the homeserver's host resolves to; succeeds when one accepts.
/// When all fail, the error lists each address with its error.
pub async fn reachability(address: &str) -> Result<(), CheckError> {
    let url = url::Url::parse(address).map_err(|_| CheckError::BadAddress(address.into()))?;
    let host = url
        .host_str()
        .ok_or_else(|| CheckError::BadAddress(address.into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| CheckError::BadAddress(address.into()))?;
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| CheckError::Resolve {
            host: host.clone(),
            error: e.to_string(),
        })?
        .collect();
    let mut tried = Vec::new();
    for addr in &addrs {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {
                if !tried.is_empty() {
                    tracing::warn!(
                        %host,
                        failed = %tried.join("; "),
                        working = %addr,
                        "some addresses of the homeserver do not answer; consider the literal working address in homeserver.address"
                    );
                }
                return Ok(());
            }
            Ok(Err(e)) => tried.push(format!("{addr} {e}")),
            Err(_) => tried.push(format!("{addr} timed out after 5 s")),
        }
    }
    let is_name = host.parse::<std::net::IpAddr>().is_err();
    let hint = if is_name {
        format!(
            "`{host}` is a name: the homeserver may listen on only one of these addresses. Put the literal address it listens on in homeserver.address (usually http://127.0.0.1:{port}), and check that the homeserver is running."
        )
    } else {
        "Check that the homeserver is running and listens on this address and port.".to_owned()
    };
    Err(CheckError::Unreachable {
        address: address.to_owned(),
        host: host.clone(),
        tried: tried
            .iter()
            .map(|t| format!("  {host} → {t}"))
            .collect::<Vec<_>>()
            .join("\n"),
        hint,
    })
}

fn is_token_error(errcode: &str) -> bool {
    errcode == "M_UNKNOWN_TOKEN" || errcode == "M_MISSING_TOKEN" || errcode == "M_FORBIDDEN"
}

/// Reachability, then `/versions`, then the bot registered (homeservers that do not create the
/// registration's `sender_localpart` user get it now), then `whoami` as the bot.
pub async fn homeserver(client: &MatrixClient, registration: &Path) -> Result<(), CheckError> {
    reachability(client.base_url()).await?;
    client
        .load_versions()
        .await
        .map_err(|e| CheckError::NotMatrix {
            address: client.base_url().to_owned(),
            error: e.to_string(),
        })?;
    // `M_USER_IN_USE` (the usual answer: Synapse and newer tuwunel create the user) is success.
    // Any failure (an unknown token too) is diagnosed by `whoami` below, which names the cause.
    let registered = client.ensure_registered(client.bot()).await;
    if let Err(e) = &registered {
        tracing::debug!(error = %e, bot = %client.bot(), "registering the bot failed; whoami decides");
    }
    match client.whoami(None).await {
        Ok(user) if user.as_str() == client.bot().as_str() => Ok(()),
        Ok(user) => Err(CheckError::WrongBot {
            expected: client.bot().to_string(),
            actual: user.to_string(),
        }),
        Err(MatrixError::Api { errcode, error, .. }) if is_token_error(&errcode) => {
            Err(CheckError::UnknownToken {
                registration: registration.display().to_string(),
                errcode,
                error,
            })
        }
        Err(MatrixError::Api {
            status: 404,
            errcode,
            error,
            ..
        }) => Err(CheckError::BotMissing {
            bot: client.bot().to_string(),
            errcode,
            error,
            register_error: match registered {
                Ok(()) => "it reported success".to_owned(),
                Err(e) => e.to_string(),
            },
        }),
        Err(e) => Err(e.into()),
    }
}

/// A homeserver's error text with any `access_token=…` query value blanked: tuwunel quotes
/// the URL it called, hs_token included, when the ping cannot reach the bridge.
fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("access_token=") {
        let (head, tail) = rest.split_at(i + "access_token=".len());
        out.push_str(head);
        out.push_str("***");
        let end = tail
            .find(|c: char| c == '&' || c == ')' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Asks the homeserver to call the bridge back. A success also makes Synapse retry at once
/// the transactions it queued while the bridge was away.
pub async fn ping(client: &MatrixClient, appservice_address: &str) -> Result<Duration, CheckError> {
    let txn = format!("startup-{}", crate::store::now_ms());
    match client.ping(&txn).await {
        Ok(d) => Ok(d),
        Err(MatrixError::Api { errcode, error, .. }) if errcode == "M_UNRECOGNIZED" => {
            tracing::warn!(
                %error,
                "the homeserver does not support the appservice ping (Matrix 1.7); cannot verify that it reaches the bridge"
            );
            Ok(Duration::ZERO)
        }
        Err(MatrixError::Api { errcode, error, .. }) => Err(CheckError::PingFailed {
            address: appservice_address.to_owned(),
            errcode,
            error: redact_tokens(&error),
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_tokens;

    #[test]
    fn tokens_in_homeserver_errors_are_blanked() {
        assert_eq!(
            redact_tokens(
                "Request error: error sending request for url (http://127.0.0.1:1/_matrix/app/v1/ping?access_token=s3cret)"
            ),
            "Request error: error sending request for url (http://127.0.0.1:1/_matrix/app/v1/ping?access_token=***)"
        );
        assert_eq!(
            redact_tokens("a?access_token=x&b=1 access_token=y"),
            "a?access_token=***&b=1 access_token=***"
        );
        assert_eq!(redact_tokens("nothing here"), "nothing here");
    }
}
