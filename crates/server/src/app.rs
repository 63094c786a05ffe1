//! Start-up: open the store, create the first administrator, bind the HTTP listener.

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::credentials;
use anyhow::{Context, Result};
use conclave_store::model::{AccountKind, Tenant, User, UserStatus};
use conclave_store::{Store, new_id, now_ms, repo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A started server: its address, and a handle to stop it.
pub struct Running {
    pub http_addr: SocketAddr,
    pub sip: crate::sip::SipService,
    pub store: Store,
    pub meetings: crate::meeting::Meetings,
    media: crate::media::MediaPlane,
    webhooks: crate::webhooks::Webhooks,
    /// Starts scheduled meetings at their time.
    starter: JoinHandle<()>,
    mailer: JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Ends every meeting (callers get a BYE, history is closed), stops accepting, lets
    /// requests in flight finish, and closes the database.
    pub async fn stop(mut self) -> Result<()> {
        // No scheduled meeting starts while the server stops.
        self.starter.abort();
        self.mailer.abort();
        self.meetings.shutdown(Duration::from_secs(10)).await;
        if let Some(minutes) = self.meetings.minutes() {
            minutes.stop();
        }
        // What the meetings asked of SIP (their BYEs) goes out before SIP stops.
        self.sip.handle.flush(Duration::from_secs(2)).await;
        // The last events (the meetings' ends) are stored for their webhooks.
        self.webhooks
            .flush(&self.meetings, Duration::from_secs(5))
            .await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.sip.stop();
        self.media.stop();
        (&mut self.task).await.context("HTTP server task")??;
        self.store.close().await;
        Ok(())
    }
}

/// Starts everything and returns once the server accepts requests.
pub async fn start(mut settings: Settings) -> Result<Running> {
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("data_dir: cannot create {}", settings.data_dir.display()))?;
    }
    conclave_store::make_private(&settings.data_dir, 0o700).context("data_dir")?;
    crate::telemetry::metrics();
    crate::limits::raise_descriptor_limit();
    // One TLS provider for the whole process (webhooks' HTTPS client, SIP over TLS).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = Store::open(&settings.database_url)
        .await
        .context("database_url")?;
    bootstrap(&store, &settings).await?;
    crate::history::close_abandoned(&store)
        .await
        .context("closing meetings left open by an unclean stop")?;
    let recordings = crate::recording::Recordings::open(
        store.clone(),
        &settings.data_dir,
        settings.recording_key_file.as_deref(),
        settings.recording_store.as_deref(),
    )?;
    recordings
        .recover()
        .await
        .context("closing recordings left open by an unclean stop")?;
    crate::streaming::end_abandoned(&store)
        .await
        .context("ending streams left live by an unclean stop")?;
    tokio::task::spawn_blocking(crate::prompts::preload)
        .await
        .context("decoding the voice prompts")?;
    let bind_ip = settings.sip_udp.ip();
    let public_ip = settings.public_address.unwrap_or_else(|| {
        if bind_ip.is_unspecified() {
            crate::media::io::outbound_ip(bind_ip.is_ipv6()).unwrap_or(if bind_ip.is_ipv6() {
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            } else {
                std::net::IpAddr::from([127, 0, 0, 1])
            })
        } else {
            bind_ip
        }
    });
    settings.public_address = Some(public_ip);
    let workers = match settings.media_workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let media = crate::media::MediaPlane::start(crate::media::MediaSettings {
        workers,
        pack_members: settings.media_pack_members,
        bind_ip,
        public_ip,
        ports: settings.media_ports,
        port_min: settings.media_port_min,
        port_max: settings.media_port_max,
        tcp_listen: settings.media_tcp_listen,
    })
    .context("media_port_min/max: cannot open the media ports")?;
    let media = match settings.media_tcp_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("media_tcp_listen: cannot listen on {addr}"))?;
            media.with_tcp(listener).context("media_tcp_listen")?
        }
        None => media,
    };
    let meetings = crate::meeting::Meetings::new(
        media.clone(),
        store.clone(),
        crate::meeting::MeetingSettings {
            media_timeout: Duration::from_secs(settings.media_timeout_seconds.into()),
            hold_timeout: Duration::from_secs(settings.hold_timeout_seconds.into()),
            pin_timeout: Duration::from_secs(settings.pin_timeout_seconds.into()),
            waiting_per_address: settings.waiting_per_address as usize,
            waiting_total: settings.waiting_total as usize,
            access_language: settings.access_language,
        },
    );
    meetings.set_recordings(recordings.clone());
    meetings.set_minutes(
        crate::minutes::Minutes::start(store.clone(), recordings.clone(), &settings)
            .await
            .context("starting the minutes")?,
    );
    {
        // hourly, even without a server-wide rule: tenants may have their own
        let days = settings.recording_retention_days;
        tokio::spawn(async move {
            let mut hourly = tokio::time::interval(Duration::from_secs(3600));
            loop {
                hourly.tick().await;
                if let Err(err) = recordings.purge(days).await {
                    tracing::warn!(
                        err = format!("{err:#}"),
                        "recordings' retention pass failed"
                    );
                }
            }
        });
    }
    let sealer =
        Arc::new(crate::secrets::Sealer::load_or_create(&settings.data_dir).context("data_dir")?);
    seal_sip_digests(&store, &sealer).await?;
    let webhooks = crate::webhooks::Webhooks::start(
        store.clone(),
        sealer.clone(),
        &meetings,
        settings.webhooks_allow_private_targets,
    );
    // in a cluster, every room is claimed before a meeting starts: the cluster is there
    // before the first call
    let cluster = match &settings.cluster {
        Some(cluster_settings) => {
            let sip_uri = match (&cluster_settings.sip_uri, settings.sip_udp.port()) {
                (Some(uri), _) => uri.clone(),
                (None, 0) => anyhow::bail!(
                    "node_sip_uri: needed when the SIP UDP port is chosen by the system"
                ),
                (None, port) => format!("sip:{}", SocketAddr::new(public_ip, port)),
            };
            let cluster = crate::cluster::Cluster::join(
                cluster_settings,
                store.clone(),
                sip_uri,
                format!("http://{}", settings.http_listen),
            )
            .await?;
            meetings.set_cluster(cluster.clone());
            Some(cluster)
        }
        None => None,
    };
    let sip = crate::sip::start(&settings, store.clone(), meetings.clone(), sealer.clone()).await?;

    let listener = tokio::net::TcpListener::bind(settings.http_listen)
        .await
        .with_context(|| format!("http_listen: cannot listen on {}", settings.http_listen))?;
    let http_addr = listener.local_addr()?;
    let listener_limits = settings.listener_limits;
    let state = AppState::new(
        store.clone(),
        sip.handle.clone(),
        meetings.clone(),
        Arc::new(settings),
        sealer,
    );
    let starter = tokio::spawn(crate::scheduling::starter::run(state.clone()));
    let mailer = tokio::spawn(crate::scheduling::mail::run(state.clone()));
    let app = api::router(state.clone());
    if let Some(cluster) = &cluster {
        cluster.run(state, app.clone());
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::http::serve(listener, app, listener_limits, async {
        let _ = stopped.await;
    }));
    tracing::info!(%http_addr, "HTTP API listening");
    Ok(Running {
        http_addr,
        sip,
        store,
        meetings,
        media,
        webhooks,
        starter,
        mailer,
        stop: Some(stop),
        task,
    })
}

/// `conclave serve`: start, then run until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> Result<()> {
    let running = start(settings).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// SIP digests stored in clear (before they were sealed) are sealed now, once: an HA1
/// registers as its user, so a copy of the database alone must not give it away.
pub async fn seal_sip_digests(store: &Store, sealer: &crate::secrets::Sealer) -> Result<()> {
    use crate::secrets::Sealer;
    let mut tx = store.begin().await?;
    let mut sealed = 0;
    for (id, md5, sha256) in repo::users::sip_digests(&mut tx).await? {
        let clear = |v: &Option<String>| v.as_deref().is_some_and(|v| !Sealer::is_sealed(v));
        if !(clear(&md5) || clear(&sha256)) {
            continue;
        }
        let seal = |v: Option<String>| {
            v.map(|v| {
                if Sealer::is_sealed(&v) {
                    v
                } else {
                    sealer.seal(&v)
                }
            })
        };
        let (md5, sha256) = (seal(md5), seal(sha256));
        repo::users::set_sip_digests(&mut tx, &id, md5.as_deref(), sha256.as_deref()).await?;
        sealed += 1;
    }
    tx.commit().await?;
    if sealed > 0 {
        tracing::info!(users = sealed, "sealed SIP digests stored in clear");
    }
    Ok(())
}

/// On the very first start: a default tenant and the system administrator `admin`.
async fn bootstrap(store: &Store, settings: &Settings) -> Result<()> {
    let mut tx = store.begin().await?;
    if repo::users::count(&mut tx).await? > 0 {
        return Ok(());
    }
    let now = now_ms();
    let tenant = Tenant {
        id: new_id(),
        name: "default".into(),
        sip_domain: None,
        sip_sha256_only: false,
        branding: serde_json::json!({}),
        recording_retention_days: None,
        created_at: now,
        updated_at: now,
    };
    repo::tenants::insert(&mut tx, &tenant).await?;
    let (password, generated) = match &settings.admin_password {
        Some(p) => (p.clone(), false),
        None => (credentials::new_password(), true),
    };
    let admin = User {
        id: new_id(),
        tenant_id: tenant.id.clone(),
        username: "admin".into(),
        display_name: "Administrator".into(),
        password_hash: credentials::hash_password_blocking(password.clone()).await?,
        email: None,
        mobile: None,
        landline: None,
        extension: None,
        department_id: None,
        title: String::new(),
        sip_ha1_md5: None,
        sip_ha1_sha256: None,
        sip_password_set: false,
        language: None,
        kind: AccountKind::SystemAdmin,
        status: UserStatus::Active,
        created_at: now,
        updated_at: now,
    };
    repo::users::insert(&mut tx, &admin).await?;
    tx.commit().await?;
    if generated {
        // Printed once, on the console, never logged to a file or stored in clear.
        println!(
            "\n  Conclave created the administrator.\n  username: admin\n  password: {password}\n  \
             (shown only this once; set CONCLAVE_ADMIN_PASSWORD to choose it)\n"
        );
    }
    tracing::info!("created the default tenant and the administrator account 'admin'");
    Ok(())
}
