# NixOS module: services.slack-bridge.
#
# A minimal setup (local PostgreSQL, Synapse on the same host, one declarative login whose
# tokens sops-nix decrypts to /run/secrets):
#
#   services.slack-bridge = {
#     enable = true;
#     settings.homeserver.domain = "example.org";
#     logins = [{
#       botTokenFile = "/run/secrets/slack_bot_token";
#       appTokenFile = "/run/secrets/slack_app_token";
#       owner = "@you:example.org";
#     }];
#     registerToSynapse = true;
#   };
#
# Secrets are never put into the Nix store: every `*File` option is a path read at run time
# through systemd's LoadCredential, and the appservice tokens are generated once into the
# state directory (`slack-bridge -g`) and kept across restarts.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    types
    literalExpression
    optional
    optionals
    optionalAttrs
    ;

  cfg = config.services.slack-bridge;
  settingsFormat = pkgs.formats.yaml { };

  unitName = "slack-bridge";
  stateDir = "/var/lib/${unitName}";
  credentialsDir = "/run/credentials/${unitName}.service";
  exe = lib.getExe cfg.package;

  # A path read at run time: a string, so that a Nix path literal (which would be copied
  # into the world-readable store) is refused.
  secretPath = types.strMatching "/.+";
  secretFileOption =
    what:
    mkOption {
      type = types.nullOr secretPath;
      default = null;
      example = "/run/secrets/slack-bridge/${lib.replaceStrings [ " " ] [ "_" ] what}";
      description = "File holding the ${what}, read through systemd's LoadCredential; never copied to the Nix store.";
    };

  # name -> path of every credential the unit loads.
  credentials =
    optionalAttrs (cfg.asTokenFile != null) { as_token = cfg.asTokenFile; }
    // optionalAttrs (cfg.hsTokenFile != null) { hs_token = cfg.hsTokenFile; }
    // optionalAttrs (cfg.encryptionKeyFile != null) { encryption_key = cfg.encryptionKeyFile; }
    // optionalAttrs (cfg.database.uriFile != null) { database_uri = cfg.database.uriFile; }
    // optionalAttrs (cfg.database.passwordFile != null) {
      database_password = cfg.database.passwordFile;
    }
    // optionalAttrs (cfg.oauthClientSecretFile != null) {
      oauth_client_secret = cfg.oauthClientSecretFile;
    }
    // lib.mapAttrs' (
      domain: path: lib.nameValuePair (doublePuppetCredential domain) path
    ) cfg.doublePuppetSecretFiles
    // lib.listToAttrs (
      lib.concatLists (
        lib.imap0 (i: login: [
          (lib.nameValuePair "slack_bot_token_${toString i}" login.botTokenFile)
          (lib.nameValuePair "slack_app_token_${toString i}" login.appTokenFile)
        ]) cfg.logins
      )
    );
  credential = name: "${credentialsDir}/${name}";
  # A credential name for a domain's double-puppet secret (a port's colon is not allowed).
  doublePuppetCredential = domain: "double_puppet_${lib.replaceStrings [ ":" ] [ "_" ] domain}";

  localDatabaseUri = "postgres://${cfg.user}@localhost/${cfg.user}?host=/run/postgresql";
  databaseUri =
    if cfg.database.createLocally then
      localDatabaseUri
    else if cfg.settings.database.uri != null || cfg.database.uriFile != null then
      cfg.settings.database.uri
    else
      "sqlite://${stateDir}/slack-bridge.db";

  # The settings as written, plus what the module manages: token and secret files, the
  # database, the declarative logins. Nulls (unset typed keys) are dropped.
  finalSettings = lib.filterAttrsRecursive (_: v: v != null) (
    lib.recursiveUpdate cfg.settings {
      appservice = {
        as_token_file =
          if cfg.asTokenFile != null then credential "as_token" else "${stateDir}/as_token";
        hs_token_file =
          if cfg.hsTokenFile != null then credential "hs_token" else "${stateDir}/hs_token";
      };
      database = {
        uri = databaseUri;
        encryption_key_file =
          if cfg.encryptionKeyFile != null then
            credential "encryption_key"
          else
            "${stateDir}/slack-bridge.key";
      }
      // optionalAttrs (cfg.database.uriFile != null) { uri_file = credential "database_uri"; }
      // optionalAttrs (cfg.database.passwordFile != null) {
        password_file = credential "database_password";
      };
      slack =
        optionalAttrs (cfg.logins != [ ]) {
          logins = lib.imap0 (i: login: {
            bot_token_file = credential "slack_bot_token_${toString i}";
            app_token_file = credential "slack_app_token_${toString i}";
            inherit (login) owner;
          }) cfg.logins;
        }
        // optionalAttrs (cfg.oauthClientSecretFile != null) {
          oauth.client_secret_file = credential "oauth_client_secret";
        };
      bridge = optionalAttrs (cfg.doublePuppetSecretFiles != { }) {
        double_puppet.secret_files = lib.mapAttrs (
          domain: _: credential (doublePuppetCredential domain)
        ) cfg.doublePuppetSecretFiles;
      };
    }
  );
  configFile = settingsFormat.generate "slack-bridge-config.yaml" finalSettings;

  # `-g` semantics: tokens missing from the state directory are created there once, then
  # the registration is (re)written from the config; the homeserver's group may read it.
  registrationCommands = [
    "${pkgs.coreutils}/bin/mkdir -p -m 0750 ${dirOf cfg.registrationFile}"
    "${exe} -g -c ${configFile} -r ${cfg.registrationFile}"
    "${pkgs.coreutils}/bin/chmod 0640 ${cfg.registrationFile}"
  ];

  homeserverUnits =
    optional cfg.registerToSynapse "matrix-synapse.service"
    ++ optional cfg.registerToTuwunel "${cfg.tuwunelServiceName}.service";

  # What a homeserver on this host needs: to start once the registration exists, and to be
  # allowed to read it.
  readsRegistration = {
    wants = [ "slack-bridge-registration.service" ];
    after = [ "slack-bridge-registration.service" ];
    serviceConfig.SupplementaryGroups = [ cfg.group ];
  };

  # Shared by the bridge and its registration unit.
  serviceConfig = {
    User = cfg.user;
    Group = cfg.group;
    StateDirectory = unitName;
    StateDirectoryMode = "0750";
    WorkingDirectory = stateDir;
    # Only the registration is for the group (chmod above); the tokens and the SQLite
    # database stay the bridge's own.
    UMask = "0077";
    LoadCredential = lib.mapAttrsToList (name: path: "${name}:${path}") credentials;
    EnvironmentFile = optional (cfg.environmentFile != null) cfg.environmentFile;

    # Hardening: the bridge needs outbound TCP (Slack, the homeserver), a listening TCP port,
    # the PostgreSQL Unix socket, and its state directory; nothing else.
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateUsers = true;
    PrivateIPC = true;
    PrivateMounts = true;
    DevicePolicy = "closed";
    ProtectClock = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectControlGroups = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    KeyringMode = "private";
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    SystemCallErrorNumber = "EPERM";
  };
in
{
  options.services.slack-bridge = {
    enable = mkEnableOption "slack-bridge, a Matrix appservice bridge for Slack (Socket Mode)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The slack-bridge package.";
    };

    user = mkOption {
      type = types.str;
      default = "slack-bridge";
      description = "The system user the bridge runs as; also its local PostgreSQL role and database.";
    };

    group = mkOption {
      type = types.str;
      default = "slack-bridge";
      description = "The bridge's group. Members may read the registration (the homeserver hook-ups add the homeserver to it).";
    };

    settings = mkOption {
      description = ''
        config.yaml, as in config.example.yaml (every key is documented there). The keys below
        are typed; any other key is passed through (unknown keys are rejected by the bridge).
        Do not put secrets here: this ends up in the Nix store. Use the `*File` options.
      '';
      default = { };
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          homeserver = mkOption {
            default = { };
            description = "The homeserver the bridge talks to.";
            type = types.submodule {
              freeformType = settingsFormat.type;
              options = {
                address = mkOption {
                  type = types.str;
                  default = "http://127.0.0.1:8008";
                  description = "Client-server API URL of the homeserver. Prefer 127.0.0.1 over localhost.";
                };
                domain = mkOption {
                  type = types.str;
                  example = "example.org";
                  description = "The homeserver's server_name.";
                };
              };
            };
          };
          appservice = mkOption {
            default = { };
            description = "Where the homeserver reaches the bridge.";
            type = types.submodule {
              freeformType = settingsFormat.type;
              options = {
                address = mkOption {
                  type = types.str;
                  default = "http://127.0.0.1:${toString cfg.settings.appservice.port}";
                  defaultText = literalExpression ''"http://127.0.0.1:''${toString config.services.slack-bridge.settings.appservice.port}"'';
                  description = "URL the homeserver uses to reach the bridge (the registration's url).";
                };
                hostname = mkOption {
                  type = types.str;
                  default = "127.0.0.1";
                  description = "Address the bridge listens on.";
                };
                port = mkOption {
                  type = types.port;
                  default = 29319;
                  description = "Port the bridge listens on.";
                };
              };
            };
          };
          database = mkOption {
            default = { };
            description = "The bridge's database (see also services.slack-bridge.database).";
            type = types.submodule {
              freeformType = settingsFormat.type;
              options.uri = mkOption {
                type = types.nullOr types.str;
                default = null;
                example = "postgres://slack-bridge@db.internal/slack-bridge";
                description = ''
                  Database URI without a password (use database.passwordFile). Leave null for the
                  local PostgreSQL (database.createLocally) or, without it, SQLite in the state
                  directory.
                '';
              };
            };
          };
          bridge = mkOption {
            default = { };
            description = "Bridge behaviour.";
            type = types.submodule {
              freeformType = settingsFormat.type;
              options.permissions = mkOption {
                type = types.attrsOf (
                  types.enum [
                    "relay"
                    "user"
                    "admin"
                  ]
                );
                default = {
                  "*" = "relay";
                  ${cfg.settings.homeserver.domain} = "user";
                };
                defaultText = literalExpression ''{ "*" = "relay"; ''${config.services.slack-bridge.settings.homeserver.domain} = "user"; }'';
                example = {
                  "*" = "relay";
                  "example.org" = "user";
                  "@admin:example.org" = "admin";
                };
                description = "Who may do what: `*`, a server name or a user ID, mapped to relay, user or admin.";
              };
            };
          };
        };
      };
    };

    environmentFile = mkOption {
      type = types.nullOr secretPath;
      default = null;
      example = "/run/secrets/slack-bridge.env";
      description = "An EnvironmentFile= with SLACK_BRIDGE_* variables (any secret of the config can come from one).";
    };

    asTokenFile = secretFileOption "appservice as_token" // {
      description = "File with the as_token. Default: generated once into the state directory.";
    };
    hsTokenFile = secretFileOption "appservice hs_token" // {
      description = "File with the hs_token. Default: generated once into the state directory.";
    };
    encryptionKeyFile = secretFileOption "encryption key of the stored Slack tokens" // {
      description = "File with the key that seals the Slack tokens in the database (32 bytes, base64). Default: generated once into the state directory (back it up with the database); `slack-bridge rotate-key` replaces it there.";
    };

    oauthClientSecretFile = secretFileOption "Slack app's OAuth Client Secret" // {
      description = "File with the Slack app's Client Secret (slack.oauth.client_secret), for `login-user` through Slack's approval page; settings.slack.oauth holds the client_id and redirect_url.";
    };
    doublePuppetSecretFiles = mkOption {
      type = types.attrsOf secretPath;
      default = { };
      example = {
        "example.org" = "/run/secrets/slack-bridge/double_puppet";
      };
      description = "Per homeserver domain, a file with `as_token:<token>` of the double-puppet appservice (bridge.double_puppet.secret_files; see the README, Double puppeting), read through LoadCredential.";
    };

    database = {
      createLocally = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Create a local PostgreSQL database and role named after the service user, reached
          over the Unix socket with peer authentication (no password). When false and neither
          settings.database.uri nor database.uriFile is set, the bridge uses SQLite in its
          state directory.
        '';
      };
      uriFile = secretFileOption "database URI";
      passwordFile = secretFileOption "database password";
    };

    logins = mkOption {
      default = [ ];
      description = "Slack logins that come up with no chat steps (slack.logins).";
      type = types.listOf (
        types.submodule {
          options = {
            botTokenFile = mkOption {
              type = secretPath;
              description = "File with the bot token (xoxb-…).";
            };
            appTokenFile = mkOption {
              type = secretPath;
              description = "File with the app-level token (xapp-…, connections:write).";
            };
            owner = mkOption {
              type = types.str;
              example = "@you:example.org";
              description = "The Matrix user who owns the login.";
            };
          };
        }
      );
    };

    registrationFile = mkOption {
      type = types.strMatching "${lib.escapeRegex stateDir}/.+";
      default = "${stateDir}/appservice/registration.yaml";
      description = ''
        Where the appservice registration is written at every start (mode 0640, the bridge's
        group), inside the state directory. Its directory holds nothing else, so tuwunel can
        load it as its appservice_dir.
      '';
    };

    registerToSynapse = mkOption {
      type = types.bool;
      default = false;
      description = "Add the registration to services.matrix-synapse and let Synapse read it.";
    };

    registerToTuwunel = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Let tuwunel (services.matrix-tuwunel, 1.6.0 or later) load the registration from
        `global.appservice_dir`, set to the directory of registrationFile (which holds
        nothing else).

        continuwuity and conduwuit read registrations only from the admin room: after the
        first start, send `!admin appservices register` followed by the contents of
        registrationFile in a code block, then restart the homeserver.
      '';
    };

    tuwunelServiceName = mkOption {
      type = types.str;
      default = "tuwunel";
      description = "The systemd service of tuwunel, for ordering and the group.";
    };

    watchdogSec = mkOption {
      type = types.nullOr types.ints.positive;
      default = 60;
      description = "WatchdogSec= of the unit: systemd restarts a bridge that stops pinging for this long; null for none.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = !(cfg.database.createLocally && (cfg.settings.database.uri != null || cfg.database.uriFile != null));
          message = "services.slack-bridge: database.createLocally is on, so settings.database.uri and database.uriFile must stay unset (or set createLocally = false).";
        }
      ];

      users.users.${cfg.user} = {
        isSystemUser = true;
        inherit (cfg) group;
        home = stateDir;
        description = "slack-bridge service user";
      };
      users.groups.${cfg.group} = { };

      systemd.services.slack-bridge-registration = {
        description = "slack-bridge appservice registration";
        wantedBy = [ "multi-user.target" ];
        before = homeserverUnits ++ [ "slack-bridge.service" ];
        serviceConfig = serviceConfig // {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = registrationCommands;
          RestrictAddressFamilies = [ "AF_UNIX" ];
        };
      };

      systemd.services.slack-bridge = {
        description = "slack-bridge, a Matrix appservice bridge for Slack";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ] ++ homeserverUnits;
        requires = [ "slack-bridge-registration.service" ]
          ++ optional cfg.database.createLocally "postgresql.service";
        after = [
          "network-online.target"
          "slack-bridge-registration.service"
        ]
        # Newer nixpkgs create the ensured roles in postgresql-setup.service; ordering after
        # a unit that does not exist is harmless on older ones.
        ++ optionals cfg.database.createLocally [
          "postgresql.service"
          "postgresql-setup.service"
        ]
        ++ homeserverUnits;
        restartTriggers = [ configFile ];
        unitConfig = {
          # Restarts back off from 5 s to 5 min (below), so an outage of the homeserver or
          # of Slack is waited out without hitting this; a configuration error (exit 78) is
          # not restarted at all.
          StartLimitIntervalSec = 1800;
          StartLimitBurst = 20;
        };
        serviceConfig = serviceConfig // {
          Type = "notify";
          NotifyAccess = "main";
          # Regenerates the registration from the current config at every start, keeping
          # the tokens; a homeserver reads it at its next start.
          ExecStartPre = registrationCommands;
          ExecStart = "${exe} -c ${configFile} -r ${cfg.registrationFile}";
          Restart = "on-failure";
          RestartSec = "5s";
          RestartSteps = 10;
          RestartMaxDelaySec = "5min";
          RestartPreventExitStatus = "78";
          TimeoutStartSec = "5min";
        }
        // optionalAttrs (cfg.watchdogSec != null) { WatchdogSec = "${toString cfg.watchdogSec}s"; };
      };
    }

    (mkIf cfg.database.createLocally {
      services.postgresql = {
        enable = true;
        ensureDatabases = [ cfg.user ];
        ensureUsers = [
          {
            name = cfg.user;
            ensureDBOwnership = true;
          }
        ];
      };
    })

    (mkIf cfg.registerToSynapse {
      services.matrix-synapse.settings.app_service_config_files = [ cfg.registrationFile ];
      systemd.services.matrix-synapse = readsRegistration;
    })

    (mkIf cfg.registerToTuwunel {
      services.matrix-tuwunel.settings.global.appservice_dir = dirOf cfg.registrationFile;
      systemd.services.${cfg.tuwunelServiceName} = readsRegistration;
    })
  ]);
}
