//! The SIP side of the runtime: listeners on UDP, TCP and TLS, and one task that owns the
//! sans-IO stack (`conclave-sip`): it feeds it bytes and time, sends what it emits, and acts
//! on its events — registrations against the users' extensions, OPTIONS keep-alives, calls.

pub(crate) mod calls;

pub use calls::{Feature, feature_code, member_spec};
mod registrations;
mod tls;
mod transport;

use crate::config::Settings;
use anyhow::{Context, Result};
use conclave_sip::headers::Transport;
use conclave_sip::message::{HeaderName, Message, Method, Request};
use conclave_sip::offer_answer::SrtpPolicy;
use conclave_sip::registrar::{Registrar, RegistrarConfig};
use conclave_sip::registration::{Registration, RegistrationConfig, RegistrationState};
use conclave_sip::ua::{LocalAddress, UaConfig, UaEvent, UserAgent};
use conclave_sip::uri::Host;
use conclave_sip::{Peer, Transmit};
use conclave_store::Store;
use conclave_store::model::User;
use conclave_store::model::{SipTransport, SrtpMode, Trunk};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What reaches the SIP task.
pub(crate) enum Input {
    Datagram {
        data: Vec<u8>,
        from: SocketAddr,
    },
    Stream {
        msg: Box<Message>,
        peer: Peer,
    },
    Connected {
        id: u64,
        addr: SocketAddr,
        transport: Transport,
        out: transport::Outbox,
    },
    Closed {
        id: u64,
    },
    /// A connection we opened never came up: what waits to go on it fails now.
    ConnectFailed {
        id: u64,
    },
    /// An account was frozen or deleted: its extension's bindings go now.
    Unregister {
        aor: String,
    },
    /// The directory's answer for a REGISTER waiting on it.
    Looked {
        pending: Box<registrations::Pending>,
        user: Option<Box<User>>,
    },
    /// What the directory says about the room a call dialled.
    Admission {
        call: conclave_sip::ua::CallId,
        caller: calls::Caller,
        admission: calls::Admission,
        srtp: SrtpPolicy,
    },
    /// A direct call's callee answered (`true`: the caller is answered now) or cannot be
    /// reached (`false`: the caller is refused with busy).
    CallAnswered {
        call: conclave_sip::ua::CallId,
        answered: bool,
    },
    /// Call someone into a room.
    Invite {
        room: Box<conclave_store::model::Room>,
        callee: Callee,
        /// The gateway's address, for a number through a trunk.
        dest: Option<SocketAddr>,
        /// The meeting's invitation this call answers.
        invitation: Option<u32>,
        name: String,
        role: conclave_conference::Role,
        /// A call to a number holds its place under the tenant's limit until it ends.
        permit: Option<crate::outbound::Permit>,
        /// An extension registered on another node of the cluster: its contact, and where
        /// the registration came from (Kamailio, over UDP).
        elsewhere: Option<(String, SocketAddr)>,
        reply: tokio::sync::oneshot::Sender<Result<u64, String>>,
    },
    /// End a call (a chair removed the caller, the meeting ended).
    HangUp {
        call: u64,
    },
    /// A call that began audio-only gets a video port, offered by re-INVITE (its terminal
    /// offered video).
    OfferVideo {
        call: u64,
        port: u16,
    },
    /// A trunk was added, changed (`Some`) or removed (`None`): its registration follows.
    Trunk {
        id: String,
        trunk: Option<Box<Trunk>>,
        dest: Option<SocketAddr>,
    },
    /// How the trunks' registrations stand (for the API); `None`: not registering.
    TrunkStates {
        ids: Vec<String>,
        reply: tokio::sync::oneshot::Sender<Vec<Option<String>>>,
    },
    /// Answered once everything before it has been handled and sent.
    Flush {
        reply: tokio::sync::oneshot::Sender<()>,
    },
    /// Who is registered (for the API).
    Bindings {
        aors: Vec<String>,
        reply: tokio::sync::oneshot::Sender<Vec<Vec<BindingView>>>,
    },
}

/// Whom a call goes to.
#[derive(Debug, Clone)]
pub enum Callee {
    /// A user's extension, through its registrations.
    Extension(String),
    /// A phone number through a trunk, as the trunk's rules rewrote it.
    Number { trunk: Box<Trunk>, number: String },
    /// Another node of the cluster: a room's home, joined by a cascade (`token` proves the
    /// call comes from a node of the cluster).
    Node {
        dest: SocketAddr,
        number: String,
        token: String,
    },
}

/// The header a cascade's call to a room's home carries (`crate::cluster::cascade`).
pub const CASCADE_HEADER: &str = "X-Conclave-Cascade";
/// The Request-URI parameter of a home's 302 that asks the next node for a cascade.
pub const CASCADE_PARAM: &str = "conclave-cascade";

fn srtp_policy(mode: SrtpMode) -> SrtpPolicy {
    match mode {
        SrtpMode::Off => SrtpPolicy::Off,
        SrtpMode::Optional => SrtpPolicy::Optional,
        SrtpMode::Mandatory => SrtpPolicy::Mandatory,
    }
}

fn sip_transport(t: SipTransport) -> Transport {
    match t {
        SipTransport::Udp => Transport::Udp,
        SipTransport::Tcp => Transport::Tcp,
        SipTransport::Tls => Transport::Tls,
    }
}

/// The gateway's address (the first the name resolves to).
async fn resolve(trunk: &Trunk) -> Result<SocketAddr, String> {
    let host = trunk
        .settings
        .host
        .trim_start_matches('[')
        .trim_end_matches(']');
    let lookup = tokio::net::lookup_host((host, trunk.settings.port));
    match tokio::time::timeout(std::time::Duration::from_secs(5), lookup).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| format!("trunk {}: {host} has no address", trunk.name)),
        Ok(Err(err)) => Err(format!(
            "trunk {}: cannot resolve {host}: {err}",
            trunk.name
        )),
        Err(_) => Err(format!("trunk {}: resolving {host} timed out", trunk.name)),
    }
}

/// A registered contact of an extension, as the console and integrations see it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BindingView {
    pub contact: String,
    /// Where the registration came from (address and transport).
    pub source: String,
    pub transport: String,
    pub expires_in: u32,
    pub user_agent: Option<String>,
}

impl crate::meeting::LegControl for SipHandle {
    fn hang_up(&self, kind: &crate::meeting::LegKind) {
        let crate::meeting::LegKind::Sip { call } = *kind else {
            return;
        };
        if let Err(err) = self.inputs.try_send(Input::HangUp { call }) {
            // A full queue must not lose a hang-up: it waits for room.
            if let tokio::sync::mpsc::error::TrySendError::Full(input) = err
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let inputs = self.inputs.clone();
                runtime.spawn(async move {
                    let _ = inputs
                        .send_timeout(input, std::time::Duration::from_secs(5))
                        .await;
                });
            }
        }
    }

    fn offer_video(&self, kind: &crate::meeting::LegKind, port: u16) {
        let crate::meeting::LegKind::Sip { call } = *kind else {
            return;
        };
        if self
            .inputs
            .try_send(Input::OfferVideo { call, port })
            .is_err()
        {
            // the terminal may offer again; its audio goes on
            tracing::warn!(call, "the SIP task is busy: video not offered");
        }
    }
}

/// Talks to the SIP task from elsewhere (the HTTP API): cheap to clone.
/// How long a direct call's caller waits for the meeting's word at most (the callee's ring
/// timeout ends the wait sooner).
const DIRECT_CALL_VERDICT: std::time::Duration = std::time::Duration::from_secs(180);

#[derive(Clone)]
pub struct SipHandle {
    inputs: mpsc::Sender<Input>,
    /// SIP domains whose registrations are challenged with SHA-256 only.
    sha256_only: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
    /// The tenants' outbound policies are read from here.
    store: Store,
    /// Each tenant's calls to numbers, against its limits.
    outbound: crate::outbound::OutboundCalls,
    /// In a cluster: an extension registered on another node is found there.
    cluster: Option<crate::cluster::Cluster>,
}

/// Why `SipHandle::invite` placed no call.
#[derive(Debug, Clone)]
pub enum InviteError {
    /// The tenant's outbound policy refused it (who, which number, how many).
    Refused(crate::outbound::Refusal),
    /// It could not be placed (no registration, no gateway address, SIP stopped…).
    Failed(String),
}

impl std::fmt::Display for InviteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InviteError::Refused(refusal) => refusal.fmt(f),
            InviteError::Failed(reason) => f.write_str(reason),
        }
    }
}

impl SipHandle {
    /// Returns once the SIP task has handled (and sent) everything asked of it so far, or
    /// after `within`.
    pub async fn flush(&self, within: std::time::Duration) {
        let (reply, done) = tokio::sync::oneshot::channel();
        let asked = tokio::time::timeout(within, self.inputs.send(Input::Flush { reply }));
        if matches!(asked.await, Ok(Ok(()))) {
            let _ = tokio::time::timeout(within, done).await;
        }
    }

    /// The SIP domains of SHA-256-only tenants changed (the registrar challenges by domain).
    pub fn set_sha256_only_domains(&self, domains: Vec<String>) {
        *self.sha256_only.write().unwrap_or_else(|p| p.into_inner()) =
            domains.into_iter().collect();
    }

    /// Calls someone into a room for one of its meeting's invitations, as `dialer` asks; the
    /// call id, or why it could not be placed. Every call to a phone number goes through
    /// here, so this is where the tenant's outbound policy holds (`outbound.rs`).
    pub async fn invite(
        &self,
        room: conclave_store::model::Room,
        callee: Callee,
        name: String,
        role: conclave_conference::Role,
        invitation: Option<u32>,
        dialer: &crate::outbound::Dialer,
    ) -> Result<u64, InviteError> {
        let (dest, permit) = match &callee {
            Callee::Number { trunk, number } => {
                let mut conn = self.store.conn().await.map_err(|e| {
                    InviteError::Failed(format!("reading the outbound policy: {e}"))
                })?;
                let policy =
                    conclave_store::repo::outbound_policies::get(&mut conn, &room.tenant_id)
                        .await
                        .map_err(|e| {
                            InviteError::Failed(format!("reading the outbound policy: {e}"))
                        })?;
                drop(conn);
                let permit = self
                    .outbound
                    .admit(&room.tenant_id, dialer, &policy, number, Instant::now())
                    .map_err(InviteError::Refused)?;
                let dest = resolve(trunk).await.map_err(InviteError::Failed)?;
                (Some(dest), Some(permit))
            }
            Callee::Extension(_) | Callee::Node { .. } => (None, None),
        };
        // in a cluster, an extension not registered here may be on another node
        let elsewhere = match (&callee, &self.cluster) {
            (Callee::Extension(extension), Some(cluster)) => {
                if self.registered_here(&room.tenant_id, extension).await {
                    None
                } else {
                    crate::cluster::bus::find_binding(cluster, &room.tenant_id, extension).await
                }
            }
            _ => None,
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let input = Input::Invite {
            room: Box::new(room),
            callee,
            dest,
            invitation,
            name,
            role,
            permit,
            elsewhere,
            reply,
        };
        let stopped = || InviteError::Failed("the SIP service has stopped".to_owned());
        self.inputs.send(input).await.map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(InviteError::Failed)
    }

    /// Whether the extension has a binding on this node.
    async fn registered_here(&self, tenant_id: &str, extension: &str) -> bool {
        self.bindings(tenant_id, vec![extension.to_owned()])
            .await
            .is_ok_and(|b| b.iter().any(|b| !b.is_empty()))
    }

    /// A trunk was saved (`Some`) or deleted (`None`): (re-)register with its gateway as it
    /// asks.
    pub fn trunk_changed(&self, id: String, trunk: Option<Trunk>) {
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let wants = trunk
                .as_ref()
                .is_some_and(|t| t.settings.register && t.settings.enabled);
            let dest = match &trunk {
                Some(t) if wants => match resolve(t).await {
                    Ok(dest) => Some(dest),
                    Err(err) => {
                        tracing::warn!(%err, "trunk registration not started");
                        None
                    }
                },
                _ => None,
            };
            let trunk = trunk.map(Box::new);
            let _ = inputs.send(Input::Trunk { id, trunk, dest }).await;
        });
    }

    /// How each trunk's registration stands, in the order asked; `None` where it does not
    /// register.
    pub async fn trunk_states(&self, ids: Vec<String>) -> Vec<Option<String>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self
            .inputs
            .send(Input::TrunkStates { ids, reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Removes the registrations of a tenant's extension at once (its account was frozen or
    /// deleted). Frozen accounts cannot register again (`registrations::looked_up`).
    pub async fn unregister(&self, tenant_id: &str, extension: &str) {
        let aor = registrations::aor(extension, tenant_id);
        if self.inputs.send(Input::Unregister { aor }).await.is_err() {
            tracing::debug!("the SIP service has stopped: nothing to unregister");
        }
    }

    /// The live bindings of each extension's address of record, in the same order.
    pub async fn bindings(
        &self,
        tenant_id: &str,
        extensions: Vec<String>,
    ) -> Result<Vec<Vec<BindingView>>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let aors = extensions
            .iter()
            .map(|e| registrations::aor(e, tenant_id))
            .collect();
        self.inputs
            .send(Input::Bindings { aors, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the SIP service has stopped"))?;
        answer.await.context("the SIP service has stopped")
    }
}

/// The running SIP service: where it listens, and its tasks.
pub struct SipService {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub tls: SocketAddr,
    pub handle: SipHandle,
    tasks: Vec<JoinHandle<()>>,
}

impl SipService {
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The address phones should reach us at (Via, Contact): the listening address, or the
/// public address when listening on every interface.
fn advertised(addr: SocketAddr, public: IpAddr) -> Host {
    if addr.ip().is_unspecified() {
        Host::Ip(public)
    } else {
        Host::Ip(addr.ip())
    }
}

pub async fn start(
    settings: &Settings,
    store: Store,
    meetings: crate::meeting::Meetings,
    sealer: Arc<crate::secrets::Sealer>,
) -> Result<SipService> {
    let public_ip = settings
        .public_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let udp = UdpSocket::bind(settings.sip_udp)
        .await
        .with_context(|| format!("sip_udp: cannot listen on {}", settings.sip_udp))?;
    let tcp = TcpListener::bind(settings.sip_tcp)
        .await
        .with_context(|| format!("sip_tcp: cannot listen on {}", settings.sip_tcp))?;
    let tls_listener = TcpListener::bind(settings.sip_tls)
        .await
        .with_context(|| format!("sip_tls: cannot listen on {}", settings.sip_tls))?;
    let tls_config = tls::server_config(settings.sip_tls_identity.as_ref(), &settings.data_dir)?;
    let (udp_addr, tcp_addr, tls_addr) = (
        udp.local_addr()?,
        tcp.local_addr()?,
        tls_listener.local_addr()?,
    );

    let ua_config = UaConfig {
        locals: vec![
            LocalAddress {
                transport: Transport::Udp,
                host: advertised(udp_addr, public_ip),
                port: udp_addr.port(),
            },
            LocalAddress {
                transport: Transport::Tcp,
                host: advertised(tcp_addr, public_ip),
                port: tcp_addr.port(),
            },
            LocalAddress {
                transport: Transport::Tls,
                host: advertised(tls_addr, public_ip),
                port: tls_addr.port(),
            },
        ],
        media: conclave_sip::offer_answer::MediaConfig {
            srtp: srtp_policy(settings.sip_srtp),
            ..Default::default()
        },
        ring_timeout: std::time::Duration::from_secs(settings.ring_timeout_seconds.into()),
        ..UaConfig::default()
    };
    let locals = ua_config.locals.clone();
    let trunks = {
        let mut conn = store.conn().await.context("loading trunks")?;
        let trunks = conclave_store::repo::trunks::all(&mut conn)
            .await
            .context("loading trunks")?;
        crate::trunks::unsealed(trunks, &sealer)
    };
    let seed = rand::random::<u64>();
    let secret: [u8; 32] = rand::random();
    let mut digest = conclave_sip::auth::DigestServer::new(&secret, &settings.sip_realm);
    digest.algorithms = settings.sip_digest.clone();
    digest.nonce_lifetime = settings.sip_nonce_lifetime_seconds.into();
    let udp = Arc::new(udp);
    let (inputs_tx, inputs) = mpsc::channel(4096);
    let sha256_only = {
        let mut conn = store.conn().await.context("loading tenants")?;
        let domains = conclave_store::repo::tenants::sha256_only_domains(&mut conn)
            .await
            .context("loading tenants")?;
        Arc::new(std::sync::RwLock::new(domains.into_iter().collect()))
    };
    let handle = SipHandle {
        inputs: inputs_tx.clone(),
        sha256_only: sha256_only.clone(),
        store: store.clone(),
        outbound: crate::outbound::OutboundCalls::default(),
        cluster: meetings.cluster().cloned(),
    };
    let core = Core {
        ua: UserAgent::new(ua_config, seed),
        registrations: registrations::Registrations::new(
            digest,
            Registrar::new(RegistrarConfig::default()),
            crate::limiter::Limiter::new("sip_digest", crate::limiter::LimiterConfig::sip_digest()),
            registrations::Directory {
                store,
                sealer: sealer.clone(),
            },
            sha256_only.clone(),
        ),
        calls: calls::Calls::new(meetings.clone(), Arc::new(handle.clone())),
        meetings,
        udp: udp.clone(),
        connections: HashMap::new(),
        inputs_tx: inputs_tx.clone(),
        srtp: srtp_policy(settings.sip_srtp),
        tls_srtp: srtp_policy(settings.sip_tls_srtp),
        tls_clients: tls::client_configs()?,
        outbound: HashMap::new(),
        trunk_calls: HashMap::new(),
        closing: Vec::new(),
        trunk_registrations: HashMap::new(),
        locals,
        access_number: settings.access_number.clone(),
        flushed: Vec::new(),
        public_ip,
        ringing: HashMap::new(),
    };
    for trunk in trunks {
        handle.trunk_changed(trunk.id.clone(), Some(trunk));
    }
    // SIP over TCP and TLS share one set of caps.
    let caps = crate::limits::ConnectionCaps::new("sip", &settings.listener_limits);
    let tasks = vec![
        tokio::spawn(core.run(inputs)),
        tokio::spawn(transport::udp_loop(udp, inputs_tx.clone())),
        tokio::spawn(transport::tcp_accept(
            tcp,
            None,
            inputs_tx.clone(),
            settings.listener_limits,
            caps.clone(),
        )),
        tokio::spawn(transport::tcp_accept(
            tls_listener,
            Some(tokio_rustls::TlsAcceptor::from(tls_config)),
            inputs_tx,
            settings.listener_limits,
            caps,
        )),
    ];
    tracing::info!(%udp_addr, %tcp_addr, %tls_addr, "SIP listening");
    Ok(SipService {
        udp: udp_addr,
        tcp: tcp_addr,
        tls: tls_addr,
        handle,
        tasks,
    })
}

/// How a trunk's registration stands, for the console.
fn describe(state: RegistrationState) -> String {
    match state {
        RegistrationState::Idle | RegistrationState::Registering => "registering".into(),
        RegistrationState::Registered { .. } => "registered".into(),
        RegistrationState::Failed { status } => format!("failed: {status}"),
        RegistrationState::Unregistering | RegistrationState::Unregistered => "unregistered".into(),
    }
}

struct Connection {
    addr: SocketAddr,
    transport: Transport,
    out: transport::Outbox,
}

/// The SIP task's state: the stack and what it needs to talk to the world.
struct Core {
    ua: UserAgent,
    calls: calls::Calls,
    meetings: crate::meeting::Meetings,
    registrations: registrations::Registrations,
    udp: Arc<UdpSocket>,
    connections: HashMap<u64, Connection>,
    inputs_tx: mpsc::Sender<Input>,
    /// SRTP policy of calls that come in over UDP/TCP, and over TLS.
    srtp: SrtpPolicy,
    tls_srtp: SrtpPolicy,
    tls_clients: tls::ClientConfigs,
    /// Connections to gateways, by the id their calls and registrations carry in their
    /// `Peer`: for TLS, the name the certificate must carry and whether to check it. A
    /// connection opens on first use (and again if it dropped), with its own trunk's checks.
    outbound: HashMap<u64, Option<(String, bool)>>,
    /// Calls through trunks and their connection (closed when the call ends).
    trunk_calls: HashMap<conclave_sip::ua::CallId, u64>,
    /// Connections to close once the messages in hand are sent.
    closing: Vec<u64>,
    /// Trunk id → our registration with its gateway.
    trunk_registrations: HashMap<String, Registration>,
    /// Our listening addresses, as Via and Contact show them.
    locals: Vec<LocalAddress>,
    /// The conference access number (its calls get the room menu).
    access_number: Option<String>,
    /// Flush requests answered once what is queued has been sent.
    flushed: Vec<tokio::sync::oneshot::Sender<()>>,
    /// The address we announce (Via, Contact).
    public_ip: IpAddr,
    /// Direct calls ringing: the caller waits (180) until the callee answers.
    ringing: HashMap<conclave_sip::ua::CallId, RingingCall>,
}

/// A direct call's caller, not answered yet: what answering them takes.
struct RingingCall {
    room: Box<conclave_store::model::Room>,
    caller: calls::Caller,
    srtp: SrtpPolicy,
}

impl Core {
    async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        loop {
            let deadline = [self.ua.poll_timeout(), self.registrations.next_deadline()]
                .into_iter()
                .chain(self.trunk_registrations.values().map(|r| r.poll_timeout()))
                .flatten()
                .min();
            let input = match deadline {
                Some(at) => tokio::select! {
                    input = inputs.recv() => input,
                    _ = tokio::time::sleep_until(at.into()) => {
                        let now = Instant::now();
                        self.ua.handle_timeout(now);
                        self.registrations.handle_timeout(now, &mut self.ua);
                        for registration in self.trunk_registrations.values_mut() {
                            if registration.poll_timeout().is_some_and(|at| at <= now) {
                                registration.handle_timeout(now, self.ua.endpoint());
                            }
                        }
                        self.drain(now).await;
                        continue;
                    }
                },
                None => inputs.recv().await,
            };
            let Some(input) = input else { return };
            let now = Instant::now();
            self.handle(now, input);
            self.drain(now).await;
        }
    }

    fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Datagram { data, from } => {
                metrics::counter!("conclave_sip_received_total", "transport" => "udp").increment(1);
                self.ua
                    .handle_datagram(now, &data, Peer::new(Transport::Udp, from));
            }
            Input::Stream { msg, peer } => {
                metrics::counter!("conclave_sip_received_total", "transport" => peer.transport.as_str()).increment(1);
                self.ua.handle_message(now, *msg, peer);
            }
            Input::Connected {
                id,
                addr,
                transport,
                out,
            } => {
                self.connections.insert(
                    id,
                    Connection {
                        addr,
                        transport,
                        out,
                    },
                );
            }
            Input::Closed { id } => {
                // A gateway's connection opens again when next needed.
                self.connections.remove(&id);
            }
            Input::ConnectFailed { id } => {
                if let Some(c) = self.connections.remove(&id) {
                    self.ua.connection_failed(now, c.addr, c.transport);
                }
            }
            Input::Admission {
                call,
                caller,
                admission,
                srtp,
            } => {
                if let calls::Admission::Extension { room, call: direct } = admission {
                    self.direct_call(now, call, caller, srtp, room, direct);
                    return;
                }
                self.calls
                    .admitted(now, &mut self.ua, call, caller, admission, srtp);
            }
            Input::CallAnswered { call, answered } => {
                let Some(ringing) = self.ringing.remove(&call) else {
                    return; // the caller gave up meanwhile
                };
                if !answered {
                    let _ = self.ua.reject(now, call, 486, Vec::new());
                    return;
                }
                let name = ringing.caller.name.clone();
                let admission = calls::Admission::Room {
                    room: ringing.room,
                    needs_pin: false,
                    role: Some(conclave_conference::Role::Participant),
                    name: Some(name),
                    greeting: None,
                    satellite_of: None,
                };
                self.calls.admitted(
                    now,
                    &mut self.ua,
                    call,
                    ringing.caller,
                    admission,
                    ringing.srtp,
                );
            }
            Input::Invite {
                room,
                callee,
                dest,
                invitation,
                name,
                role,
                permit,
                elsewhere,
                reply,
            } => {
                let placed = match callee {
                    Callee::Extension(extension) => {
                        self.invite(now, *room, extension, name, role, invitation, elsewhere)
                    }
                    Callee::Number { trunk, number } => match dest {
                        Some(dest) => self.dial_trunk(
                            now, *room, &trunk, dest, number, name, role, invitation, permit,
                        ),
                        None => Err("the gateway's address is unknown".to_owned()),
                    },
                    Callee::Node {
                        dest,
                        number,
                        token,
                    } => self.dial_node(now, *room, dest, number, token, name, role, invitation),
                };
                let _ = reply.send(placed);
            }
            Input::Trunk { id, trunk, dest } => self.trunk_changed(now, id, trunk, dest),
            Input::TrunkStates { ids, reply } => {
                let states = ids
                    .iter()
                    .map(|id| {
                        self.trunk_registrations
                            .get(id)
                            .map(|r| describe(r.state()))
                    })
                    .collect();
                let _ = reply.send(states);
            }
            Input::HangUp { call } => {
                let _ = self.ua.hangup(now, conclave_sip::ua::CallId(call));
            }
            Input::OfferVideo { call, port } => {
                if let Err(err) = self
                    .ua
                    .offer_video(now, conclave_sip::ua::CallId(call), port)
                {
                    // a re-INVITE of ours under way: the next one (a refresh) offers it
                    tracing::debug!(call, ?err, "video offered with the next re-INVITE");
                }
            }
            Input::Flush { reply } => {
                // answered after this input's drain: everything before it went out
                self.flushed.push(reply);
            }
            Input::Bindings { aors, reply } => {
                let views = aors
                    .iter()
                    .map(|aor| self.registrations.bindings(now, aor))
                    .collect();
                let _ = reply.send(views);
            }
            Input::Unregister { aor } => {
                let removed = self.registrations.remove(&aor);
                if removed > 0 {
                    tracing::info!(
                        aor,
                        removed,
                        "registrations removed: the account is frozen or gone"
                    );
                }
            }
            Input::Looked { pending, user } => {
                let bound =
                    self.registrations
                        .looked_up(now, &mut self.ua, *pending, user.map(|u| *u));
                // A registration now depends on its connection: a longer idle timeout.
                if let Some(c) = bound.and_then(|id| self.connections.get(&id)) {
                    c.out.mark_in_use();
                }
            }
        }
    }

    /// Acts on every event and sends every message the stack has for us.
    async fn drain(&mut self, now: Instant) {
        while let Some(event) = self.ua.poll_event() {
            self.on_event(now, event);
        }
        while let Some(transmit) = self.ua.poll_transmit() {
            self.send(transmit).await;
        }
        for id in std::mem::take(&mut self.closing) {
            self.outbound.remove(&id);
            self.connections.remove(&id);
        }
        metrics::gauge!("conclave_sip_calls").set(self.calls.len() as f64);
        for reply in std::mem::take(&mut self.flushed) {
            let _ = reply.send(());
        }
    }

    fn on_event(&mut self, now: Instant, event: UaEvent) {
        match event {
            UaEvent::Request {
                tx,
                request,
                source,
            } => match request.method {
                Method::Register => {
                    let lookup =
                        self.registrations
                            .on_register(now, &mut self.ua, tx, request, source);
                    if let Some((pending, directory)) = lookup {
                        let inputs = self.inputs_tx.clone();
                        tokio::spawn(async move {
                            let user = registrations::lookup(&directory, &pending)
                                .await
                                .map(Box::new);
                            let _ = inputs
                                .send(Input::Looked {
                                    pending: Box::new(pending),
                                    user,
                                })
                                .await;
                        });
                    }
                }
                Method::Options => self.answer_options(now, tx, &request),
                _ => {
                    let mut response = request.response(
                        405,
                        "Method Not Allowed",
                        Some(&self.ua.endpoint().new_tag()),
                    );
                    response.headers.push(
                        HeaderName::Allow,
                        format!("{}, REGISTER", conclave_sip::ua::ALLOW),
                    );
                    let _ = self.ua.respond(now, tx, response);
                }
            },
            UaEvent::Incoming {
                call,
                request,
                source,
            } => {
                // Out of descriptors' reserve: no new calls (each takes media sockets).
                if !crate::limits::accepting_new_work() {
                    let retry = vec![(HeaderName::RetryAfter, "10".to_owned())];
                    let _ = self.ua.reject(now, call, 503, retry);
                    return;
                }
                crate::limits::note_new_work(2);
                tracing::info!(uri = %request.uri, from = %source.addr, "incoming call");
                let number = request.uri.user.clone().unwrap_or_default();
                let domain = request.uri.host.to_string();
                let caller = request
                    .headers
                    .from()
                    .map(|from| calls::Caller {
                        number: from.uri.user.clone().unwrap_or_default(),
                        name: from
                            .display
                            .clone()
                            .or(from.uri.user.clone())
                            .unwrap_or_default(),
                        ip: Some(source.addr.ip()),
                        role: conclave_conference::Role::Participant,
                        registered_in: from.uri.user.as_deref().map_or_else(Vec::new, |ext| {
                            self.registrations.tenants_of(now, ext, source)
                        }),
                        cascade_token: request
                            .headers
                            .get(&HeaderName::Other(CASCADE_HEADER.to_owned()))
                            .map(str::to_owned),
                        cascade_asked: request.uri.params.get(CASCADE_PARAM).is_some(),
                    })
                    .unwrap_or_default();
                let srtp = if source.transport == Transport::Tls {
                    self.tls_srtp
                } else {
                    self.srtp
                };
                let (meetings, inputs) = (self.meetings.clone(), self.inputs_tx.clone());
                let access = self.access_number.clone();
                tokio::spawn(async move {
                    let admission = if access.as_deref() == Some(number.as_str()) {
                        calls::Admission::Menu { domain }
                    } else {
                        calls::admit(&meetings, &number, &domain, &caller).await
                    };
                    let _ = inputs
                        .send(Input::Admission {
                            call,
                            caller,
                            admission,
                            srtp,
                        })
                        .await;
                });
            }
            UaEvent::Progress { call, status, .. } if status == 180 || status == 183 => {
                self.calls.ringing(call);
            }
            UaEvent::MediaUpdated { call, media } | UaEvent::Answered { call, media } => {
                self.calls.media_changed(call, &media)
            }
            UaEvent::PictureUpdate { call } => self.calls.picture_update(call),
            UaEvent::VideoOffered { call } => self.calls.video_offered(call),
            UaEvent::Dtmf { call, digit, .. } => {
                // Keypad digits in SIP INFO act like RFC 4733 events in the media.
                self.calls.digit(call, digit);
            }
            UaEvent::Ended { call, reason } => {
                tracing::info!(?call, ?reason, "call ended");
                if let Some(ringing) = self.ringing.remove(&call) {
                    // the caller gave up while it rang: the callee's phone stops ringing
                    let meetings = self.meetings.clone();
                    tokio::spawn(async move {
                        meetings
                            .apply(
                                &ringing.room.id,
                                conclave_conference::live::Actor::System,
                                conclave_conference::live::Command::End,
                                crate::meeting::SYSTEM,
                            )
                            .await;
                    });
                }
                self.calls.ended(call, reason);
                if let Some(id) = self.trunk_calls.remove(&call) {
                    // The call's own connection to the gateway goes with it, once what is
                    // still due (our 200 to their BYE) has been queued on it.
                    self.closing.push(id);
                }
            }
            UaEvent::Endpoint(conclave_sip::Event::BadMessage { .. }) => {
                metrics::counter!("conclave_sip_bad_messages_total").increment(1);
            }
            UaEvent::Endpoint(event) => {
                // Answers to our REGISTERs with the trunks' gateways.
                for registration in self.trunk_registrations.values_mut() {
                    if registration.handle_event(now, self.ua.endpoint(), &event) {
                        break;
                    }
                }
            }
            other => tracing::debug!(?other, "SIP event"),
        }
    }

    /// A registered user dialled another's extension: when the callee is registered here, the
    /// caller hears it ring (180) while a meeting of two, in the call's own room, calls the
    /// callee; the caller is answered into it when the callee answers, refused with busy when
    /// the callee cannot be reached. Otherwise 480 (486 when either is in too many calls). In
    /// a cluster a direct call reaches only phones registered on the node the caller reached
    /// (docs/operator.md).
    fn direct_call(
        &mut self,
        now: Instant,
        call: conclave_sip::ua::CallId,
        caller: calls::Caller,
        srtp: SrtpPolicy,
        room: Box<conclave_store::model::Room>,
        direct: crate::meeting::DirectCall,
    ) {
        let aor = registrations::aor(&direct.callee_number, &room.tenant_id);
        if self.registrations.best(now, &aor).is_none() {
            tracing::info!(
                callee = direct.callee_number,
                "a direct call to an unregistered extension"
            );
            let _ = self.ua.reject(now, call, 480, Vec::new());
            return;
        }
        let (answered, verdict) = tokio::sync::oneshot::channel();
        if self
            .meetings
            .start_call(&room, direct.clone(), answered)
            .is_err()
        {
            tracing::info!(
                caller = direct.caller_number,
                callee = direct.callee_number,
                "a direct call refused: too many calls at once"
            );
            let _ = self.ua.reject(now, call, 486, Vec::new());
            return;
        }
        tracing::info!(
            caller = direct.caller_number,
            callee = direct.callee_number,
            "a direct call"
        );
        let _ = self.ua.ring(now, call);
        let (meetings, inputs) = (self.meetings.clone(), self.inputs_tx.clone());
        let invited = (*room).clone();
        self.ringing
            .insert(call, RingingCall { room, caller, srtp });
        tokio::spawn(async move {
            let room_id = invited.id.clone();
            let extension = direct.callee_number;
            let role = conclave_conference::Role::Participant;
            let callee = Callee::Extension(extension.clone());
            if let Some(invitation) = meetings
                .invite(
                    &room_id,
                    direct.callee_name.clone(),
                    extension,
                    role,
                    Some(callee.clone()),
                )
                .await
            {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let input = Input::Invite {
                    room: Box::new(invited),
                    callee,
                    dest: None,
                    invitation: Some(invitation),
                    name: direct.callee_name,
                    role,
                    permit: None,
                    elsewhere: None,
                    reply,
                };
                let placed = match inputs.send(input).await {
                    Ok(()) => answer
                        .await
                        .unwrap_or_else(|_| Err("the SIP service has stopped".to_owned())),
                    Err(_) => Err("the SIP service has stopped".to_owned()),
                };
                if let Err(reason) = placed {
                    meetings.invite_state(
                        &room_id,
                        invitation,
                        crate::meeting::CallState::Failed,
                        Some(reason),
                    );
                }
            }
            // invited or not: from now on the meeting decides
            meetings.dispatched(&room_id);
            // (the callee's ring timeout bounds this; the meeting answers before it ends)
            let answered = tokio::time::timeout(DIRECT_CALL_VERDICT, verdict)
                .await
                .is_ok_and(|v| v.unwrap_or(false));
            let _ = inputs.send(Input::CallAnswered { call, answered }).await;
        });
    }

    /// Dials an extension's best registration, on the flow it registered from (NAT-safe).
    #[allow(clippy::too_many_arguments)]
    fn invite(
        &mut self,
        now: Instant,
        room: conclave_store::model::Room,
        extension: String,
        name: String,
        role: conclave_conference::Role,
        invitation: Option<u32>,
        elsewhere: Option<(String, SocketAddr)>,
    ) -> Result<u64, String> {
        let aor = registrations::aor(&extension, &room.tenant_id);
        let (target, source) = match (self.registrations.best(now, &aor), elsewhere) {
            (Some(binding), _) => (binding.contact.uri.clone(), binding.source),
            // registered on another node of the cluster: the call goes the way its
            // registration came (Kamailio), to its contact
            (None, Some((contact, from))) => (
                conclave_sip::uri::Uri::parse(&contact)
                    .map_err(|e| format!("extension {extension}: bad contact: {e:?}"))?,
                Peer::new(Transport::Udp, from),
            ),
            (None, None) => return Err(format!("extension {extension} is not registered")),
        };
        let local = self.ua_host();
        let from = conclave_sip::NameAddr::parse(&format!(
            "\"{}\" <sip:{}@{}>",
            room.name.replace('"', ""),
            room.number,
            local
        ))
        .map_err(|e| format!("bad caller id: {e:?}"))?;
        let to = conclave_sip::NameAddr::parse(&format!("<sip:{extension}@{local}>"))
            .map_err(|e| format!("bad callee: {e:?}"))?;
        let callee = crate::meeting::Party {
            name,
            number: extension,
            ip: Some(source.addr.ip()),
            role,
        };
        let srtp = if source.transport == Transport::Tls {
            self.tls_srtp
        } else {
            self.srtp
        };
        let dial = |mut media: conclave_sip::offer_answer::LocalMedia| {
            media.srtp_policy = Some(srtp);
            conclave_sip::ua::Dial {
                target,
                dest: source,
                from,
                to,
                media,
                credentials: None,
                headers: Vec::new(),
                ring_timeout: None,
            }
        };
        self.calls
            .dial(
                now,
                &mut self.ua,
                &room,
                callee,
                invitation,
                None,
                true,
                dial,
            )
            .map(|call| call.0)
    }

    /// Calls a phone number through a trunk's gateway, answering its digest challenges with
    /// the trunk's credentials.
    #[allow(clippy::too_many_arguments)]
    fn dial_trunk(
        &mut self,
        now: Instant,
        room: conclave_store::model::Room,
        trunk: &Trunk,
        dest: SocketAddr,
        number: String,
        name: String,
        role: conclave_conference::Role,
        invitation: Option<u32>,
        permit: Option<crate::outbound::Permit>,
    ) -> Result<u64, String> {
        let s = &trunk.settings;
        let transport = sip_transport(s.transport);
        let peer = self.gateway(trunk, transport, dest);
        let param = match transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            _ => ";transport=tls",
        };
        let target =
            conclave_sip::uri::Uri::parse(&format!("sip:{number}@{}:{}{param}", s.host, s.port))
                .map_err(|e| format!("trunk {}: bad number {number:?}: {e:?}", trunk.name))?;
        let presented = s
            .caller_id
            .clone()
            .or_else(|| s.username.clone())
            .unwrap_or_else(|| room.number.clone());
        let from = conclave_sip::NameAddr::parse(&format!(
            "\"{}\" <sip:{presented}@{}>",
            room.name.replace(['"', '\\'], ""),
            s.host
        ))
        .map_err(|e| format!("bad caller id: {e:?}"))?;
        let to = conclave_sip::NameAddr::parse(&format!("<sip:{number}@{}>", s.host))
            .map_err(|e| format!("bad callee: {e:?}"))?;
        let credentials = s.username.clone().zip(trunk.password.clone());
        let ring_timeout = std::time::Duration::from_secs(s.ring_timeout_seconds.into());
        let srtp = srtp_policy(s.srtp);
        let callee = crate::meeting::Party {
            name,
            number: number.clone(),
            ip: Some(dest.ip()),
            role,
        };
        let dial = |mut media: conclave_sip::offer_answer::LocalMedia| {
            media.srtp_policy = Some(srtp);
            conclave_sip::ua::Dial {
                target,
                dest: peer,
                from,
                to,
                media,
                credentials,
                headers: Vec::new(),
                ring_timeout: Some(ring_timeout),
            }
        };
        tracing::info!(trunk = trunk.name, %number, room = room.number, "calling through a trunk");
        let connection = peer.connection;
        let call = self.calls.dial(
            now,
            &mut self.ua,
            &room,
            callee,
            invitation,
            permit,
            false,
            dial,
        )?;
        if let Some(id) = connection {
            self.trunk_calls.insert(call, id);
        }
        Ok(call.0)
    }

    /// A cascade's call to the room's home node (over UDP, like the nodes' calls to each
    /// other), carrying the proof that a node of the cluster places it.
    #[allow(clippy::too_many_arguments)]
    fn dial_node(
        &mut self,
        now: Instant,
        room: conclave_store::model::Room,
        dest: SocketAddr,
        number: String,
        token: String,
        name: String,
        role: conclave_conference::Role,
        invitation: Option<u32>,
    ) -> Result<u64, String> {
        let target = conclave_sip::uri::Uri::parse(&format!("sip:{number}@{dest}"))
            .map_err(|e| format!("bad room number {number:?}: {e:?}"))?;
        let from = conclave_sip::NameAddr::parse(&format!(
            "\"{}\" <sip:cascade@conclave.invalid>",
            name.replace(['"', '\\'], "")
        ))
        .map_err(|e| format!("bad cascade name: {e:?}"))?;
        let to = conclave_sip::NameAddr::parse(&format!("<sip:{number}@{dest}>"))
            .map_err(|e| format!("bad room: {e:?}"))?;
        let callee = crate::meeting::Party {
            name,
            number: number.clone(),
            ip: Some(dest.ip()),
            role,
        };
        let dial = |media: conclave_sip::offer_answer::LocalMedia| conclave_sip::ua::Dial {
            target,
            dest: Peer::new(Transport::Udp, dest),
            from,
            to,
            media,
            credentials: None,
            headers: vec![(HeaderName::Other(CASCADE_HEADER.to_owned()), token)],
            ring_timeout: Some(std::time::Duration::from_secs(10)),
        };
        tracing::info!(room = room.number, home = %dest, "joining the room's home as a cascade");
        let call = self.calls.dial(
            now,
            &mut self.ua,
            &room,
            callee,
            invitation,
            None,
            false,
            dial,
        )?;
        Ok(call.0)
    }

    /// Where a trunk's messages go: over UDP, the gateway's address; over TCP or TLS, a
    /// connection of their own (opened when first used) checked as the trunk says.
    fn gateway(&mut self, trunk: &Trunk, transport: Transport, dest: SocketAddr) -> Peer {
        let mut peer = Peer::new(transport, dest);
        if transport != Transport::Udp {
            let id = transport::next_connection_id();
            let s = &trunk.settings;
            let tls = (transport == Transport::Tls).then(|| (s.host.clone(), s.verify_tls));
            self.outbound.insert(id, tls);
            peer.connection = Some(id);
        }
        peer
    }

    /// Follows a trunk's settings: ends the old registration, starts the new one.
    fn trunk_changed(
        &mut self,
        now: Instant,
        id: String,
        trunk: Option<Box<Trunk>>,
        dest: Option<SocketAddr>,
    ) {
        if let Some(mut old) = self.trunk_registrations.remove(&id)
            && matches!(old.state(), RegistrationState::Registered { .. })
        {
            // Fire and forget: the gateway drops our binding; its answer finds no one.
            let _ = old.unregister(now, self.ua.endpoint());
        }
        let (Some(trunk), Some(dest)) = (trunk, dest) else {
            return;
        };
        let s = &trunk.settings;
        let (Some(username), Some(password)) = (s.username.clone(), trunk.password.clone()) else {
            return;
        };
        if !(s.register && s.enabled) {
            return;
        }
        let transport = sip_transport(s.transport);
        let peer = self.gateway(&trunk, transport, dest);
        let Some(local) = self
            .locals
            .iter()
            .find(|l| l.transport == transport)
            .cloned()
        else {
            return;
        };
        let param = match transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            _ => ";transport=tls",
        };
        let uri = |text: String| conclave_sip::uri::Uri::parse(&text);
        let parsed = (
            uri(format!("sip:{}:{}{param}", s.host, s.port)),
            uri(format!("sip:{username}@{}", s.host)),
            uri(format!(
                "sip:{username}@{}:{}{param}",
                local.host, local.port
            )),
        );
        let (Ok(registrar), Ok(aor), Ok(contact)) = parsed else {
            tracing::warn!(trunk = trunk.name, "cannot build the trunk's registration");
            return;
        };
        let config = RegistrationConfig {
            registrar,
            aor,
            contact,
            dest: peer,
            via_host: local.host.clone(),
            via_port: local.port,
            username,
            password,
            expires: 600,
            retry_after: std::time::Duration::from_secs(30),
        };
        let call_id = format!("{}@conclave", self.ua.endpoint().new_tag());
        let tag = self.ua.endpoint().new_tag();
        let mut registration = Registration::new(config, call_id, tag);
        if let Err(err) = registration.start(now, self.ua.endpoint()) {
            tracing::warn!(?err, trunk = trunk.name, "cannot register with the gateway");
        }
        tracing::info!(trunk = trunk.name, %dest, "registering with the trunk's gateway");
        self.trunk_registrations.insert(id, registration);
    }

    fn ua_host(&self) -> String {
        self.udp
            .local_addr()
            .map(|a| advertised(a, self.public_ip).to_string())
            .unwrap_or_else(|_| "127.0.0.1".into())
    }

    fn answer_options(&mut self, now: Instant, tx: conclave_sip::TxId, request: &Request) {
        let tag = self.ua.endpoint().new_tag();
        // a draining node of a cluster: Kamailio's probes stop sending it new rooms
        let draining = self.meetings.cluster().is_some_and(|c| c.draining());
        let (status, reason) = if draining {
            (503, "Draining")
        } else {
            (200, "OK")
        };
        let mut response = request.response(status, reason, Some(&tag));
        response.headers.push(
            HeaderName::Allow,
            format!("{}, REGISTER", conclave_sip::ua::ALLOW),
        );
        response.headers.push(HeaderName::Accept, "application/sdp");
        let _ = self.ua.respond(now, tx, response);
    }

    async fn send(&mut self, transmit: Transmit) {
        let Transmit { peer, payload } = transmit;
        metrics::counter!("conclave_sip_sent_total", "transport" => peer.transport.as_str())
            .increment(1);
        if peer.transport == Transport::Udp {
            if let Err(err) = self.udp.send_to(&payload, peer.addr).await {
                tracing::debug!(%err, to = %peer.addr, "UDP send failed");
            }
            return;
        }
        let connection = match peer.connection {
            Some(id) => self.connections.get(&id),
            None => self
                .connections
                .values()
                .find(|c| c.addr == peer.addr && c.transport == peer.transport),
        };
        match connection {
            Some(c) => {
                if !c.out.push(payload) {
                    // Its peer does not read: the connection is closing; forget it now.
                    tracing::info!(to = %peer.addr, "write queue full; closing the connection");
                    let stale: Vec<u64> = self
                        .connections
                        .iter()
                        .filter(|(_, c)| c.addr == peer.addr && c.transport == peer.transport)
                        .map(|(id, _)| *id)
                        .filter(|id| peer.connection.is_none_or(|p| p == *id))
                        .collect();
                    for id in stale {
                        self.connections.remove(&id);
                    }
                }
            }
            // A flow a phone opened and closed cannot be reopened (RFC 5626); one to a
            // gateway is ours to open.
            None if peer
                .connection
                .is_some_and(|id| self.outbound.contains_key(&id)) =>
            {
                self.connect(peer, payload)
            }
            None => tracing::debug!(to = %peer.addr, "no open connection to send on"),
        }
    }

    /// Opens a TCP or TLS connection to a gateway; `first` waits in its queue until it is up.
    fn connect(&mut self, peer: Peer, first: Vec<u8>) {
        let Some(id) = peer.connection else {
            return;
        };
        let tls = if peer.transport == Transport::Tls {
            let (name, verify) = self
                .outbound
                .get(&id)
                .cloned()
                .flatten()
                .unwrap_or_else(|| (peer.addr.ip().to_string(), true));
            let config = if verify {
                self.tls_clients.verified.clone()
            } else {
                self.tls_clients.unverified.clone()
            };
            match rustls::pki_types::ServerName::try_from(name.clone()) {
                Ok(server) => Some((tokio_rustls::TlsConnector::from(config), server)),
                Err(err) => {
                    tracing::warn!(%err, name, "not a TLS server name");
                    return;
                }
            }
        } else {
            None
        };
        let (out, queue) = transport::Outbox::new();
        out.push(first);
        self.connections.insert(
            id,
            Connection {
                addr: peer.addr,
                transport: peer.transport,
                out: out.clone(),
            },
        );
        tokio::spawn(transport::connect(
            peer,
            tls,
            out,
            queue,
            self.inputs_tx.clone(),
        ));
    }
}
