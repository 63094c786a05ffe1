//! Settings: `conclave serve` flags, then `CONCLAVE_*` environment variables, then
//! `conclave.toml`, then defaults. A bad setting stops start-up with its name and the reason.

use anyhow::{Context, Result, bail};
use clap::Args;
use conclave_store::model::{Language, SrtpMode};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every setting of `conclave serve`. Each flag has a matching `CONCLAVE_*` variable and a key
/// of the same name (with underscores) in the configuration file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Default: ./conclave.toml when it exists.
    #[arg(long, env = "CONCLAVE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where Conclave keeps its files (the SQLite database, recordings, generated certificates).
    /// Default: ./data
    #[arg(long, env = "CONCLAVE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database: sqlite://FILE or postgres://USER@HOST:PORT/DB.
    /// Default: the SQLite file conclave.db in the data directory.
    #[arg(long, env = "CONCLAVE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Address of the HTTP API and web console. Default: 0.0.0.0:8080
    #[arg(long, env = "CONCLAVE_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// SIP over UDP. Default: 0.0.0.0:5060
    #[arg(long, env = "CONCLAVE_SIP_UDP", value_name = "ADDR")]
    pub sip_udp: Option<SocketAddr>,
    /// SIP over TCP. Default: 0.0.0.0:5060
    #[arg(long, env = "CONCLAVE_SIP_TCP", value_name = "ADDR")]
    pub sip_tcp: Option<SocketAddr>,
    /// SIP over TLS (sips:). Default: 0.0.0.0:5061
    #[arg(long, env = "CONCLAVE_SIP_TLS", value_name = "ADDR")]
    pub sip_tls: Option<SocketAddr>,
    /// Certificate chain (PEM) for SIP over TLS. Default: a self-signed certificate generated
    /// on first start in DATA_DIR/tls/ (for testing; configure a real one in production)
    #[arg(
        long,
        env = "CONCLAVE_SIP_TLS_CERT",
        value_name = "FILE",
        requires = "sip_tls_key"
    )]
    pub sip_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --sip-tls-cert.
    #[arg(
        long,
        env = "CONCLAVE_SIP_TLS_KEY",
        value_name = "FILE",
        requires = "sip_tls_cert"
    )]
    pub sip_tls_key: Option<PathBuf>,
    /// Digest realm of SIP extensions. Changing it invalidates stored SIP passwords.
    /// Default: conclave
    #[arg(long, env = "CONCLAVE_SIP_REALM", value_name = "REALM")]
    pub sip_realm: Option<String>,
    /// Digest algorithms the registrar challenges with, in order: md5, sha256, or both
    /// separated by a comma (RFC 8760). Default: md5 — some deployed phones (libre/baresip
    /// among them) refuse a 401 that carries any challenge they do not know.
    #[arg(long, env = "CONCLAVE_SIP_DIGEST", value_name = "ALGORITHMS")]
    pub sip_digest: Option<String>,
    /// Seconds a digest nonce of the registrar stays valid. A phone answering an older one
    /// gets a fresh challenge marked stale (no password prompt). Default: 300
    #[arg(
        long,
        env = "CONCLAVE_SIP_NONCE_LIFETIME_SECONDS",
        value_name = "SECONDS"
    )]
    pub sip_nonce_lifetime_seconds: Option<u32>,
    /// Media encryption (SDES-SRTP) on calls over the UDP and TCP listeners: off, optional
    /// (when the phone offers or accepts it) or mandatory. SDES keys travel in the SIP
    /// messages, so on plain transports they are only as secret as the network. Default: optional
    #[arg(long, env = "CONCLAVE_SIP_SRTP", value_name = "POLICY")]
    pub sip_srtp: Option<String>,
    /// Media encryption on calls over the TLS listener: off, optional or mandatory.
    /// Default: optional
    #[arg(long, env = "CONCLAVE_SIP_TLS_SRTP", value_name = "POLICY")]
    pub sip_tls_srtp: Option<String>,
    /// Seconds an extension the meeting calls may ring before the call is given up (trunks
    /// have their own). Default: 60
    #[arg(long, env = "CONCLAVE_RING_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub ring_timeout_seconds: Option<u32>,
    /// The conference access number: callers dialling it are asked by a voice menu for the
    /// room number (then the room's PIN). Empty: no access number. Default: 8000
    #[arg(long, env = "CONCLAVE_ACCESS_NUMBER", value_name = "DIGITS")]
    pub access_number: Option<String>,
    /// Language of the access number's menu: en or zh. Default: en
    #[arg(long, env = "CONCLAVE_ACCESS_LANGUAGE", value_name = "LANG")]
    pub access_language: Option<String>,
    /// The address phones and gateways reach this server at, announced in SIP (Via, Contact)
    /// and SDP: needed behind 1:1 NAT, or when listening on every interface picks the wrong
    /// one. Default: the SIP listening address, or the address of the default route
    #[arg(long, env = "CONCLAVE_PUBLIC_ADDRESS", value_name = "IP")]
    pub public_address: Option<std::net::IpAddr>,
    /// Where browsers may reach the media over TCP (ICE-TCP, for networks that block UDP),
    /// e.g. 0.0.0.0:3479. Default: not offered
    #[arg(long, env = "CONCLAVE_MEDIA_TCP_LISTEN", value_name = "ADDR")]
    pub media_tcp_listen: Option<std::net::SocketAddr>,
    /// Media worker threads, each owning a share of the rooms. 0: one per core. Default: 0
    #[arg(long, env = "CONCLAVE_MEDIA_WORKERS", value_name = "N")]
    pub media_workers: Option<usize>,
    /// New rooms fill one media worker until it carries this many members, then go to the
    /// least loaded: a light load wakes one thread, not all. 0: always the least loaded.
    /// Default: 200
    #[arg(long, env = "CONCLAVE_MEDIA_PACK_MEMBERS", value_name = "N")]
    pub media_pack_members: Option<usize>,
    /// UDP ports for media: `shared` (one pair per media worker, every member of its rooms on
    /// it) or `per-call` (a pair for each call, for networks that need it). Default: shared
    #[arg(long, env = "CONCLAVE_MEDIA_PORTS", value_name = "MODE")]
    pub media_ports: Option<String>,
    /// Lowest UDP port for media. Default: 10000
    #[arg(long, env = "CONCLAVE_MEDIA_PORT_MIN", value_name = "PORT")]
    pub media_port_min: Option<u16>,
    /// Highest UDP port for media. Default: 20000
    #[arg(long, env = "CONCLAVE_MEDIA_PORT_MAX", value_name = "PORT")]
    pub media_port_max: Option<u16>,
    /// A call that sends no media (RTP or RTCP) for this many seconds is hung up. Default: 30
    #[arg(long, env = "CONCLAVE_MEDIA_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub media_timeout_seconds: Option<u32>,
    /// The same for a call on hold (that sends nothing by design). Default: 1800
    #[arg(long, env = "CONCLAVE_HOLD_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub hold_timeout_seconds: Option<u32>,
    /// Let webhooks post to private, loopback and link-local addresses (an installation
    /// whose integrations run on its own network). Default: false
    #[arg(
        long,
        env = "CONCLAVE_WEBHOOKS_ALLOW_PRIVATE_TARGETS",
        value_name = "BOOL"
    )]
    pub webhooks_allow_private_targets: Option<bool>,
    /// Seconds of silence before the PIN prompt is said again (twice, then goodbye).
    /// Default: 10
    #[arg(long, env = "CONCLAVE_PIN_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub pin_timeout_seconds: Option<u32>,
    /// Callers not yet in a meeting (keying in a PIN, in the access menu) from one address.
    /// More are answered 503. Default: 10
    #[arg(long, env = "CONCLAVE_WAITING_PER_ADDRESS", value_name = "N")]
    pub waiting_per_address: Option<u32>,
    /// Callers not yet in a meeting, in all. Default: 500
    #[arg(long, env = "CONCLAVE_WAITING_TOTAL", value_name = "N")]
    pub waiting_total: Option<u32>,
    /// Members the system carries at once, for the scheduled meetings' conflict check.
    /// Default: 1000
    #[arg(long, env = "CONCLAVE_SCHEDULING_CAPACITY", value_name = "N")]
    pub scheduling_capacity: Option<u32>,
    /// The mail server scheduled meetings' invitations go through:
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://user:pass@host:465`
    /// (TLS), `smtp://host:25` (plain, a local relay). Unset: no invitations are mailed.
    #[arg(long, env = "CONCLAVE_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,
    /// The sender of invitations. Default: conclave@<the host name>
    #[arg(long, env = "CONCLAVE_MAIL_FROM", value_name = "ADDRESS")]
    pub mail_from: Option<String>,
    /// Minutes before each occurrence's start that invitees are reminded by e-mail; 0: no
    /// reminders. Default: 15
    #[arg(long, env = "CONCLAVE_MAIL_REMINDER_MINUTES", value_name = "MINUTES")]
    pub mail_reminder_minutes: Option<u32>,
    /// The master key of recordings (32 bytes): each tenant's key is derived from it, and
    /// every recording's own key is kept wrapped by its tenant's. Default:
    /// DATA_DIR/recordings.key, made on first start (keep it apart from backups of the data)
    #[arg(long, env = "CONCLAVE_RECORDING_KEY_FILE", value_name = "FILE")]
    pub recording_key_file: Option<PathBuf>,
    /// Recordings are deleted this many days after they ended (their audio and their
    /// rows; each in the audit log); 0 keeps them until deleted. Default: 0
    #[arg(long, env = "CONCLAVE_RECORDING_RETENTION_DAYS", value_name = "DAYS")]
    pub recording_retention_days: Option<u32>,
    /// Where ended recordings rest: unset, the data directory; or an S3-compatible store,
    /// s3://[KEY:SECRET@]BUCKET[/PREFIX][?endpoint=URL&region=R] (credentials not in the
    /// URL come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). Recordings are written
    /// locally while they go on, and uploaded when they end.
    #[arg(long, env = "CONCLAVE_RECORDING_STORE", value_name = "URL")]
    pub recording_store: Option<String>,
    /// The speech model the minutes are made with (Whisper, ggml; scripts/fetch-speech-model.sh
    /// makes it). Without it recordings have no minutes, and say why. Default:
    /// DATA_DIR/models/whisper-base.bin
    #[arg(long, env = "CONCLAVE_SPEECH_MODEL", value_name = "FILE")]
    pub speech_model: Option<PathBuf>,
    /// Threads that make minutes, at the lowest priority (they take only what the media
    /// and the API leave); 0: no minutes. Default: the number of cores
    #[arg(long, env = "CONCLAVE_MINUTES_THREADS", value_name = "N")]
    pub minutes_threads: Option<usize>,
    /// Beam width of speech recognition (1: greedy, about three times faster; 5 halves
    /// the errors in Chinese). Default: 5, greedy while a backlog waits
    #[arg(long, env = "CONCLAVE_MINUTES_BEAM", value_name = "N")]
    pub minutes_beam: Option<usize>,
    /// The languages meetings speak (Whisper's codes, comma-separated): each utterance's
    /// language is detected among them. Default: zh,en
    #[arg(long, env = "CONCLAVE_MINUTES_LANGUAGES", value_name = "CODES")]
    pub minutes_languages: Option<String>,
    /// Make minutes while meetings record, when the worker keeps up (false: only after each
    /// meeting, leaving the cores to the live ones). Default: true
    #[arg(long, env = "CONCLAVE_MINUTES_LIVE", value_name = "BOOL")]
    pub minutes_live: Option<bool>,
    /// A cluster's NATS server (nats://host:port): this node is one of several sharing the
    /// PostgreSQL database (docs/cluster.md). Default: none, a single node
    #[arg(long, env = "CONCLAVE_CLUSTER_NATS", value_name = "URL")]
    pub cluster_nats: Option<String>,
    /// This node's name in the cluster (letters, digits, - and _). Default: the host name
    #[arg(long, env = "CONCLAVE_NODE_ID", value_name = "NAME")]
    pub node_id: Option<String>,
    /// Where the other nodes and Kamailio send this node's rooms' calls. Default:
    /// sip:<public address>:<SIP UDP port>
    #[arg(long, env = "CONCLAVE_NODE_SIP_URI", value_name = "URI")]
    pub node_sip_uri: Option<String>,
    /// In a cluster, the members one room may have on this node: callers beyond it join
    /// through a cascade on another node (docs/cluster.md). Default: 0, no limit
    #[arg(long, env = "CONCLAVE_NODE_ROOM_MEMBERS", value_name = "N")]
    pub node_room_members: Option<usize>,
    /// Seconds a TLS client has to finish its handshake (SIP over TLS). Default: 10
    #[arg(
        long,
        env = "CONCLAVE_TLS_HANDSHAKE_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub tls_handshake_timeout_seconds: Option<u32>,
    /// Seconds a client has to send an HTTP request's headers (also how long a kept-alive HTTP
    /// connection may wait for its next request), and a SIP TCP/TLS connection its first
    /// message. Default: 10
    #[arg(long, env = "CONCLAVE_HEADER_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub header_timeout_seconds: Option<u32>,
    /// Seconds an HTTP connection may stay without any bytes moving. Default: 60
    #[arg(
        long,
        env = "CONCLAVE_HTTP_IDLE_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub http_idle_timeout_seconds: Option<u32>,
    /// Seconds a SIP TCP/TLS connection may stay without a message or keep-alive; one that
    /// carries a registration or a call gets at least an hour and five minutes. Default: 300
    #[arg(
        long,
        env = "CONCLAVE_SIP_IDLE_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub sip_idle_timeout_seconds: Option<u32>,
    /// Open connections one address may have, on the HTTP listener and on the SIP TCP and
    /// TLS listeners (each counted apart). Behind a reverse proxy every client has the
    /// proxy's address: raise it there. Default: 256
    #[arg(long, env = "CONCLAVE_MAX_CONNECTIONS_PER_ADDRESS", value_name = "N")]
    pub max_connections_per_address: Option<u32>,
    /// Open connections in all, on HTTP and on SIP TCP+TLS (each counted apart). Default: 10000
    #[arg(long, env = "CONCLAVE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
    /// Lifetime of a login session, in minutes. Default: 720 (12 hours)
    #[arg(long, env = "CONCLAVE_SESSION_TTL_MINUTES", value_name = "MINUTES")]
    pub session_ttl_minutes: Option<u32>,
    /// The built web console (web/dist). Default: ./web/dist
    #[arg(long, env = "CONCLAVE_WEB_DIR", value_name = "DIR")]
    pub web_dir: Option<PathBuf>,
    /// Log filter, e.g. info or conclave=debug,sqlx=warn. Default: info
    #[arg(long, env = "CONCLAVE_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Bearer token that /metrics requires (16 characters or more). Default: none, and then
    /// /metrics answers only loopback clients that came through no proxy
    #[arg(
        long,
        env = "CONCLAVE_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
}

/// The same settings as read from the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    http_listen: Option<SocketAddr>,
    sip_udp: Option<SocketAddr>,
    sip_tcp: Option<SocketAddr>,
    sip_tls: Option<SocketAddr>,
    sip_tls_cert: Option<PathBuf>,
    sip_tls_key: Option<PathBuf>,
    sip_realm: Option<String>,
    sip_digest: Option<String>,
    sip_nonce_lifetime_seconds: Option<u32>,
    sip_srtp: Option<String>,
    sip_tls_srtp: Option<String>,
    access_number: Option<String>,
    access_language: Option<String>,
    ring_timeout_seconds: Option<u32>,
    public_address: Option<std::net::IpAddr>,
    media_tcp_listen: Option<std::net::SocketAddr>,
    media_workers: Option<usize>,
    media_pack_members: Option<usize>,
    media_ports: Option<String>,
    media_port_min: Option<u16>,
    media_port_max: Option<u16>,
    media_timeout_seconds: Option<u32>,
    hold_timeout_seconds: Option<u32>,
    webhooks_allow_private_targets: Option<bool>,
    pin_timeout_seconds: Option<u32>,
    waiting_per_address: Option<u32>,
    waiting_total: Option<u32>,
    scheduling_capacity: Option<u32>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    mail_reminder_minutes: Option<u32>,
    recording_key_file: Option<PathBuf>,
    recording_retention_days: Option<u32>,
    recording_store: Option<String>,
    speech_model: Option<PathBuf>,
    minutes_threads: Option<usize>,
    minutes_beam: Option<usize>,
    minutes_languages: Option<String>,
    minutes_live: Option<bool>,
    cluster_nats: Option<String>,
    node_id: Option<String>,
    node_sip_uri: Option<String>,
    node_room_members: Option<usize>,
    session_ttl_minutes: Option<u32>,
    tls_handshake_timeout_seconds: Option<u32>,
    header_timeout_seconds: Option<u32>,
    http_idle_timeout_seconds: Option<u32>,
    sip_idle_timeout_seconds: Option<u32>,
    max_connections_per_address: Option<u32>,
    max_connections: Option<u32>,
    web_dir: Option<PathBuf>,
    log: Option<String>,
    metrics_token: Option<String>,
}

/// The settings in force, after merging and checking.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub http_listen: SocketAddr,
    pub sip_udp: SocketAddr,
    pub sip_tcp: SocketAddr,
    pub sip_tls: SocketAddr,
    /// Certificate and key for SIP over TLS; `None`: self-signed in the data directory.
    pub sip_tls_identity: Option<(PathBuf, PathBuf)>,
    pub sip_realm: String,
    /// Digest algorithms of the registrar's challenges, in order.
    pub sip_digest: Vec<conclave_sip::auth::Algorithm>,
    /// How long a digest nonce is good for.
    pub sip_nonce_lifetime_seconds: u32,
    /// SRTP policy of calls over UDP and TCP, and over TLS.
    pub sip_srtp: SrtpMode,
    pub sip_tls_srtp: SrtpMode,
    /// The access number's digits (`None`: no access number) and its menu's language.
    pub access_number: Option<String>,
    pub access_language: Language,
    /// How long a called extension may ring.
    pub ring_timeout_seconds: u32,
    /// What SIP and SDP announce (`None`: the listening address, or the default route's).
    pub public_address: Option<std::net::IpAddr>,
    /// Where browsers reach the media over TCP (`None`: UDP only).
    pub media_tcp_listen: Option<std::net::SocketAddr>,
    /// Media worker threads (0: one per core).
    pub media_workers: usize,
    /// Members a media worker takes new rooms up to before they go to the least loaded.
    pub media_pack_members: usize,
    pub media_ports: crate::media::PortMode,
    pub media_port_min: u16,
    pub media_port_max: u16,
    pub media_timeout_seconds: u32,
    pub hold_timeout_seconds: u32,
    /// Webhooks may target private, loopback and link-local addresses.
    pub webhooks_allow_private_targets: bool,
    pub pin_timeout_seconds: u32,
    pub waiting_per_address: u32,
    pub waiting_total: u32,
    /// Members at once that scheduled meetings may expect in all (the conflict check).
    pub scheduling_capacity: u32,
    /// Where invitations are mailed (see the flag); absent: not mailed.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    /// Minutes before an occurrence's start that its reminder is mailed; 0: none.
    pub mail_reminder_minutes: u32,
    /// The recordings' master key (see the flag); absent: DATA_DIR/recordings.key.
    pub recording_key_file: Option<PathBuf>,
    /// Days a recording is kept after it ended; 0: until deleted.
    pub recording_retention_days: u32,
    /// Where ended recordings rest (see the flag); absent: the data directory.
    pub recording_store: Option<String>,
    /// The minutes' speech model and how it is run (see the flags).
    pub speech_model: PathBuf,
    pub minutes_threads: usize,
    pub minutes_beam: usize,
    pub minutes_languages: Vec<String>,
    pub minutes_live: bool,
    /// Set when this node is one of a cluster.
    pub cluster: Option<ClusterSettings>,
    pub session_ttl_minutes: u32,
    /// Timeouts and connection caps of the HTTP and SIP listeners.
    pub listener_limits: crate::limits::ListenerLimits,
    pub web_dir: PathBuf,
    pub log: String,
    /// The first administrator's password (`CONCLAVE_ADMIN_PASSWORD`); random when unset.
    pub admin_password: Option<String>,
    /// The bearer token /metrics requires; `None`: loopback clients only.
    pub metrics_token: Option<String>,
}

/// How this node takes part in a cluster (docs/cluster.md).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub nats_url: String,
    pub node_id: String,
    /// `None`: sip:<public address>:<SIP UDP port>, known once the server has started.
    pub sip_uri: Option<String>,
    /// Members one room may have on this node before callers cascade (0: no limit).
    pub room_members: usize,
}

/// See `media_pack_members`: about 4 % of a core in PCMU members (8 % in Opus) — light
/// enough that one thread carries it without delaying anybody's tick.
const DEFAULT_PACK_MEMBERS: usize = 200;

impl Settings {
    /// Defaults everywhere, with the given data directory: a base for tests and tools.
    pub fn with_data_dir(data_dir: &Path) -> Settings {
        Settings::resolve(
            ServeArgs {
                data_dir: Some(data_dir.to_owned()),
                ..ServeArgs::default()
            },
            FileSettings::default(),
            None,
        )
        .unwrap_or_else(|_| unreachable!("defaults are valid"))
    }

    /// Merges flags/environment (already in `args`, clap reads both) with the file.
    pub fn load(args: ServeArgs) -> Result<Settings> {
        let file = match &args.config {
            Some(path) => Some(read_file(path)?),
            None => {
                let default = Path::new("conclave.toml");
                if default.exists() {
                    Some(read_file(default)?)
                } else {
                    None
                }
            }
        };
        let admin_password = std::env::var("CONCLAVE_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        Settings::resolve(args, file.unwrap_or_default(), admin_password)
    }

    fn resolve(
        args: ServeArgs,
        file: FileSettings,
        admin_password: Option<String>,
    ) -> Result<Settings> {
        let listener_limits = listener_limits(&args, &file)?;
        let metrics_token = args
            .metrics_token
            .clone()
            .or(file.metrics_token)
            .filter(|t| !t.is_empty());
        if let Some(token) = &metrics_token
            && (token.chars().count() < 16 || token.chars().any(char::is_whitespace))
        {
            bail!("metrics_token: must be 16 characters or more, without spaces");
        }
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "data".into());
        let database_url = match args.database_url.or(file.database_url) {
            Some(url) => url,
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("conclave.db").display()
            ),
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("database_url: {database_url:?} is neither sqlite://FILE nor postgres://…");
        }
        let sip_realm = args
            .sip_realm
            .or(file.sip_realm)
            .unwrap_or_else(|| "conclave".into());
        if sip_realm.is_empty() || sip_realm.contains(['"', '\\']) || sip_realm.len() > 128 {
            bail!(
                "sip_realm: {sip_realm:?} must be 1 to 128 characters without quotes or backslashes"
            );
        }
        let session_ttl_minutes = args
            .session_ttl_minutes
            .or(file.session_ttl_minutes)
            .unwrap_or(720);
        if !(1..=525_600).contains(&session_ttl_minutes) {
            bail!("session_ttl_minutes: {session_ttl_minutes} is outside 1..=525600 (one year)");
        }
        let speech_model = args
            .speech_model
            .clone()
            .or(file.speech_model.clone())
            .unwrap_or_else(|| data_dir.join("models").join("whisper-base.bin"));
        let languages = args
            .minutes_languages
            .clone()
            .or(file.minutes_languages.clone())
            .unwrap_or_else(|| "zh,en".into());
        let minutes_languages: Vec<String> = languages
            .split(',')
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|l| !l.is_empty())
            .collect();
        if minutes_languages.is_empty()
            || minutes_languages.len() > 8
            || minutes_languages
                .iter()
                .any(|l| !(2..=3).contains(&l.len()) || !l.chars().all(|c| c.is_ascii_lowercase()))
        {
            bail!(
                "minutes_languages: {languages:?} must be one to eight language codes such as zh,en"
            );
        }
        let cluster = match args.cluster_nats.clone().or(file.cluster_nats.clone()) {
            None => None,
            Some(nats_url) => {
                if !nats_url.starts_with("nats://") && !nats_url.starts_with("tls://") {
                    bail!("cluster_nats: {nats_url:?} is not a nats:// URL");
                }
                if !database_url.starts_with("postgres") {
                    bail!("cluster_nats: a cluster's nodes share a PostgreSQL database_url");
                }
                let node_id = match args.node_id.clone().or(file.node_id.clone()) {
                    Some(id) => id,
                    None => std::fs::read_to_string("/etc/hostname")
                        .map(|h| h.trim().to_owned())
                        .unwrap_or_default(),
                };
                if node_id.is_empty()
                    || node_id.len() > 64
                    || !node_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    bail!("node_id: {node_id:?} must be 1 to 64 letters, digits, - or _");
                }
                let sip_uri = args.node_sip_uri.clone().or(file.node_sip_uri.clone());
                if let Some(uri) = &sip_uri
                    && !uri.starts_with("sip:")
                {
                    bail!("node_sip_uri: {uri:?} is not a sip: URI");
                }
                Some(ClusterSettings {
                    nats_url,
                    node_id,
                    sip_uri,
                    room_members: args
                        .node_room_members
                        .or(file.node_room_members)
                        .unwrap_or(0),
                })
            }
        };
        if let Some(password) = &admin_password
            && password.chars().count() < 8
        {
            bail!("CONCLAVE_ADMIN_PASSWORD: must be at least 8 characters");
        }
        let sip_tls_identity = match (
            args.sip_tls_cert.or(file.sip_tls_cert),
            args.sip_tls_key.or(file.sip_tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => bail!("sip_tls_cert and sip_tls_key: give both or neither"),
        };
        let sip_srtp = srtp_policy("sip_srtp", args.sip_srtp.or(file.sip_srtp))?;
        let sip_tls_srtp = srtp_policy("sip_tls_srtp", args.sip_tls_srtp.or(file.sip_tls_srtp))?;
        let access_number = match args.access_number.or(file.access_number) {
            None => Some("8000".to_owned()),
            Some(n) if n.is_empty() => None,
            Some(n) if n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            Some(n) => bail!("access_number: {n:?} must be 1 to 20 digits, or empty for none"),
        };
        let access_language = match args.access_language.or(file.access_language) {
            None => Language::English,
            Some(l) => Language::parse(&l)
                .with_context(|| format!("access_language: {l:?} is neither en nor zh"))?,
        };
        let ring_timeout_seconds = args
            .ring_timeout_seconds
            .or(file.ring_timeout_seconds)
            .unwrap_or(60);
        if !(5..=600).contains(&ring_timeout_seconds) {
            bail!("ring_timeout_seconds: {ring_timeout_seconds} is outside 5..=600");
        }
        let media_ports = match args
            .media_ports
            .or(file.media_ports)
            .as_deref()
            .map(str::trim)
        {
            None | Some("shared") => crate::media::PortMode::Shared,
            Some("per-call") => crate::media::PortMode::PerCall,
            Some(other) => bail!("media_ports: {other:?} is neither shared nor per-call"),
        };
        let media_port_min = args
            .media_port_min
            .or(file.media_port_min)
            .unwrap_or(10_000);
        let media_port_max = args
            .media_port_max
            .or(file.media_port_max)
            .unwrap_or(20_000);
        if media_port_min < 1024 || media_port_max < media_port_min.saturating_add(3) {
            bail!(
                "media_port_min/max: {media_port_min}..{media_port_max} must be above 1023 and hold at least two pairs of ports"
            );
        }
        let media_timeout_seconds = args
            .media_timeout_seconds
            .or(file.media_timeout_seconds)
            .unwrap_or(30);
        if !(5..=3600).contains(&media_timeout_seconds) {
            bail!("media_timeout_seconds: {media_timeout_seconds} is outside 5..=3600");
        }
        let hold_timeout_seconds = args
            .hold_timeout_seconds
            .or(file.hold_timeout_seconds)
            .unwrap_or(1800);
        if !(media_timeout_seconds..=86_400).contains(&hold_timeout_seconds) {
            bail!(
                "hold_timeout_seconds: {hold_timeout_seconds} is outside media_timeout_seconds..=86400"
            );
        }
        let pin_timeout_seconds = args
            .pin_timeout_seconds
            .or(file.pin_timeout_seconds)
            .unwrap_or(10);
        if !(2..=60).contains(&pin_timeout_seconds) {
            bail!("pin_timeout_seconds: {pin_timeout_seconds} is outside 2..=60");
        }
        let waiting_per_address = args
            .waiting_per_address
            .or(file.waiting_per_address)
            .unwrap_or(10);
        let waiting_total = args.waiting_total.or(file.waiting_total).unwrap_or(500);
        if waiting_per_address == 0 || waiting_total < waiting_per_address {
            bail!(
                "waiting_per_address/waiting_total: {waiting_per_address}/{waiting_total}: at least one, and the total no smaller"
            );
        }
        let media_workers = args.media_workers.or(file.media_workers).unwrap_or(0);
        if media_workers > 256 {
            bail!("media_workers: {media_workers} is more than 256");
        }
        let sip_nonce_lifetime_seconds = args
            .sip_nonce_lifetime_seconds
            .or(file.sip_nonce_lifetime_seconds)
            .unwrap_or(300);
        if !(1..=3600).contains(&sip_nonce_lifetime_seconds) {
            bail!("sip_nonce_lifetime_seconds: {sip_nonce_lifetime_seconds} is outside 1..=3600");
        }
        let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
        Ok(Settings {
            minutes_live: args.minutes_live.or(file.minutes_live).unwrap_or(true),
            cluster,
            data_dir,
            database_url,
            http_listen: args.http_listen.or(file.http_listen).unwrap_or(any(8080)),
            sip_udp: args.sip_udp.or(file.sip_udp).unwrap_or(any(5060)),
            sip_tcp: args.sip_tcp.or(file.sip_tcp).unwrap_or(any(5060)),
            sip_tls: args.sip_tls.or(file.sip_tls).unwrap_or(any(5061)),
            sip_tls_identity,
            sip_realm,
            sip_digest: digest_algorithms(args.sip_digest.or(file.sip_digest))?,
            sip_nonce_lifetime_seconds,
            sip_srtp,
            sip_tls_srtp,
            access_number,
            access_language,
            ring_timeout_seconds,
            public_address: args.public_address.or(file.public_address),
            media_tcp_listen: args.media_tcp_listen.or(file.media_tcp_listen),
            media_workers,
            media_pack_members: args
                .media_pack_members
                .or(file.media_pack_members)
                .unwrap_or(DEFAULT_PACK_MEMBERS),
            media_ports,
            media_port_min,
            media_port_max,
            media_timeout_seconds,
            hold_timeout_seconds,
            webhooks_allow_private_targets: args
                .webhooks_allow_private_targets
                .or(file.webhooks_allow_private_targets)
                .unwrap_or(false),
            pin_timeout_seconds,
            waiting_per_address,
            waiting_total,
            scheduling_capacity: args
                .scheduling_capacity
                .or(file.scheduling_capacity)
                .unwrap_or(1000),
            smtp_url: args.smtp_url.clone().or(file.smtp_url),
            mail_from: args
                .mail_from
                .clone()
                .or(file.mail_from)
                .unwrap_or_else(|| "conclave@localhost".to_owned()),
            // At most a day ahead: reminders are looked for in that window.
            mail_reminder_minutes: args
                .mail_reminder_minutes
                .or(file.mail_reminder_minutes)
                .unwrap_or(15)
                .min(24 * 60),
            recording_key_file: args.recording_key_file.clone().or(file.recording_key_file),
            // at most a hundred years
            recording_retention_days: args
                .recording_retention_days
                .or(file.recording_retention_days)
                .unwrap_or(0)
                .min(36_500),
            recording_store: args.recording_store.clone().or(file.recording_store),
            speech_model,
            minutes_threads: args
                .minutes_threads
                .or(file.minutes_threads)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
                .min(64),
            minutes_beam: args
                .minutes_beam
                .or(file.minutes_beam)
                .unwrap_or(5)
                .clamp(1, 8),
            minutes_languages,
            session_ttl_minutes,
            listener_limits,
            web_dir: args
                .web_dir
                .or(file.web_dir)
                .unwrap_or_else(|| "web/dist".into()),
            log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
            admin_password,
            metrics_token,
        })
    }
}

/// A number setting within a range, or its default.
fn bounded(
    name: &str,
    value: Option<u32>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32> {
    let value = value.unwrap_or(default);
    if !range.contains(&value) {
        bail!(
            "{name}: {value} is outside {}..={}",
            range.start(),
            range.end()
        );
    }
    Ok(value)
}

fn listener_limits(args: &ServeArgs, file: &FileSettings) -> Result<crate::limits::ListenerLimits> {
    use std::time::Duration;
    let secs = |name, flag: Option<u32>, key: Option<u32>, default| {
        bounded(name, flag.or(key), default, 1..=86_400).map(|s| Duration::from_secs(s.into()))
    };
    Ok(crate::limits::ListenerLimits {
        tls_handshake_timeout: secs(
            "tls_handshake_timeout_seconds",
            args.tls_handshake_timeout_seconds,
            file.tls_handshake_timeout_seconds,
            10,
        )?,
        header_timeout: secs(
            "header_timeout_seconds",
            args.header_timeout_seconds,
            file.header_timeout_seconds,
            10,
        )?,
        http_idle_timeout: secs(
            "http_idle_timeout_seconds",
            args.http_idle_timeout_seconds,
            file.http_idle_timeout_seconds,
            60,
        )?,
        sip_idle_timeout: secs(
            "sip_idle_timeout_seconds",
            args.sip_idle_timeout_seconds,
            file.sip_idle_timeout_seconds,
            300,
        )?,
        per_address: bounded(
            "max_connections_per_address",
            args.max_connections_per_address
                .or(file.max_connections_per_address),
            256,
            1..=1_000_000,
        )? as usize,
        total: bounded(
            "max_connections",
            args.max_connections.or(file.max_connections),
            10_000,
            1..=10_000_000,
        )? as usize,
    })
}

fn digest_algorithms(value: Option<String>) -> Result<Vec<conclave_sip::auth::Algorithm>> {
    use conclave_sip::auth::Algorithm;
    let value = value.unwrap_or_else(|| "md5".into());
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim) {
        let algorithm = match name.to_ascii_lowercase().as_str() {
            "md5" => Algorithm::Md5,
            "sha256" | "sha-256" => Algorithm::Sha256,
            _ => bail!("sip_digest: {name:?} is neither md5 nor sha256"),
        };
        if out.contains(&algorithm) {
            bail!("sip_digest: {name} is listed twice");
        }
        out.push(algorithm);
    }
    Ok(out)
}

fn srtp_policy(name: &str, value: Option<String>) -> Result<SrtpMode> {
    match value.as_deref().map(str::trim) {
        None | Some("optional") => Ok(SrtpMode::Optional),
        Some("off") => Ok(SrtpMode::Off),
        Some("mandatory") => Ok(SrtpMode::Mandatory),
        Some(other) => bail!("{name}: {other:?} is none of off, optional, mandatory"),
    }
}

fn read_file(path: &Path) -> Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("config: cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config: invalid {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let file: FileSettings =
            toml::from_str("http_listen = \"127.0.0.1:9000\"\nsip_realm = \"file\"").unwrap();
        let args = ServeArgs {
            sip_realm: Some("flag".into()),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(args, file, None).unwrap();
        assert_eq!(s.sip_realm, "flag");
        assert_eq!(s.http_listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.sip_tls.port(), 5061);
        assert!(s.database_url.starts_with("sqlite://data/conclave.db"));
    }

    #[test]
    fn bad_settings_are_named() {
        let err = toml::from_str::<FileSettings>("http_listen = \"nowhere\"").unwrap_err();
        assert!(err.to_string().contains("http_listen"), "{err}");
        let err = toml::from_str::<FileSettings>("htp_listen = \"1.2.3.4:5\"").unwrap_err();
        assert!(err.to_string().contains("htp_listen"), "{err}");
        let args = ServeArgs {
            database_url: Some("mysql://x".into()),
            ..ServeArgs::default()
        };
        let err = Settings::resolve(args, FileSettings::default(), None).unwrap_err();
        assert!(err.to_string().starts_with("database_url"), "{err}");
        let err = Settings::resolve(
            ServeArgs::default(),
            FileSettings::default(),
            Some("short".into()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CONCLAVE_ADMIN_PASSWORD"), "{err}");
    }

    #[test]
    fn digest_algorithms_are_a_list_in_order() {
        use conclave_sip::auth::Algorithm;
        assert_eq!(digest_algorithms(None).unwrap(), [Algorithm::Md5]);
        assert_eq!(
            digest_algorithms(Some("sha256, md5".into())).unwrap(),
            [Algorithm::Sha256, Algorithm::Md5]
        );
        assert!(digest_algorithms(Some("md5,md5".into())).is_err());
        assert!(digest_algorithms(Some("sha1".into())).is_err());
        assert!(srtp_policy("sip_srtp", Some("sometimes".into())).is_err());
        assert_eq!(srtp_policy("sip_srtp", None).unwrap(), SrtpMode::Optional);
        let args = ServeArgs {
            ring_timeout_seconds: Some(2),
            ..ServeArgs::default()
        };
        let err = Settings::resolve(args, FileSettings::default(), None).unwrap_err();
        assert!(err.to_string().contains("ring_timeout_seconds"), "{err}");
        let args = ServeArgs {
            access_number: Some("80a0".into()),
            ..ServeArgs::default()
        };
        assert!(Settings::resolve(args, FileSettings::default(), None).is_err());
    }

    #[test]
    fn listener_limits_and_nonce_lifetime_are_checked() {
        let s = Settings::resolve(ServeArgs::default(), FileSettings::default(), None).unwrap();
        assert_eq!(s.listener_limits, crate::limits::ListenerLimits::default());
        assert_eq!(s.sip_nonce_lifetime_seconds, 300);
        let file: FileSettings =
            toml::from_str("header_timeout_seconds = 3\nmax_connections_per_address = 5").unwrap();
        let s = Settings::resolve(ServeArgs::default(), file, None).unwrap();
        assert_eq!(
            s.listener_limits.header_timeout,
            std::time::Duration::from_secs(3)
        );
        assert_eq!(s.listener_limits.per_address, 5);
        for args in [
            ServeArgs {
                sip_idle_timeout_seconds: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                max_connections: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                sip_nonce_lifetime_seconds: Some(0),
                ..ServeArgs::default()
            },
        ] {
            let err = Settings::resolve(args, FileSettings::default(), None).unwrap_err();
            assert!(err.to_string().contains("is outside"), "{err}");
        }
    }
}
