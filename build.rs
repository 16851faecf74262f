//! Records the git revision for `slack-bridge --version`. In a clone it asks git; where there
//! is no repository (a Nix build, a source tarball) `SLACK_BRIDGE_GIT_REV` can name it, and
//! otherwise the version says `unknown revision`. Never fails the build.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=SLACK_BRIDGE_GIT_REV");
    let from_env = std::env::var("SLACK_BRIDGE_GIT_REV")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let rev = from_env.or_else(|| {
        // Rebuild when HEAD moves: HEAD itself, the branch it points to, and packed refs.
        if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
            println!("cargo:rerun-if-changed={dir}/HEAD");
            if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
            {
                println!("cargo:rerun-if-changed={common}/packed-refs");
                if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    println!("cargo:rerun-if-changed={common}/{head_ref}");
                }
            }
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    let rev = rev.unwrap_or_else(|| "unknown revision".to_owned());
    println!("cargo:rustc-env=SLACK_BRIDGE_GIT_REV={rev}");
}
