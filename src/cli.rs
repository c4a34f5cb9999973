//! Commands and options (SPEC §1). The `-o key=value` form of mount(8)/fstab maps onto the same
//! `MountOptions` as the `--long-flag VALUE` form: dashes become underscores, nothing else.
//! These names are a public interface: add, never rename.

use crate::altinn::auth::TokenConfig;
use crate::emulator::{EmulatorConfig, TestTokenFor, TestTokenRequest};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "altinnfs",
    version,
    about = "Mount an Altinn 3 app as a filesystem"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the embedded emulator with sample data and mount it; Ctrl-C unmounts.
    Demo {
        mountpoint: PathBuf,
        #[command(flatten)]
        opts: MountOptions,
    },
    /// Mount ORG/APP at MOUNTPOINT (daemonises once the mount is ready, unless --foreground).
    Mount {
        /// The app, as ORG/APP (for example ttd/altinnfs-demo).
        app: String,
        mountpoint: PathBuf,
        #[command(flatten)]
        opts: MountOptions,
    },
    /// Run the local, disk-backed Altinn emulator.
    Emulator(EmulatorArgs),
    /// Print a test token from an emulator (or app-localtest).
    Token(TokenArgs),
    /// Failed uploads kept in unsent/: list them, send them again, or discard them.
    Unsent(UnsentArgs),
    /// State of running mounts: app, environment, token expiry (never the token), pending
    /// uploads, unsent files, cache size, request and error counts.
    Status(StatusArgs),
    /// Show (--show) or delete (--clear) the metadata index of ORG/APP for this token.
    Cache(CacheArgs),
    /// Print the change feed of ORG/APP as JSON lines, polling the server once first.
    Changes(ChangesArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Env {
    Prod,
    Tt02,
    Local,
}

#[derive(Debug, Clone, Args, Default)]
pub struct MountOptions {
    /// Environment that picks the hosts: prod, tt02 or local (app-localtest).
    #[arg(long, value_enum)]
    pub env: Option<Env>,
    /// The app's base URL, path included (https://ttd.apps.tt02.altinn.no/ttd/myapp).
    #[arg(long)]
    pub app_url: Option<String>,
    /// The platform's base URL (https://platform.tt02.altinn.no).
    #[arg(long)]
    pub platform_url: Option<String>,
    /// Read the token from this file (re-read when it changes).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Run this command to get a token (again near expiry or after a 401).
    #[arg(long)]
    pub token_command: Option<String>,
    /// Maskinporten client id (with --maskinporten-key and --scope).
    #[arg(long)]
    pub maskinporten_client_id: Option<String>,
    /// Maskinporten signing key: a JWK or PEM file.
    #[arg(long)]
    pub maskinporten_key: Option<PathBuf>,
    /// Maskinporten scopes (space separated).
    #[arg(long)]
    pub scope: Option<String>,
    /// Key id (`kid`) to put in the Maskinporten grant header for a PEM key.
    #[arg(long)]
    pub maskinporten_kid: Option<String>,
    /// Maskinporten token endpoint (default: the environment's).
    #[arg(long)]
    pub maskinporten_url: Option<String>,
    /// Stay in the foreground (default: daemonise once mounted).
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Mount read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Seconds metadata stays fresh in the cache.
    #[arg(long, default_value_t = 30)]
    pub metadata_ttl: u64,
    /// Number of entries in the metadata LRU cache; also the inodes the kernel may hold
    /// before the least recently walked instance directories are dropped from its cache.
    #[arg(long, default_value_t = 100_000)]
    pub cache_entries: usize,
    /// Owner uid of all entries (default: the mounting user).
    #[arg(long)]
    pub uid: Option<u32>,
    /// Owner gid of all entries (default: the mounting user's group).
    #[arg(long)]
    pub gid: Option<u32>,
    /// Mode of writable files (octal).
    #[arg(long, value_parser = parse_octal, default_value = "644")]
    pub file_mode: u32,
    /// Mode of directories (octal).
    #[arg(long, value_parser = parse_octal, default_value = "755")]
    pub dir_mode: u32,
    /// Let other users see the mount (off by default: this is personal data).
    #[arg(long)]
    pub allow_other: bool,
    /// Restrict to these parties (repeatable).
    #[arg(long)]
    pub party: Vec<String>,
    /// Extra Storage query filter KEY=VALUE (repeatable).
    #[arg(long)]
    pub query: Vec<String>,
    /// Add JSON views (X.json) of form data files.
    #[arg(long)]
    pub form_json: bool,
    /// Party of stateless data requests (`party: partyid:N` header); default: the first --party.
    #[arg(long, value_name = "N")]
    pub stateless_party: Option<String>,
    /// Hard-delete instances on rmdir (default: soft delete).
    #[arg(long)]
    pub hard: bool,
    /// Where spools, the blob cache and unsent/ live (default: ~/.cache/altinnfs).
    #[arg(long)]
    pub spool_dir: Option<PathBuf>,
    /// Size of the on-disk blob cache in MiB.
    #[arg(long, default_value_t = 2048)]
    pub cache_size: u64,
    /// Files of a directory walk (cp -r, tar, rsync) downloaded ahead in parallel (0 = off).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub prefetch_files: usize,
    /// Microseconds the session thread watches for the next request after answering from
    /// memory before it sleeps: halves the time of a `find` or `ls -R` (0 = off).
    #[arg(long, value_name = "US", default_value_t = 50)]
    pub busy_poll_us: u64,
    /// Files opened read-only bypass the kernel's page cache: faster for big reads with big
    /// buffers (cp, dd bs=1M), slower for small reads (tar); mmap works on Linux 6.6 and later.
    #[arg(long)]
    pub direct_io: bool,
    /// Log level (error, warn, info, debug, trace) or a RUST_LOG filter.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Append logs to this file.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Log line format: text, or json (one object per line, for log shippers).
    #[arg(long, value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
    /// Upload what `unsent/` holds once at start and then with backoff (`--retry-unsent false`
    /// or `-o retry_unsent=false` turns it off).
    #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub retry_unsent: bool,
    /// Where the metadata index lives (default: $XDG_CACHE_HOME/altinnfs, else ~/.cache/altinnfs).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Seconds between asks for what changed on the server (0 = off).
    #[arg(long, default_value_t = 30)]
    pub poll_interval: u64,
    /// Hours between full listings, which notice hard deletes (0 = only the first).
    #[arg(long, default_value_t = 24)]
    pub full_refresh_hours: u64,
    /// Days the change feed keeps its lines.
    #[arg(long, default_value_t = 30)]
    pub feed_days: u64,
    /// Run `sh -c CMD` once per batch of changes, the batch's feed lines on its stdin.
    #[arg(long, value_name = "CMD")]
    pub on_change: Option<String>,
    /// Timeout in seconds of each HTTP request.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Instances per Storage query page; a page that times out is retried at half the size.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
    /// Query slices of `lastChanged` a full listing fetches side by side (1: one after
    /// another). A first listing of a big app takes N times less, for N times the load on
    /// Storage while it runs.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub list_parallel: u32,
    /// Mount options in mount(8) form: -o key=value[,key=value...].
    #[arg(short = 'o', value_name = "OPTS")]
    pub mount_opts: Vec<String>,
}

impl MountOptions {
    /// The app API base and the platform base (SPEC §1): `--app-url`/`--platform-url` override
    /// what `--env` picks.
    pub fn endpoints(&self, org: &str, app: &str) -> Result<(String, String), String> {
        let (env_app, env_platform) = match self.env {
            Some(Env::Prod) => (
                Some(format!("https://{org}.apps.altinn.no/{org}/{app}")),
                Some("https://platform.altinn.no".to_string()),
            ),
            Some(Env::Tt02) => (
                Some(format!("https://{org}.apps.tt02.altinn.no/{org}/{app}")),
                Some("https://platform.tt02.altinn.no".to_string()),
            ),
            Some(Env::Local) => (
                Some(format!("http://local.altinn.cloud/{org}/{app}")),
                Some("http://local.altinn.cloud".to_string()),
            ),
            None => (None, None),
        };
        let app_url = self.app_url.clone().or(env_app);
        let platform_url = self.platform_url.clone().or(env_platform);
        match (app_url, platform_url) {
            (Some(a), Some(p)) => {
                for u in [&a, &p] {
                    let parsed =
                        reqwest::Url::parse(u).map_err(|e| format!("{u:?} is not a URL: {e}"))?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(format!("{u:?}: only http and https URLs are supported"));
                    }
                }
                Ok((
                    a.trim_end_matches('/').to_string(),
                    p.trim_end_matches('/').to_string(),
                ))
            }
            (Some(_), None) => Err(
                "--app-url needs --platform-url too (or --env prod|tt02|local to pick both)".into(),
            ),
            (None, Some(_)) => Err(
                "--platform-url needs --app-url too (or --env prod|tt02|local to pick both)".into(),
            ),
            (None, None) => Err(
                "say where the app is: --env prod|tt02|local, or --app-url and --platform-url"
                    .into(),
            ),
        }
    }
}

/// The token sources of the options, as `altinn::auth` takes them.
impl From<&MountOptions> for TokenConfig {
    fn from(o: &MountOptions) -> Self {
        TokenConfig {
            token_file: o.token_file.clone(),
            token_command: o.token_command.clone(),
            maskinporten_client_id: o.maskinporten_client_id.clone(),
            maskinporten_key: o.maskinporten_key.clone(),
            maskinporten_kid: o.maskinporten_kid.clone(),
            maskinporten_url: o.maskinporten_url.clone(),
            scope: o.scope.clone(),
            test_env: o.env.map(|e| e == Env::Tt02),
            local_env: o.env == Some(Env::Local),
        }
    }
}

impl EmulatorArgs {
    /// The emulator's configuration (`--listen` resolved, `--faults` parsed).
    pub async fn config(&self) -> Result<EmulatorConfig, String> {
        let mut cfg = EmulatorConfig::new(self.data.clone());
        cfg.listen = tokio::net::lookup_host(&self.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", self.listen))?
            .next()
            .ok_or_else(|| format!("--listen {}: no address", self.listen))?;
        cfg.sample = self.sample;
        cfg.sample_instances = self.sample_instances;
        cfg.synthetic_instances = self.synthetic_instances;
        cfg.token_lifetime = std::time::Duration::from_secs(self.token_lifetime);
        cfg.hostile = self.hostile;
        if let Some(f) = &self.faults {
            cfg.faults = serde_json::from_str(f).map_err(|e| format!("--faults: {e}"))?;
        }
        Ok(cfg)
    }
}

impl TokenArgs {
    /// Which test token to ask the emulator (or localtest) for.
    pub fn request(&self) -> Result<TestTokenRequest, String> {
        let who = if let Some(org) = &self.org {
            TestTokenFor::Org(org.clone())
        } else if let Some(u) = &self.user {
            TestTokenFor::User(u.clone())
        } else if let Some(p) = &self.party {
            TestTokenFor::Party(p.clone())
        } else {
            return Err("give one of --org, --user, --party".into());
        };
        Ok(TestTokenRequest {
            base_url: self.url.clone(),
            who,
        })
    }
}

fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|e| format!("not an octal mode: {e}"))
}

/// Options that mount(8) and fstab pass which mean nothing to altinnfs.
const IGNORED_MOUNT_OPTS: &[&str] = &[
    "rw",
    "_netdev",
    "noauto",
    "auto",
    "user",
    "users",
    "nouser",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "nofail",
    "defaults",
    "async",
    "sync",
    "atime",
    "noatime",
    "relatime",
    "x-systemd.automount",
];

/// Rewrite `-o a=b,c` into `--a b --c` so one clap parser serves both forms.
/// `ro` means `--read-only`; options mount(8) adds for itself are dropped.
pub fn expand_mount_opts(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let opts = if a == "-o" {
            match it.next() {
                Some(v) => v,
                None => {
                    out.push(a);
                    continue;
                }
            }
        } else if let Some(v) = a.strip_prefix("-o").filter(|v| !v.is_empty()) {
            v.to_string()
        } else {
            out.push(a);
            continue;
        };
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            if IGNORED_MOUNT_OPTS.contains(&k) || k.starts_with("x-") || k.starts_with("comment=") {
                continue;
            }
            let k = if k == "ro" { "read_only" } else { k };
            out.push(format!("--{}", k.replace('_', "-")));
            if let Some(v) = v {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// Accept the mount(8) form `altinnfs ORG/APP MOUNTPOINT -o ...` by inserting `mount`.
pub fn normalise_args(mut args: Vec<String>) -> Vec<String> {
    if let Some(first) = args.get(1) {
        if first.contains('/') && !first.starts_with('-') {
            args.insert(1, "mount".into());
        }
    }
    expand_mount_opts(args)
}

/// `altinnfs unsent`: the options (`--spool-dir`, and for `retry` the app and the options
/// that reach it, as for `mount`) come before the action.
#[derive(Debug, Clone, Args)]
pub struct UnsentArgs {
    /// The app, as ORG/APP (needed by `retry`).
    #[arg(long)]
    pub app: Option<String>,
    #[command(flatten)]
    pub opts: MountOptions,
    #[command(subcommand)]
    pub action: UnsentAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum UnsentAction {
    /// Print each entry's target path, size, age and error.
    List { ids: Vec<String> },
    /// Upload again (same rules, no duplicates); an entry goes only once the server took it.
    Retry { ids: Vec<String> },
    /// Delete entries (all when no ID is given); asks first unless --yes.
    Discard {
        #[arg(long, short = 'y')]
        yes: bool,
        ids: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Only this mount (default: every altinnfs mount).
    pub mountpoint: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Spool directories to look for mounts in (repeatable; default: ~/.cache/altinnfs and
    /// /var/cache/altinnfs).
    #[arg(long)]
    pub spool_dir: Vec<PathBuf>,
}

/// `altinnfs cache ORG/APP [connection options] --show|--clear` (SPEC §7.1).
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// The app, as ORG/APP.
    pub app: String,
    /// Print the index's path and counts.
    #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
    pub show: bool,
    /// Delete the index (the next mount lists everything again).
    #[arg(long)]
    pub clear: bool,
    #[command(flatten)]
    pub opts: MountOptions,
}

/// `altinnfs changes ORG/APP [connection options] [--since SEQ|RFC3339] [--follow]` (§7.3).
#[derive(Debug, Clone, Args)]
pub struct ChangesArgs {
    /// The app, as ORG/APP.
    pub app: String,
    /// Print only lines after this seq, or seen at or after this time (RFC 3339).
    #[arg(long, value_name = "SEQ|TIME")]
    pub since: Option<String>,
    /// Keep polling (every --poll-interval seconds) and print new lines as they come.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub opts: MountOptions,
}

#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:5101")]
    pub listen: String,
    /// Data directory (localtest's AltinnPlatformLocal layout).
    #[arg(long, default_value = "./altinnfs-emulator-data")]
    pub data: PathBuf,
    /// Fill the data directory with the sample app `ttd/altinnfs-demo`.
    #[arg(long)]
    pub sample: bool,
    /// Number of sample instances.
    #[arg(long, default_value_t = 260)]
    pub sample_instances: usize,
    /// Serve the sample app with N instances derived on demand (no disk, no startup cost);
    /// written instances are kept in the data directory.
    #[arg(long, default_value_t = 0)]
    pub synthetic_instances: u64,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime: u64,
    /// Fault injection, JSON (see the README); off by default.
    #[arg(long)]
    pub faults: Option<String>,
    /// Serve hostile data (names with `/`, `..`, NUL, huge sizes...) to test clients.
    #[arg(long)]
    pub hostile: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The emulator's (or localtest's) base URL.
    #[arg(long, default_value = "http://127.0.0.1:5101")]
    pub url: String,
    /// A user token for this party (the localtest user owning it).
    #[arg(long, conflicts_with_all = ["org", "user"])]
    pub party: Option<String>,
    /// A localtest user id (1337, 12345...).
    #[arg(long, conflicts_with_all = ["org", "party"])]
    pub user: Option<String>,
    /// An app-owner (service owner) token for this org.
    #[arg(long, conflicts_with_all = ["party", "user"])]
    pub org: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Cli {
        Cli::parse_from(normalise_args(v.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn token_config_carries_the_token_flags_and_what_env_means_for_tokens() {
        let c = parse(&[
            "altinnfs",
            "ttd/app",
            "/m",
            "-o",
            "env=tt02,token_command=get-token,maskinporten_client_id=c,scope=s",
        ]);
        let Command::Mount { opts, .. } = c.command else {
            panic!("not mount")
        };
        let t = TokenConfig::from(&opts);
        assert_eq!(t.token_command.as_deref(), Some("get-token"));
        assert_eq!(t.maskinporten_client_id.as_deref(), Some("c"));
        assert_eq!(t.scope.as_deref(), Some("s"));
        assert_eq!((t.test_env, t.local_env), (Some(true), false));
        let mut o = opts.clone();
        o.env = Some(Env::Local);
        let t = TokenConfig::from(&o);
        assert_eq!((t.test_env, t.local_env), (Some(false), true));
        o.env = None;
        let t = TokenConfig::from(&o);
        assert_eq!((t.test_env, t.local_env), (None, false));
    }

    #[test]
    fn emulator_and_token_args_become_plain_configs() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = parse(&[
            "altinnfs",
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--sample",
            "--faults",
            r#"{"error_rate":0.5}"#,
        ]);
        let Command::Emulator(args) = c.command else {
            panic!("not emulator")
        };
        let cfg = rt.block_on(args.config()).unwrap();
        assert!(cfg.sample);
        assert_eq!(cfg.faults.error_rate, 0.5);
        assert!(cfg.listen.ip().is_loopback());
        let bad = parse(&["altinnfs", "emulator", "--faults", "{"]);
        let Command::Emulator(args) = bad.command else {
            panic!("not emulator")
        };
        let Err(e) = rt.block_on(args.config()) else {
            panic!("bad --faults accepted")
        };
        assert!(e.contains("--faults"), "{e}");

        let c = parse(&["altinnfs", "token", "--org", "ttd"]);
        let Command::Token(args) = c.command else {
            panic!("not token")
        };
        let req = args.request().unwrap();
        assert_eq!(req.who, TestTokenFor::Org("ttd".into()));
        assert_eq!(req.base_url, "http://127.0.0.1:5101");
        let c = parse(&["altinnfs", "token"]);
        let Command::Token(args) = c.command else {
            panic!("not token")
        };
        assert!(args.request().is_err());
    }

    #[test]
    fn mount8_form_maps_onto_long_flags() {
        let c = parse(&[
            "altinnfs",
            "ttd/app",
            "/mnt/x",
            "-o",
            "env=tt02,token_file=/t,_netdev,ro,party=1,party=2,metadata_ttl=5",
        ]);
        let Command::Mount { app, opts, .. } = c.command else {
            panic!("not mount")
        };
        assert_eq!(app, "ttd/app");
        assert_eq!(opts.env, Some(Env::Tt02));
        assert_eq!(opts.token_file, Some(PathBuf::from("/t")));
        assert!(opts.read_only);
        assert_eq!(opts.party, vec!["1", "2"]);
        assert_eq!(opts.metadata_ttl, 5);
    }

    #[test]
    fn environments_pick_hosts_and_urls_override() {
        let mut o = MountOptions {
            env: Some(Env::Tt02),
            ..Default::default()
        };
        assert_eq!(
            o.endpoints("ttd", "app").unwrap(),
            (
                "https://ttd.apps.tt02.altinn.no/ttd/app".to_string(),
                "https://platform.tt02.altinn.no".to_string()
            )
        );
        o.env = Some(Env::Prod);
        assert_eq!(
            o.endpoints("skd", "x").unwrap().0,
            "https://skd.apps.altinn.no/skd/x"
        );
        o.env = Some(Env::Local);
        assert_eq!(
            o.endpoints("ttd", "a").unwrap().1,
            "http://local.altinn.cloud"
        );
        o.app_url = Some("http://127.0.0.1:5/ttd/a/".into());
        assert_eq!(
            o.endpoints("ttd", "a").unwrap().0,
            "http://127.0.0.1:5/ttd/a"
        );
        o.env = None;
        o.app_url = None;
        assert!(o.endpoints("ttd", "a").is_err());
        o.app_url = Some("ftp://x/y".into());
        o.platform_url = Some("http://x".into());
        assert!(o.endpoints("ttd", "a").is_err());
    }

    #[test]
    fn what_mount_fuse3_passes_is_accepted() {
        // mount(8) → mount.fuse3 → `altinnfs SRC MNT -o rw,<fstab options>,dev,suid`.
        let c = parse(&[
            "altinnfs",
            "ttd/app",
            "/mnt/x",
            "-o",
            "rw,app_url=http://h:1/ttd/app,platform_url=http://h:1,token_file=/t,query=excludeConfirmedBy=ttd,nofail,x-systemd.automount,dev,suid",
        ]);
        let Command::Mount { opts, .. } = c.command else {
            panic!("not mount")
        };
        assert_eq!(opts.app_url.as_deref(), Some("http://h:1/ttd/app"));
        assert_eq!(opts.platform_url.as_deref(), Some("http://h:1"));
        assert_eq!(opts.query, vec!["excludeConfirmedBy=ttd"]);
        assert!(!opts.read_only);
        let mut o = opts.clone();
        o.platform_url = None;
        assert!(o
            .endpoints("ttd", "app")
            .unwrap_err()
            .contains("--platform-url"));
    }

    #[test]
    fn long_flags_and_defaults() {
        let c = parse(&[
            "altinnfs",
            "mount",
            "ttd/app",
            "/mnt/x",
            "--file-mode",
            "600",
        ]);
        let Command::Mount { opts, .. } = c.command else {
            panic!()
        };
        assert_eq!(opts.file_mode, 0o600);
        assert_eq!(opts.dir_mode, 0o755);
        assert_eq!(opts.metadata_ttl, 30);
        assert!(!opts.allow_other);
        assert_eq!(opts.page_size, 100);
        assert_eq!(opts.poll_interval, 30);
        assert_eq!(opts.full_refresh_hours, 24);
        assert_eq!(opts.feed_days, 30);
        assert!(opts.cache_dir.is_none());
    }

    #[test]
    fn index_options_as_flags_and_mount_options() {
        let c = parse(&[
            "altinnfs",
            "ttd/app",
            "/mnt/x",
            "-o",
            "cache_dir=/c,poll_interval=0,full_refresh_hours=6,feed_days=7",
        ]);
        let Command::Mount { opts, .. } = c.command else {
            panic!()
        };
        assert_eq!(opts.cache_dir, Some(PathBuf::from("/c")));
        assert_eq!(
            (opts.poll_interval, opts.full_refresh_hours, opts.feed_days),
            (0, 6, 7)
        );
        let ic = crate::mount::index_config(&opts).unwrap();
        assert_eq!(ic.poll_interval, None);
        assert_eq!(
            ic.full_refresh,
            Some(std::time::Duration::from_secs(6 * 3600))
        );
        assert_eq!(ic.cache_dir, PathBuf::from("/c"));
    }

    #[test]
    fn cache_and_changes_commands() {
        let c = parse(&["altinnfs", "cache", "ttd/app", "--env", "tt02", "--show"]);
        let Command::Cache(a) = c.command else {
            panic!()
        };
        assert!(a.show && !a.clear);
        assert_eq!(a.opts.env, Some(Env::Tt02));
        assert!(Cli::try_parse_from(["altinnfs", "cache", "ttd/app"]).is_err());
        assert!(
            Cli::try_parse_from(["altinnfs", "cache", "ttd/app", "--show", "--clear"]).is_err()
        );
        let c = parse(&[
            "altinnfs",
            "changes",
            "ttd/app",
            "--since",
            "42",
            "--follow",
            "-o",
            "feed_days=3",
        ]);
        let Command::Changes(a) = c.command else {
            panic!()
        };
        assert_eq!(a.since.as_deref(), Some("42"));
        assert!(a.follow);
        assert_eq!(a.opts.feed_days, 3);
    }

    #[test]
    fn list_parallel_by_flag_and_by_mount_option_within_1_to_16() {
        let flag = parse(&["altinnfs", "mount", "ttd/app", "/m", "--list-parallel", "4"]);
        let opt = parse(&["altinnfs", "ttd/app", "/m", "-o", "list_parallel=8"]);
        let default = parse(&["altinnfs", "ttd/app", "/m"]);
        for (c, want) in [(flag, 4), (opt, 8), (default, 1)] {
            let Command::Mount { opts, .. } = c.command else {
                panic!("not mount")
            };
            assert_eq!(opts.list_parallel, want);
        }
        for bad in ["0", "17"] {
            let args = ["altinnfs", "mount", "ttd/app", "/m", "--list-parallel", bad];
            let args = normalise_args(args.map(String::from).to_vec());
            assert!(Cli::try_parse_from(args).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_size_by_flag_and_by_mount_option() {
        let flag = parse(&["altinnfs", "mount", "ttd/app", "/m", "--page-size", "500"]);
        let opt = parse(&["altinnfs", "ttd/app", "/m", "-o", "page_size=20"]);
        for (c, want) in [(flag, 500), (opt, 20)] {
            let Command::Mount { opts, .. } = c.command else {
                panic!("not mount")
            };
            assert_eq!(opts.page_size, want);
        }
        let zero = normalise_args(
            ["altinnfs", "mount", "ttd/app", "/m", "--page-size", "0"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        assert!(Cli::try_parse_from(zero).is_err());
    }

    #[test]
    fn busy_poll_by_flag_and_by_mount_option_defaults_to_50_us() {
        let cases = [
            (parse(&["altinnfs", "mount", "ttd/app", "/m"]), 50),
            (
                parse(&["altinnfs", "mount", "ttd/app", "/m", "--busy-poll-us", "0"]),
                0,
            ),
            (
                parse(&["altinnfs", "ttd/app", "/m", "-o", "busy_poll_us=200"]),
                200,
            ),
        ];
        for (c, want) in cases {
            let Command::Mount { opts, .. } = c.command else {
                panic!("not mount")
            };
            assert_eq!(opts.busy_poll_us, want);
        }
    }

    #[test]
    fn direct_io_by_flag_and_by_mount_option_is_off_by_default() {
        let cases = [
            (parse(&["altinnfs", "mount", "ttd/app", "/m"]), false),
            (
                parse(&["altinnfs", "mount", "ttd/app", "/m", "--direct-io"]),
                true,
            ),
            (
                parse(&["altinnfs", "ttd/app", "/m", "-o", "ro,direct_io"]),
                true,
            ),
        ];
        for (c, want) in cases {
            let Command::Mount { opts, .. } = c.command else {
                panic!("not mount")
            };
            assert_eq!(opts.direct_io, want);
        }
    }
}
