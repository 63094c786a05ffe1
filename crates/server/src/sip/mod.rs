//! The SIP side of the runtime: listeners on UDP, TCP and TLS, and one task that owns the
//! sans-IO stack (`conclave-sip`): it feeds it bytes and time, sends what it emits, and acts
//! on its events — registrations against the users' extensions, OPTIONS keep-alives, calls.

mod calls;
mod registrations;
mod tls;
mod transport;

use crate::config::Settings;
use anyhow::{Context, Result};
use conclave_sip::headers::Transport;
use conclave_sip::message::{HeaderName, Message, Method, Request};
use conclave_sip::registrar::{AuthLimiter, AuthLimiterConfig, Registrar, RegistrarConfig};
use conclave_sip::ua::{LocalAddress, UaConfig, UaEvent, UserAgent};
use conclave_sip::uri::Host;
use conclave_sip::{Peer, Transmit};
use conclave_store::Store;
use conclave_store::model::User;
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
        out: mpsc::UnboundedSender<Vec<u8>>,
    },
    Closed {
        id: u64,
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
    },
    /// Call a registered extension into a room.
    Invite {
        room: Box<conclave_store::model::Room>,
        extension: String,
        name: String,
        role: conclave_conference::Role,
        reply: tokio::sync::oneshot::Sender<Result<u64, String>>,
    },
    /// End a call (a chair removed the caller, the meeting ended).
    HangUp {
        call: u64,
    },
    /// Who is registered (for the API).
    Bindings {
        aors: Vec<String>,
        reply: tokio::sync::oneshot::Sender<Vec<Vec<BindingView>>>,
    },
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

impl crate::live::CallControl for SipHandle {
    fn hang_up(&self, call: u64) {
        if self.inputs.try_send(Input::HangUp { call }).is_err() {
            tracing::warn!(call, "cannot hang up: the SIP task is busy or gone");
        }
    }
}

/// Talks to the SIP task from elsewhere (the HTTP API): cheap to clone.
#[derive(Clone)]
pub struct SipHandle {
    inputs: mpsc::Sender<Input>,
}

impl SipHandle {
    /// Calls a registered extension into a room; the call id, or why it could not be placed.
    pub async fn invite(
        &self,
        room: conclave_store::model::Room,
        extension: String,
        name: String,
        role: conclave_conference::Role,
    ) -> Result<u64, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let input = Input::Invite {
            room: Box::new(room),
            extension,
            name,
            role,
            reply,
        };
        self.inputs
            .send(input)
            .await
            .map_err(|_| "the SIP service has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the SIP service has stopped".to_owned())?
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

/// The address phones should reach us at (Via, Contact): the listening address, or loopback
/// when listening on every interface.
fn media_ip(addr: SocketAddr) -> IpAddr {
    if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    }
}

fn advertised(addr: SocketAddr) -> Host {
    if addr.ip().is_unspecified() {
        Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
    } else {
        Host::Ip(addr.ip())
    }
}

pub async fn start(
    settings: &Settings,
    store: Store,
    media: crate::media::MediaHandle,
    conferences: crate::live::Conferences,
) -> Result<SipService> {
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
                host: advertised(udp_addr),
                port: udp_addr.port(),
            },
            LocalAddress {
                transport: Transport::Tcp,
                host: advertised(tcp_addr),
                port: tcp_addr.port(),
            },
            LocalAddress {
                transport: Transport::Tls,
                host: advertised(tls_addr),
                port: tls_addr.port(),
            },
        ],
        ..UaConfig::default()
    };
    let store_for_calls = store.clone();
    let seed = rand::random::<u64>();
    let secret: [u8; 32] = rand::random();
    let udp = Arc::new(udp);
    let (inputs_tx, inputs) = mpsc::channel(4096);
    let handle = SipHandle {
        inputs: inputs_tx.clone(),
    };
    let core = Core {
        ua: UserAgent::new(ua_config, seed),
        registrations: registrations::Registrations::new(
            &secret,
            &settings.sip_realm,
            settings.sip_sha256_first,
            Registrar::new(RegistrarConfig::default()),
            AuthLimiter::new(AuthLimiterConfig::default()),
            store,
        ),
        calls: calls::Calls::new(
            media,
            conferences.clone(),
            Arc::new(handle.clone()),
            media_ip(udp_addr),
        ),
        conferences,
        store: store_for_calls,
        udp: udp.clone(),
        connections: HashMap::new(),
        inputs_tx: inputs_tx.clone(),
    };
    let tasks = vec![
        tokio::spawn(core.run(inputs)),
        tokio::spawn(transport::udp_loop(udp, inputs_tx.clone())),
        tokio::spawn(transport::tcp_accept(tcp, None, inputs_tx.clone())),
        tokio::spawn(transport::tcp_accept(
            tls_listener,
            Some(tokio_rustls::TlsAcceptor::from(tls_config)),
            inputs_tx,
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

struct Connection {
    addr: SocketAddr,
    transport: Transport,
    out: mpsc::UnboundedSender<Vec<u8>>,
}

/// The SIP task's state: the stack and what it needs to talk to the world.
struct Core {
    ua: UserAgent,
    calls: calls::Calls,
    conferences: crate::live::Conferences,
    store: Store,
    registrations: registrations::Registrations,
    udp: Arc<UdpSocket>,
    connections: HashMap<u64, Connection>,
    inputs_tx: mpsc::Sender<Input>,
}

impl Core {
    async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        loop {
            let deadline = [self.ua.poll_timeout(), self.registrations.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            let input = match deadline {
                Some(at) => tokio::select! {
                    input = inputs.recv() => input,
                    _ = tokio::time::sleep_until(at.into()) => {
                        let now = Instant::now();
                        self.ua.handle_timeout(now);
                        self.registrations.handle_timeout(now, &mut self.ua);
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
                self.connections.remove(&id);
            }
            Input::Admission {
                call,
                caller,
                admission,
            } => {
                self.calls
                    .admitted(now, &mut self.ua, call, caller, admission);
            }
            Input::Invite {
                room,
                extension,
                name,
                role,
                reply,
            } => {
                let _ = reply.send(self.invite(now, *room, extension, name, role));
            }
            Input::HangUp { call } => {
                let _ = self.ua.hangup(now, conclave_sip::ua::CallId(call));
            }
            Input::Bindings { aors, reply } => {
                let views = aors
                    .iter()
                    .map(|aor| self.registrations.bindings(now, aor))
                    .collect();
                let _ = reply.send(views);
            }
            Input::Looked { pending, user } => {
                self.registrations
                    .looked_up(now, &mut self.ua, *pending, user.map(|u| *u));
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
                    if let Some((pending, store)) = lookup {
                        let inputs = self.inputs_tx.clone();
                        tokio::spawn(async move {
                            let user = registrations::lookup(&store, &pending).await.map(Box::new);
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
                    })
                    .unwrap_or_default();
                let source_ip = source.addr.ip();
                let (store, conferences, inputs) = (
                    self.store.clone(),
                    self.conferences.clone(),
                    self.inputs_tx.clone(),
                );
                tokio::spawn(async move {
                    let admission =
                        calls::admit(&store, &conferences, &number, &domain, source_ip).await;
                    let _ = inputs
                        .send(Input::Admission {
                            call,
                            caller,
                            admission,
                        })
                        .await;
                });
            }
            UaEvent::MediaUpdated { call, media } | UaEvent::Answered { call, media } => {
                self.calls.media_changed(call, &media)
            }
            UaEvent::Ended { call, reason } => {
                tracing::info!(?call, ?reason, "call ended");
                self.calls.ended(call);
            }
            UaEvent::Endpoint(conclave_sip::Event::BadMessage { .. }) => {
                metrics::counter!("conclave_sip_bad_messages_total").increment(1);
            }
            other => tracing::debug!(?other, "SIP event"),
        }
    }

    /// Dials an extension's best registration, on the flow it registered from (NAT-safe).
    fn invite(
        &mut self,
        now: Instant,
        room: conclave_store::model::Room,
        extension: String,
        name: String,
        role: conclave_conference::Role,
    ) -> Result<u64, String> {
        let aor = registrations::aor(&extension, &room.tenant_id);
        let binding = self
            .registrations
            .best(now, &aor)
            .ok_or_else(|| format!("extension {extension} is not registered"))?;
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
        let callee = calls::Caller {
            name,
            number: extension,
            ip: Some(binding.source.addr.ip()),
            role,
        };
        let dial = |media| conclave_sip::ua::Dial {
            target: binding.contact.uri.clone(),
            dest: binding.source,
            from,
            to,
            media,
            credentials: None,
            headers: Vec::new(),
        };
        self.calls
            .dial(now, &mut self.ua, room, callee, dial)
            .map(|call| call.0)
    }

    fn ua_host(&self) -> String {
        self.udp
            .local_addr()
            .map(|a| media_ip(a).to_string())
            .unwrap_or_else(|_| "127.0.0.1".into())
    }

    fn answer_options(&mut self, now: Instant, tx: conclave_sip::TxId, request: &Request) {
        let tag = self.ua.endpoint().new_tag();
        let mut response = request.response(200, "OK", Some(&tag));
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
                let _ = c.out.send(payload);
            }
            None => tracing::debug!(to = %peer.addr, "no open connection to send on"),
        }
    }
}
