# Entry point for non-flake users:
#
#   let slack-bridge = import ./path/to/slack-bridge/nix { inherit pkgs; };
#   in { imports = [ slack-bridge.module ]; services.slack-bridge.package = slack-bridge.package; }
#
# `module` is the NixOS module (services.slack-bridge); `package` the bridge built with the
# given pkgs. The module's own default package is the same callPackage of ./package.nix.
{
  pkgs ? import <nixpkgs> { },
  gitRev ? null,
}:

{
  package = pkgs.callPackage ./package.nix { inherit gitRev; };
  module = ./module.nix;
}
