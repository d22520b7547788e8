//! The hub's settings and who may connect.
//!
//! [`Config`] is one clap struct, every flag also read from
//! `PARCEL_HUB_<FLAG>`; its defaults run locally with no set-up (port 3000
//! on loopback, a SQLite file in the working directory, built-in demo
//! credentials) and are written once, in the flag attributes:
//! [`Config::default`] is what the command line gives with no flags and no
//! environment. `--redis` turns the hub into one node of a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::builder::PossibleValue;
use clap::{CommandFactory, FromArgMatches};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::domain::{DistributorId, VendorId};
pub use crate::store::Durability;
pub use crate::telemetry::LogFormat;

impl clap::ValueEnum for Durability {
    fn value_variants<'a>() -> &'a [Self] {
        &[Durability::Process, Durability::Power]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Durability::Process => PossibleValue::new(self.name())
                .help("an acknowledged write survives the hub being killed (no fsync per commit)"),
            Durability::Power => PossibleValue::new(self.name())
                .help("an acknowledged write also survives power loss (fsync on every commit)"),
        })
    }
}

/// The hub's settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "parcel-hub")]
pub struct Config {
    /// Address to listen on (port 0: any free port).
    #[arg(
        long,
        env = "PARCEL_HUB_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:3000"
    )]
    pub listen: SocketAddr,

    /// SQLite database file (`:memory:` keeps nothing).
    #[arg(
        long,
        env = "PARCEL_HUB_DB",
        value_name = "PATH",
        default_value = "parcel-hub.db"
    )]
    pub db: PathBuf,

    /// Credentials file (TOML); without it the demo credentials are used.
    #[arg(long, env = "PARCEL_HUB_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,

    /// How much an acknowledged write survives.
    #[arg(long, env = "PARCEL_HUB_DURABILITY", value_name = "MODE", value_enum, default_value_t = Durability::Process)]
    pub durability: Durability,

    /// Largest accepted Socket.IO message (and HTTP body), in bytes.
    #[arg(long, env = "PARCEL_HUB_MAX_PAYLOAD", value_name = "BYTES", default_value_t = 64 * 1024)]
    pub max_payload: u64,

    /// Binary attachments one Socket.IO packet may announce; a packet that
    /// announces more is refused and its connection closed (the hub's events
    /// carry no binary data).
    #[arg(
        long,
        env = "PARCEL_HUB_MAX_ATTACHMENTS",
        value_name = "N",
        default_value_t = 4
    )]
    pub max_attachments: usize,

    /// Bytes of binary attachments buffered for one Socket.IO packet until
    /// it is complete; past this the packet is refused and its connection
    /// closed.
    #[arg(
        long,
        env = "PARCEL_HUB_MAX_ATTACHMENT_BYTES",
        value_name = "BYTES",
        default_value_t = 16 * 1024
    )]
    pub max_attachment_bytes: usize,

    /// Seconds an HTTP connection may take to send a request head, or stay
    /// idle between requests, before it is closed.
    #[arg(
        long,
        env = "PARCEL_HUB_HEADER_TIMEOUT",
        value_name = "SECS",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub header_timeout: u64,

    /// Seconds one HTTP request may take from its head to its answer (a
    /// body sent slowly or half-way); past it the answer is 408 and the
    /// connection is closed. Socket.IO long-polling answers within 25 s.
    #[arg(
        long,
        env = "PARCEL_HUB_REQUEST_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(26..=3600)
    )]
    pub request_timeout: u64,

    /// Events per second each socket may send (0 turns the limit off).
    #[arg(
        long,
        env = "PARCEL_HUB_RATE_LIMIT",
        value_name = "N",
        default_value_t = 1_000
    )]
    pub rate_limit: u32,

    /// Burst size of the per-socket rate limit.
    #[arg(
        long,
        env = "PARCEL_HUB_RATE_BURST",
        value_name = "N",
        default_value_t = 2_000
    )]
    pub rate_burst: u32,

    /// Packets buffered per socket before emits to it fail.
    #[arg(
        long,
        env = "PARCEL_HUB_SOCKET_BUFFER",
        value_name = "N",
        default_value_t = 4_096
    )]
    pub socket_buffer: usize,

    /// Threads that run the hub's sockets and handlers [default: one per
    /// CPU core]. Hubs that share a machine each take their share of its
    /// cores (`--workers` = cores / hubs): each running one per core, they
    /// fight over every core and each delivery costs more.
    #[arg(
        long,
        env = "PARCEL_HUB_WORKERS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub workers: Option<u16>,

    /// A local copy of the Socket.IO browser client (`socket.io.min.js`) for
    /// the pages; without it they load the pinned official CDN build.
    #[arg(long, env = "PARCEL_HUB_CLIENT_JS", value_name = "FILE")]
    pub client_js: Option<PathBuf>,

    /// Join a cluster: orders, queues and broadcasts go through this Redis
    /// (`redis://127.0.0.1:6379`); `--db` is then unused.
    #[arg(long, env = "PARCEL_HUB_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// Prefix of every Redis key and pub/sub channel; hubs of one cluster share it.
    #[arg(
        long,
        env = "PARCEL_HUB_REDIS_PREFIX",
        value_name = "NAME",
        default_value = "parcel-hub"
    )]
    pub redis_prefix: String,

    /// A folder of scenario files for `/learn` instead of the lessons built
    /// into the binary.
    #[arg(long, env = "PARCEL_HUB_SCENARIOS", value_name = "DIR")]
    pub scenarios: Option<PathBuf>,

    /// Lessons played at once on `/learn`, each with its own private hub;
    /// past this the least recently used idle one of the same client is
    /// closed, never another client's (0 turns them off).
    #[arg(
        long,
        env = "PARCEL_HUB_LEARN_SESSIONS",
        value_name = "N",
        default_value_t = 16
    )]
    pub learn_sessions: usize,

    /// How log lines are written to stderr: `pretty` (for people) or `json`
    /// (one object per line, for log collectors).
    #[arg(long, env = "PARCEL_HUB_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Serve `GET /metrics` without the admin token (behind a firewall or
    /// on a private network).
    #[arg(long, env = "PARCEL_HUB_METRICS_PUBLIC")]
    pub metrics_public: bool,

    /// An origin whose pages may call the HTTP API and the Socket.IO
    /// endpoint (`https://admin.socket.io`); repeat the flag, or separate
    /// origins with commas in the variable. None: same origin only.
    #[arg(
        long,
        env = "PARCEL_HUB_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origin: Vec<String>,

    /// Use the demo credentials on a non-loopback address anyway (anyone who
    /// reaches the hub can then sign in with them).
    #[arg(long, env = "PARCEL_HUB_DEMO")]
    pub demo: bool,

    /// Delete delivered orders this many days after delivery, once every
    /// message about them is confirmed (fractions allowed; 0: as soon as
    /// possible). Without it orders are kept forever. SQLite only.
    #[arg(long, env = "PARCEL_HUB_RETAIN_DELIVERED", value_name = "DAYS")]
    pub retain_delivered: Option<f64>,

    /// Serve `/caps`, the namespace of learners' own CAPS lab clients (no
    /// credentials), even with a credentials file; the demo set serves it
    /// anyway.
    #[arg(long, env = "PARCEL_HUB_CAPS")]
    pub caps: bool,

    /// Events per second all `/caps` sockets of this hub share (0 turns
    /// the limit off).
    #[arg(
        long,
        env = "PARCEL_HUB_CAPS_RATE_LIMIT",
        value_name = "N",
        default_value_t = 100
    )]
    pub caps_rate_limit: u32,

    /// Burst size of the `/caps` rate limit.
    #[arg(
        long,
        env = "PARCEL_HUB_CAPS_RATE_BURST",
        value_name = "N",
        default_value_t = 200
    )]
    pub caps_rate_burst: u32,

    /// Lab stores with open orders the `/caps` sandbox keeps at once.
    #[arg(
        long,
        env = "PARCEL_HUB_CAPS_STORES",
        value_name = "N",
        default_value_t = 100
    )]
    pub caps_stores: usize,

    /// Open (pending or in-transit) orders one lab store may have at once.
    #[arg(
        long,
        env = "PARCEL_HUB_CAPS_OPEN_ORDERS",
        value_name = "N",
        default_value_t = 500,
        value_parser = clap::value_parser!(u16).range(1..=500)
    )]
    pub caps_open_orders: u16,
}

impl Default for Config {
    /// The defaults of the command line, with no flags and no environment.
    fn default() -> Self {
        let command = Config::command().mut_args(|arg| arg.env(None::<&'static str>));
        let parsed = command
            .try_get_matches_from(["parcel-hub"])
            .map_err(|e| e.to_string())
            .and_then(|matches| Config::from_arg_matches(&matches).map_err(|e| e.to_string()));
        match parsed {
            Ok(config) => config,
            // Only a mistake in the attributes above can get here, and the
            // unit test below catches it.
            Err(e) => unreachable!("the command line defaults do not parse: {e}"),
        }
    }
}

impl Config {
    /// How long delivered orders are kept (`--retain-delivered`), if not forever.
    pub fn retention(&self) -> Result<Option<std::time::Duration>, ConfigError> {
        match self.retain_delivered {
            None => Ok(None),
            Some(days) if days.is_finite() && days >= 0.0 => {
                std::time::Duration::try_from_secs_f64(days * 86_400.0)
                    .map(Some)
                    .map_err(|_| ConfigError::Retention(days))
            }
            Some(days) => Err(ConfigError::Retention(days)),
        }
    }

    /// The credentials the hub serves with: the file's, or the demo set.
    /// The demo set is refused on an address other than loopback unless
    /// `--demo` insists: it would let anyone in, admin included.
    pub(crate) fn credentials_to_serve(&self) -> anyhow::Result<Credentials> {
        match &self.credentials {
            Some(path) => Ok(Credentials::load(path)?),
            None if self.listen.ip().is_loopback() || self.demo => Ok(Credentials::demo()),
            None => Err(ConfigError::DemoOffLoopback(self.listen).into()),
        }
    }

    /// Whether `/caps` is served: with the demo credentials (a learner's
    /// `cargo run`) or `--caps`, never otherwise.
    pub(crate) fn serves_caps(&self, credentials: &Credentials) -> bool {
        self.caps || credentials.is_demo
    }

    /// Settings for tests and embedding: the defaults, on any free loopback
    /// port, with the database at `db`.
    pub fn for_tests(db: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: db.into(),
            ..Self::default()
        }
    }
}

/// Settings that cannot be served as given.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "refusing to serve the demo credentials on {0}: anyone who reaches that address \
         could sign in as any vendor, distributor or the admin. Give real ones with \
         --credentials FILE (see the README, \"The credentials file\"), listen on \
         127.0.0.1 instead, or pass --demo to insist"
    )]
    DemoOffLoopback(SocketAddr),
    #[error("--retain-delivered must be a number of days, 0 or more (got {0})")]
    Retention(f64),
    #[error(
        "--retain-delivered works on SQLite only; a cluster keeps its orders in Redis (see the README)"
    )]
    RetentionInCluster,
    #[error(
        "--cors-origin {0:?} is not an origin like https://admin.socket.io (scheme, host, optional port; never *)"
    )]
    CorsOrigin(String),
}

/// Why the credentials file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CredentialsError {
    #[error("cannot read credentials file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The file form: `admin_token`, `[vendors]`, `[distributors]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    admin_token: String,
    #[serde(default)]
    vendors: BTreeMap<String, String>,
    #[serde(default)]
    distributors: BTreeMap<String, String>,
}

/// Who may connect. Tokens are compared in constant time and never printed.
#[derive(Clone)]
pub(crate) struct Credentials {
    admin_token: String,
    vendors: BTreeMap<VendorId, String>,
    distributors: BTreeMap<DistributorId, String>,
    /// True for the built-in demo set, which pages and the start-up banner may show.
    pub(crate) is_demo: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("vendors", &self.vendors.keys().collect::<Vec<_>>())
            .field(
                "distributors",
                &self.distributors.keys().collect::<Vec<_>>(),
            )
            .field("is_demo", &self.is_demo)
            .finish_non_exhaustive()
    }
}

fn token_matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The demo identities and their tokens (PROTOCOL.md examples).
pub const DEMO_VENDORS: [(&str, &str); 2] = [
    ("acme-widgets", "demo-acme"),
    ("1-800-flowers", "demo-flowers"),
];
pub const DEMO_DISTRIBUTORS: [(&str, &str); 2] =
    [("north-hub", "demo-north"), ("south-hub", "demo-south")];
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin";

impl Credentials {
    /// The built-in demo set.
    pub(crate) fn demo() -> Self {
        let parse_all = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(id, token)| ((*id).to_owned(), (*token).to_owned()))
                .collect()
        };
        let file = CredentialsFile {
            admin_token: DEMO_ADMIN_TOKEN.into(),
            vendors: parse_all(&DEMO_VENDORS),
            distributors: parse_all(&DEMO_DISTRIBUTORS),
        };
        let mut creds =
            Self::from_file(file).unwrap_or_else(|_| unreachable!("demo ids are valid"));
        creds.is_demo = true;
        creds
    }

    /// Reads a credentials file, saying what is wrong and where.
    pub(crate) fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| CredentialsError::Invalid {
            path: path.to_owned(),
            message,
        };
        // The parser's own message quotes the offending line, which may be
        // a token: say where and what, never the line itself.
        let file: CredentialsFile = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
            invalid(match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            })
        })?;
        Self::from_file(file).map_err(invalid)
    }

    fn from_file(file: CredentialsFile) -> Result<Self, String> {
        if file.admin_token.trim().is_empty() {
            return Err("admin_token must not be empty".into());
        }
        let reserved = |table: &str, id: &str| {
            format!(
                "[{table}] {id}: ids starting with {} are reserved for the lab stores and drivers of /caps",
                crate::domain::LAB_PREFIX
            )
        };
        let mut vendors = BTreeMap::new();
        for (id, token) in file.vendors {
            if crate::domain::is_reserved(&id) {
                return Err(reserved("vendors", &id));
            }
            let vid = VendorId::parse(&id).map_err(|e| format!("[vendors] {id:?}: {e}"))?;
            if token.is_empty() {
                return Err(format!("[vendors] {id}: the token must not be empty"));
            }
            vendors.insert(vid, token);
        }
        let mut distributors = BTreeMap::new();
        for (id, token) in file.distributors {
            if crate::domain::is_reserved(&id) {
                return Err(reserved("distributors", &id));
            }
            let did =
                DistributorId::parse(&id).map_err(|e| format!("[distributors] {id:?}: {e}"))?;
            if token.is_empty() {
                return Err(format!("[distributors] {id}: the token must not be empty"));
            }
            distributors.insert(did, token);
        }
        Ok(Self {
            admin_token: file.admin_token,
            vendors,
            distributors,
            is_demo: false,
        })
    }

    pub(crate) fn vendor_token_ok(&self, id: &VendorId, token: &str) -> bool {
        self.vendors
            .get(id)
            .is_some_and(|t| token_matches(t, token))
    }

    pub(crate) fn distributor_token_ok(&self, id: &DistributorId, token: &str) -> bool {
        self.distributors
            .get(id)
            .is_some_and(|t| token_matches(t, token))
    }

    pub(crate) fn admin_token_ok(&self, token: &str) -> bool {
        token_matches(&self.admin_token, token)
    }

    pub(crate) fn is_distributor(&self, id: &DistributorId) -> bool {
        self.distributors.contains_key(id)
    }

    pub(crate) fn distributors(&self) -> impl Iterator<Item = &DistributorId> {
        self.distributors.keys()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_command_lines() {
        let c = Config::default();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 3000)));
        assert_eq!(c.db, PathBuf::from("parcel-hub.db"));
        assert_eq!(c.durability, Durability::Process);
        assert_eq!((c.rate_limit, c.rate_burst), (1_000, 2_000));
        assert!(c.credentials.is_none() && c.redis.is_none() && c.scenarios.is_none());
    }

    #[test]
    fn demo_credentials_accept_the_demo_tokens_only() {
        let c = Credentials::demo();
        let acme = VendorId::parse("acme-widgets").unwrap();
        assert!(c.vendor_token_ok(&acme, "demo-acme"));
        assert!(!c.vendor_token_ok(&acme, "demo-acm"));
        assert!(!c.vendor_token_ok(&VendorId::parse("nobody").unwrap(), "demo-acme"));
        assert!(c.admin_token_ok("demo-admin"));
        assert!(
            !format!("{c:?}").contains("demo-acme"),
            "tokens never print"
        );
    }

    #[test]
    fn a_bad_credentials_file_says_what_and_where() {
        let dir = std::env::temp_dir().join(format!("ph-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("creds.toml");
        std::fs::write(
            &path,
            "admin_token = \"x\"\n[vendors]\n\"bad id\" = \"t\"\n",
        )
        .unwrap();
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("creds.toml") && err.contains("bad id"),
            "{err}"
        );
        std::fs::write(
            &path,
            "admin_token = \"x\"\n[distributors]\n\"caps.drivers\" = \"t\"\n",
        )
        .unwrap();
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("caps.drivers") && err.contains("reserved"),
            "{err}"
        );
        std::fs::write(&path, "admin_token = \n").unwrap();
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        std::fs::write(
            &path,
            "admin_token = \"x\"\n[vendors]\nacme = \"secret-token\" junk\n",
        )
        .unwrap();
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && !err.contains("secret-token"),
            "{err}"
        );
        let err = Credentials::load(&dir.join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
