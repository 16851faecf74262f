# slack-bridge as a Nix package, built from Cargo.lock. The tests need a Synapse and a Slack
# emulator, so they do not run in the sandboxed build; `bash .ci/run` runs them.
{
  lib,
  rustPlatform,
  # The git revision `slack-bridge --version` prints; there is no .git in the build sandbox.
  gitRev ? null,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "slack-bridge";
  inherit (cargoToml.package) version;

  # Only what the build reads, so editing the README or nix/ does not rebuild the package
  # (and target/ never enters the store). tests/ holds two workspace members whose manifests
  # cargo needs to resolve the workspace.
  src = lib.cleanSourceWith {
    name = "slack-bridge-source";
    src = ../.;
    filter =
      path: _type:
      let
        relative = lib.removePrefix (toString ../. + "/") (toString path);
      in
      lib.any (keep: relative == keep || lib.hasPrefix "${keep}/" relative) [
        "Cargo.toml"
        "Cargo.lock"
        "build.rs"
        "src"
        "migrations"
        "tests"
        "config.example.yaml"
        "registration.example.yaml"
      ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # Builds the root package (the bridge) only, not the test-support crates.
  cargoBuildFlags = [
    "--package"
    "slack-bridge"
  ];
  doCheck = false;

  env = lib.optionalAttrs (gitRev != null) { SLACK_BRIDGE_GIT_REV = gitRev; };

  meta = {
    description = cargoToml.package.description;
    homepage = cargoToml.package.repository;
    license = lib.licenses.mit;
    mainProgram = "slack-bridge";
    platforms = lib.platforms.linux;
  };
}
