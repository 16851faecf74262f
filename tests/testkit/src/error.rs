//! The one error type of the fixture; every message says what went wrong and what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while preparing, running or talking to the test homeserver.
///
/// Messages are written for the developer reading a failed test: they name the missing piece and
/// the command that installs it, and startup failures carry the tail of Synapse's log.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// No usable Python interpreter.
    #[error(
        "python3 is required to run the Synapse test homeserver but {detail}; install Python >= 3.10 \
         (Debian/Ubuntu: `apt-get install python3 python3-venv`, Fedora: `dnf install python3`), \
         or point TESTKIT_PYTHON at an interpreter"
    )]
    PythonMissing { detail: String },

    /// Python is there but cannot create virtual environments.
    #[error(
        "`{python} -m venv` is not usable ({detail}); install the venv module \
         (Debian/Ubuntu: `apt-get install python3-venv`, or python3.X-venv matching `{python} --version`)"
    )]
    VenvModuleMissing { python: String, detail: String },

    /// `pip install matrix-synapse` (or the import check after it) failed.
    #[error(
        "installing {requirement} into {venv} failed ({detail}); full pip output in {log}; \
         PyPI must be reachable (set PIP_INDEX_URL / HTTPS_PROXY if needed), or set \
         TESTKIT_SYNAPSE_VENV to an existing venv with Synapse installed.\n--- pip output tail ---\n{tail}"
    )]
    SynapseInstall {
        requirement: String,
        venv: PathBuf,
        log: PathBuf,
        detail: String,
        tail: String,
    },

    /// A registration file passed in `SynapseConfig::registrations` does not exist.
    #[error(
        "appservice registration {0} does not exist; write it before starting Synapse \
         (Synapse reads registrations only at startup)"
    )]
    RegistrationMissing(PathBuf),

    /// The homeserver (`server`: synapse or tuwunel) exited before it answered
    /// `/_matrix/client/versions`.
    #[error("{server} exited during startup ({status}); log tail:\n{log_tail}")]
    StartupExited {
        server: &'static str,
        status: String,
        log_tail: String,
    },

    /// The homeserver did not answer `/_matrix/client/versions` in time.
    #[error("{server} did not answer {url} within {secs} s; log tail:\n{log_tail}")]
    StartupTimeout {
        server: &'static str,
        url: String,
        secs: u64,
        log_tail: String,
    },

    /// No tuwunel binary: neither the environment variable nor the vendored archive.
    #[error(
        "no tuwunel binary: {detail}. Put the vendored build at {archive} (gzip, as in the repo's \
         sibling `shared/vendor/tuwunel/`), or point {env} at an unpacked tuwunel binary"
    )]
    TuwunelMissing {
        env: &'static str,
        archive: PathBuf,
        detail: String,
    },

    /// An admin-room command was not answered as expected.
    #[error("tuwunel's admin room answered `{command}` with: {reply}")]
    AdminCommand { command: String, reply: String },

    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The HTTP request itself failed (connection refused, timeout, undecodable body).
    #[error("{method} {url}: {source}")]
    Http {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The homeserver answered with a non-2xx status.
    #[error("{method} {url} returned {status}: {body}")]
    Matrix {
        method: String,
        url: String,
        status: u16,
        /// `errcode` from the Matrix error body, if there was one.
        errcode: Option<String>,
        body: String,
    },

    /// The homeserver answered 2xx but the body lacked something we need.
    #[error("{method} {url}: unexpected response: {detail}")]
    UnexpectedResponse {
        method: String,
        url: String,
        detail: String,
    },

    /// A polling helper gave up.
    #[error("timed out after {secs:.1} s waiting for {what}; last seen: {last_seen}")]
    Timeout {
        what: String,
        secs: f64,
        last_seen: String,
    },
}

impl FixtureError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        FixtureError::Io {
            context: context.into(),
            source,
        }
    }

    /// The Matrix `errcode` (e.g. `M_FORBIDDEN`) if this is an error answer from the homeserver.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            FixtureError::Matrix { errcode, .. } => errcode.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status if this is an error answer from the homeserver.
    pub fn status(&self) -> Option<u16> {
        match self {
            FixtureError::Matrix { status, .. } => Some(*status),
            _ => None,
        }
    }
}
