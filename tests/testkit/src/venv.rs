//! The cached Python venv holding Synapse: found under the cargo target dir, created once per
//! machine (well, per target dir), shared safely by concurrently running test binaries.
//!
//! Layout under `<target>/`:
//! - `synapse-venv/` — the ready venv; it always contains `testkit-ready` (requirement and
//!   installed version), written last;
//! - `synapse-venv.partial/` — a venv being built; never used directly, renamed when complete;
//! - `synapse-venv.lock` — held (exclusive `flock`) by whoever checks or builds the venv;
//! - `synapse-venv-install.log` — pip's output from the last build, for diagnosing failures.
//!
//! A venv built with an older [`SYNAPSE_REQUIREMENT`], or whose base interpreter vanished, is
//! rebuilt. `python -m …` keeps working after the rename (Python finds the venv from the location
//! of `bin/python`); only pip's console-script shebangs would point at the old path, and we never
//! use them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use crate::FixtureError;

/// The pip requirement installed into the venv. 1.163.2 is the version the protocol notes in
/// `reference/matrix-appservice.md` were observed against; patch releases of that minor are
/// accepted. Changing this string makes every cached venv rebuild on next use.
pub const SYNAPSE_REQUIREMENT: &str = "matrix-synapse>=1.163.2,<1.164";

/// File inside a complete venv; its content is the requirement and the installed version.
const MARKER: &str = "testkit-ready";

/// Environment variable naming an existing venv (with Synapse installed) to use instead of the
/// cached one, e.g. on machines without network access.
pub const VENV_ENV: &str = "TESTKIT_SYNAPSE_VENV";
/// Environment variable naming the Python interpreter used to create the venv (default `python3`).
pub const PYTHON_ENV: &str = "TESTKIT_PYTHON";

/// Synapse's own floor (`Requires-Python: >=3.10`).
const MIN_PYTHON: (u32, u32) = (3, 10);

/// A usable venv: its interpreter and the Synapse version inside.
#[derive(Debug, Clone)]
pub struct SynapseVenv {
    /// `<venv>/bin/python`.
    pub python: PathBuf,
    /// Installed `matrix-synapse` version, e.g. `1.163.2`.
    pub synapse_version: String,
}

/// Workspace root, from this crate's location (`tests/testkit` → `../..`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The cargo target dir: `CARGO_TARGET_DIR` (relative values are taken from the workspace root,
/// where cargo is normally run) or `<workspace root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Returns the Synapse venv, creating it on first use. Blocking (it may run pip for a minute or two);
/// call it from `spawn_blocking` in async code. The result is memoised for the process.
pub fn ensure_venv() -> Result<SynapseVenv, FixtureError> {
    static READY: OnceLock<SynapseVenv> = OnceLock::new();
    if let Some(venv) = READY.get() {
        return Ok(venv.clone());
    }
    let venv = match std::env::var_os(VENV_ENV) {
        Some(dir) if !dir.is_empty() => external_venv(Path::new(&dir))?,
        _ => cached_venv(&target_dir())?,
    };
    Ok(READY.get_or_init(|| venv).clone())
}

/// A venv the developer provided; we only check that Synapse imports.
fn external_venv(dir: &Path) -> Result<SynapseVenv, FixtureError> {
    let python = dir.join("bin/python");
    let synapse_version =
        synapse_version(&python).map_err(|detail| FixtureError::SynapseInstall {
            requirement: SYNAPSE_REQUIREMENT.into(),
            venv: dir.into(),
            log: PathBuf::from("(none: venv given by ".to_owned() + VENV_ENV + ")"),
            detail,
            tail: String::new(),
        })?;
    Ok(SynapseVenv {
        python,
        synapse_version,
    })
}

fn cached_venv(target: &Path) -> Result<SynapseVenv, FixtureError> {
    fs::create_dir_all(target)
        .map_err(|e| FixtureError::io(format!("creating {}", target.display()), e))?;
    let venv = target.join("synapse-venv");
    let lock_path = target.join("synapse-venv.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| FixtureError::io(format!("opening {}", lock_path.display()), e))?;
    // Every process takes the lock even on the fast path: a reader must never see the moment
    // between "old venv removed" and "new venv renamed into place".
    if lock.try_lock().is_err() {
        progress(&format!(
            "waiting for another test process to finish creating {}",
            venv.display()
        ));
        lock.lock()
            .map_err(|e| FixtureError::io(format!("locking {}", lock_path.display()), e))?;
    }
    let result = match read_marker(&venv) {
        Some(version) => Ok(SynapseVenv {
            python: venv.join("bin/python"),
            synapse_version: version,
        }),
        None => build_venv(target, &venv),
    };
    // Dropping the file releases the flock; explicit for clarity.
    drop(lock);
    result
}

/// The installed version if `venv` is complete, built for the current requirement, and its base
/// interpreter still exists (pyenv/Nix upgrades can remove it, leaving a dangling `bin/python`).
fn read_marker(venv: &Path) -> Option<String> {
    let marker = fs::read_to_string(venv.join(MARKER)).ok()?;
    let mut lines = marker.lines();
    if lines.next()? != SYNAPSE_REQUIREMENT {
        return None;
    }
    let version = lines.next()?.to_owned();
    // `exists` follows the symlink, so this checks the base interpreter too.
    venv.join("bin/python").exists().then_some(version)
}

fn build_venv(target: &Path, venv: &Path) -> Result<SynapseVenv, FixtureError> {
    let started = Instant::now();
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".into());
    check_python(&python)?;

    progress(&format!(
        "creating Synapse venv at {} (first run, ~1-2 min)",
        venv.display()
    ));
    let partial = target.join("synapse-venv.partial");
    // A leftover from a run killed mid-install; we hold the lock, so nobody else is using it.
    remove_dir_if_exists(&partial)?;
    let out = Command::new(&python)
        .arg("-m")
        .arg("venv")
        .arg(&partial)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FixtureError::io(format!("running {python} -m venv"), e))?;
    if !out.status.success() {
        return Err(FixtureError::VenvModuleMissing {
            python,
            detail: last_lines(&String::from_utf8_lossy(&out.stderr), 5),
        });
    }

    let log_path = target.join("synapse-venv-install.log");
    let install_error = |detail: String| {
        let tail = fs::read_to_string(&log_path)
            .map(|log| last_lines(&log, 30))
            .unwrap_or_default();
        FixtureError::SynapseInstall {
            requirement: SYNAPSE_REQUIREMENT.into(),
            venv: venv.to_path_buf(),
            log: log_path.clone(),
            detail,
            tail,
        }
    };
    let log = File::create(&log_path)
        .map_err(|e| FixtureError::io(format!("creating {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| FixtureError::io("duplicating the pip log handle", e))?;
    progress(&format!(
        "pip install {SYNAPSE_REQUIREMENT} (output: {})",
        log_path.display()
    ));
    let partial_python = partial.join("bin/python");
    let status = Command::new(&partial_python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            SYNAPSE_REQUIREMENT,
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| FixtureError::io(format!("running {} -m pip", partial_python.display()), e))?;
    if !status.success() {
        return Err(install_error(format!("pip {status}")));
    }
    let version = synapse_version(&partial_python).map_err(install_error)?;

    fs::write(
        partial.join(MARKER),
        format!("{SYNAPSE_REQUIREMENT}\n{version}\n"),
    )
    .map_err(|e| FixtureError::io("writing the venv marker", e))?;
    remove_dir_if_exists(venv)?;
    fs::rename(&partial, venv).map_err(|e| {
        FixtureError::io(
            format!("renaming {} to {}", partial.display(), venv.display()),
            e,
        )
    })?;
    progress(&format!(
        "Synapse {version} installed in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(SynapseVenv {
        python: venv.join("bin/python"),
        synapse_version: version,
    })
}

/// Fails with an actionable message if `python` is missing, too old, or lacks venv/ensurepip
/// (Debian splits those into `python3-venv`).
fn check_python(python: &str) -> Result<(), FixtureError> {
    let out = Command::new(python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FixtureError::PythonMissing {
            detail: if e.kind() == std::io::ErrorKind::NotFound {
                format!("`{python}` was not found on PATH")
            } else {
                format!("`{python}` could not be run: {e}")
            },
        })?;
    if !out.status.success() {
        return Err(FixtureError::PythonMissing {
            detail: format!(
                "`{python}` failed: {}",
                last_lines(&String::from_utf8_lossy(&out.stderr), 3)
            ),
        });
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let parsed = version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    match parsed {
        Some(v) if v >= MIN_PYTHON => {}
        _ => {
            return Err(FixtureError::PythonMissing {
                detail: format!(
                    "`{python}` is Python {version}, Synapse needs >= {}.{}",
                    MIN_PYTHON.0, MIN_PYTHON.1
                ),
            });
        }
    }
    let out = Command::new(python)
        .args(["-c", "import venv, ensurepip"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FixtureError::io(format!("running {python}"), e))?;
    if !out.status.success() {
        return Err(FixtureError::VenvModuleMissing {
            python: python.into(),
            detail: last_lines(&String::from_utf8_lossy(&out.stderr), 2),
        });
    }
    Ok(())
}

/// Imports Synapse in `python` and returns its version, or a description of the failure.
fn synapse_version(python: &Path) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import synapse; print(synapse.__version__)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`import synapse` failed in {}: {}",
            python.display(),
            last_lines(&String::from_utf8_lossy(&out.stderr), 3)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn remove_dir_if_exists(dir: &Path) -> Result<(), FixtureError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(FixtureError::io(format!("removing {}", dir.display()), e))
        }
        _ => Ok(()),
    }
}

/// Progress for humans. Written to the real stderr on purpose: `eprintln!` output of tests is
/// captured by the harness, and a silent two-minute pip install looks like a hang.
pub(crate) fn progress(msg: &str) {
    let _ = writeln!(std::io::stderr(), "testkit: {msg}");
}

/// The last `n` lines of `text`.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_python_names_the_package_to_install() {
        let err = check_python("/nonexistent/python3").unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, FixtureError::PythonMissing { .. }),
            "{message}"
        );
        assert!(message.contains("not found on PATH"), "{message}");
        assert!(
            message.contains("apt-get install python3 python3-venv"),
            "{message}"
        );
    }

    #[test]
    fn missing_venv_module_names_python3_venv() {
        // `false` exits 1 for any arguments: it stands in for a python whose imports fail.
        let err = check_python("false").unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        let err = FixtureError::VenvModuleMissing {
            python: "python3".into(),
            detail: "No module named 'ensurepip'".into(),
        };
        assert!(
            err.to_string().contains("apt-get install python3-venv"),
            "{err}"
        );
    }

    #[test]
    fn target_dir_defaults_under_the_workspace() {
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(target_dir(), workspace_root().join("target"));
        }
        assert!(workspace_root().join("Cargo.toml").is_file());
    }
}
