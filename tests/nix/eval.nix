# Evaluates nix/module.nix for real with nixpkgs' lib.evalModules, next to stubs of only the
# NixOS options the module sets (systemd.services, users, services.postgresql, the
# homeserver hook-ups, assertions) and of the few pkgs attributes it reads. Used by
# tests/nix_module.rs:
#
#   nix-instantiate --eval --strict --json tests/nix/eval.nix \
#     --arg lib 'import <nixpkgs-lib>/lib' --arg scenario ./scenario.nix
#
# `scenario` is a NixOS module setting services.slack-bridge. The result is JSON: the units,
# the PostgreSQL and homeserver settings, the users, the failed assertions, and the rendered
# config.yaml (its path in the unit, and its text).
{
  lib,
  scenario,
}:

let
  inherit (lib) mkOption types;
  anything = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };
  # What NixOS's own types would merge: lists of the same option concatenate.
  unit = types.submodule {
    freeformType = types.attrsOf types.anything;
    options = {
      wants = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      after = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      serviceConfig = mkOption {
        type = types.attrsOf types.anything;
        default = { };
      };
    };
  };

  stubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.anything;
        default = [ ];
      };
      systemd.services = mkOption {
        type = types.attrsOf unit;
        default = { };
      };
      users.users = anything;
      users.groups = anything;
      services.postgresql = anything;
      services.matrix-synapse.settings.app_service_config_files = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      services.matrix-tuwunel.settings = anything;
    };
  };

  pkgs = {
    # The real one renders YAML with remarshal in a derivation. Here the "file" is a path
    # that keeps the value beside it, so the test can write it out (JSON is YAML) and give it
    # to `slack-bridge validate-config`.
    formats.yaml =
      { }:
      {
        type = types.attrsOf types.anything;
        generate = name: value: {
          outPath = "/stub/store/${name}";
          settings = value;
        };
      };
    coreutils = "/stub/coreutils";
    callPackage = _: _: throw "the scenario sets services.slack-bridge.package";
  };

  package = {
    type = "derivation";
    name = "slack-bridge";
    outPath = "/stub/slack-bridge";
    meta.mainProgram = "slack-bridge";
  };

  evaluated = lib.evalModules {
    modules = [
      stubs
      ../../nix/module.nix
      scenario
      { services.slack-bridge.package = lib.mkDefault package; }
    ];
    specialArgs = { inherit pkgs; };
  };
  config = evaluated.config;
  # The module restarts the bridge when its config changes: that trigger is the config file.
  configFile = builtins.head config.systemd.services.slack-bridge.restartTriggers;
in
{
  units = config.systemd.services;
  postgresql = config.services.postgresql;
  synapse = config.services.matrix-synapse.settings;
  tuwunel = config.services.matrix-tuwunel.settings;
  users = config.users;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  configFile = "${configFile}";
  configText = builtins.toJSON configFile.settings;
}
