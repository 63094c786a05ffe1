//! REGISTER: digest authentication against the users' extensions (HA1 digests from the
//! store), the failed-attempt limiter, and the registrar's bindings.
//!
//! A nonce is issued for one flow and one address of record (its MAC covers the transport,
//! the source address and port, the connection and the To URI), so a captured
//! `Authorization` replayed from anywhere else is simply challenged again; within the flow,
//! each nonce's `nc` must go up. A correct response with an expired or replayed nonce is
//! answered `stale=true` (the phone retries at once without asking its user); a wrong one
//! counts against the extension and the address (`crate::limiter`).

use crate::limiter::{Limiter, Permit, Target};
use crate::secrets::Sealer;
use conclave_sip::TxId;
use conclave_sip::auth::{Algorithm, AuthError, DigestCredentials, DigestServer, NonceCounts};
use conclave_sip::message::{HeaderName, Request};
use conclave_sip::registrar::Registrar;
use conclave_sip::transaction::Peer;
use conclave_sip::ua::UserAgent;
use conclave_store::model::{User, UserStatus};
use conclave_store::{Store, repo};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A REGISTER whose credentials wait for the directory.
pub struct Pending {
    tx: TxId,
    request: Request,
    source: Peer,
    credentials: DigestCredentials,
    extension: String,
    domain: String,
    /// The attempt's slot in the limiter, settled once the response is checked.
    permit: Permit,
    /// The nonce's issue time, and whether it has expired (then a right answer is stale).
    issued: u64,
    expired: bool,
}

/// A refusal to send: which transaction, the request, the status and its reason phrase.
struct Refusal<'a> {
    tx: TxId,
    request: &'a Request,
    status: u16,
    reason: &'a str,
}

pub struct Registrations {
    digest: DigestServer,
    registrar: Registrar,
    limiter: Arc<Limiter>,
    /// The highest `nc` seen per nonce (replays are stale).
    counts: NonceCounts,
    directory: Directory,
    /// SIP domains of tenants that use SHA-256 digest only (kept current by the tenants API).
    sha256_only: Arc<RwLock<HashSet<String>>>,
}

/// What a nonce is issued for: this flow and this address of record.
fn nonce_scope(source: &Peer, request: &Request) -> String {
    let to = request
        .headers
        .to()
        .map(|to| {
            format!(
                "{}@{}",
                to.uri.user.as_deref().unwrap_or(""),
                to.uri.host.to_string().to_ascii_lowercase()
            )
        })
        .unwrap_or_default();
    let connection = source
        .connection
        .map_or_else(|| "-".to_owned(), |c| c.to_string());
    format!(
        "{}|{}|{connection}|{to}",
        source.transport.as_str(),
        source.addr
    )
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a REGISTER's lookup needs: the store, and the key that opens the sealed digests.
#[derive(Clone)]
pub struct Directory {
    pub store: Store,
    pub sealer: Arc<Sealer>,
}

/// The tenant's user with this extension: by the request's domain when a tenant claims it,
/// otherwise the one user on the installation with that extension; its digests unsealed (an
/// MD5 one is dropped for a SHA-256-only tenant).
pub async fn lookup(directory: &Directory, pending: &Pending) -> Option<User> {
    let mut conn = directory.store.conn().await.ok()?;
    let mut user = match repo::tenants::get_by_sip_domain(&mut conn, &pending.domain).await {
        Ok(Some(tenant)) => {
            let user = repo::users::get_by_extension(&mut conn, &tenant.id, &pending.extension)
                .await
                .ok()
                .flatten();
            user.map(|mut u| {
                if tenant.sip_sha256_only {
                    u.sip_ha1_md5 = None;
                }
                u
            })
        }
        Ok(None) => {
            let mut users = repo::users::find_by_extension(&mut conn, &pending.extension)
                .await
                .ok()?;
            (users.len() == 1).then(|| users.remove(0))
        }
        Err(err) => {
            tracing::warn!(%err, "directory lookup failed");
            None
        }
    }?;
    let open = |v: Option<String>| v.and_then(|v| directory.sealer.open(&v));
    user.sip_ha1_md5 = open(user.sip_ha1_md5.take());
    user.sip_ha1_sha256 = open(user.sip_ha1_sha256.take());
    Some(user)
}

/// The address of record of an extension: extensions are unique per tenant.
pub fn aor(extension: &str, tenant_id: &str) -> String {
    format!("sip:{extension}@{tenant_id}")
}

impl Registrations {
    /// Where to reach an address of record now: its best live binding.
    pub fn best(&self, now: Instant, aor: &str) -> Option<conclave_sip::registrar::Binding> {
        self.registrar
            .lookup(now, aor)
            .first()
            .map(|b| (*b).clone())
    }

    /// The tenants in which `extension` is registered from exactly this flow (transport,
    /// address and port, and for TCP/TLS the same connection): a call on that flow with that
    /// extension in From is that user (as PBXes trust their registrations). The same IP
    /// address is not enough: a NAT shares it, and so would a replayed registration.
    pub fn tenants_of(&self, now: Instant, extension: &str, from: Peer) -> Vec<String> {
        let prefix = format!("sip:{extension}@");
        self.registrar
            .registered_from(now, &prefix, from)
            .into_iter()
            .filter_map(|aor| aor.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    /// Drops every binding of an address of record at once (a frozen or deleted account):
    /// calls to it find nobody, and calls on its flows are nobody's. How many there were.
    pub fn remove(&mut self, aor: &str) -> usize {
        self.registrar.remove(aor)
    }

    /// The live bindings of an address of record.
    pub fn bindings(&self, now: Instant, aor: &str) -> Vec<super::BindingView> {
        self.registrar
            .lookup(now, aor)
            .into_iter()
            .map(|b| super::BindingView {
                contact: b.contact.to_string(),
                source: b.source.addr.to_string(),
                transport: b.source.transport.as_str().to_owned(),
                expires_in: b.remaining(now),
                user_agent: b.user_agent.clone(),
            })
            .collect()
    }

    pub fn new(
        digest: DigestServer,
        registrar: Registrar,
        limiter: Arc<Limiter>,
        directory: Directory,
        sha256_only: Arc<RwLock<HashSet<String>>>,
    ) -> Self {
        Registrations {
            digest,
            registrar,
            limiter,
            counts: NonceCounts::new(MAX_NONCES),
            directory,
            sha256_only,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.registrar.next_expiry()
    }

    pub fn handle_timeout(&mut self, now: Instant, _ua: &mut UserAgent) {
        for (aor, binding) in self.registrar.expire(now) {
            tracing::debug!(aor, contact = %binding.contact, "registration expired");
        }
        self.counts.purge(unix_secs(), self.digest.nonce_lifetime);
    }

    /// A 401 whose nonce is good only for this flow and address of record.
    fn challenge(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        tx: TxId,
        request: &Request,
        source: &Peer,
        stale: bool,
    ) {
        let mut response = request.response(401, "Unauthorized", Some(&ua.endpoint().new_tag()));
        let scope = nonce_scope(source, request);
        let algorithms = self.algorithms_for(request);
        for value in self
            .digest
            .challenges_for(unix_secs(), stale, &scope, &algorithms)
        {
            response.headers.push(HeaderName::WwwAuthenticate, value);
        }
        let _ = ua.respond(now, tx, response);
    }

    /// The algorithms to challenge with: SHA-256 alone for a SHA-256-only tenant's domain.
    fn algorithms_for(&self, request: &Request) -> Vec<Algorithm> {
        let domain = request
            .headers
            .to()
            .map(|to| to.uri.host.to_string().to_ascii_lowercase())
            .unwrap_or_default();
        let strict = self
            .sha256_only
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&domain);
        if strict {
            vec![Algorithm::Sha256]
        } else {
            self.digest.algorithms.clone()
        }
    }

    fn refuse(&mut self, now: Instant, ua: &mut UserAgent, p: Refusal<'_>) {
        let response = p
            .request
            .response(p.status, p.reason, Some(&ua.endpoint().new_tag()));
        let _ = ua.respond(now, p.tx, response);
    }

    fn blocked(&mut self, now: Instant, ua: &mut UserAgent, tx: TxId, request: &Request) {
        metrics::counter!("conclave_sip_register_total", "outcome" => "blocked").increment(1);
        self.refuse(
            now,
            ua,
            Refusal {
                tx,
                request,
                status: 403,
                reason: "Forbidden - too many failed attempts",
            },
        );
    }

    /// A REGISTER arrived: challenge it, refuse it, or return what to look up.
    pub fn on_register(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        tx: TxId,
        request: Request,
        source: Peer,
    ) -> Option<(Pending, Directory)> {
        if self.limiter.source_blocked(source.addr.ip()).is_some() {
            self.blocked(now, ua, tx, &request);
            return None;
        }
        let Some((extension, domain)) = request
            .headers
            .to()
            .ok()
            .and_then(|to| Some((to.uri.user.clone()?, to.uri.host.to_string())))
        else {
            self.refuse(
                now,
                ua,
                Refusal {
                    tx,
                    request: &request,
                    status: 400,
                    reason: "Bad Request - To has no user",
                },
            );
            return None;
        };
        let credentials = match request.headers.authorization(&HeaderName::Authorization) {
            Ok(None) => {
                self.challenge(now, ua, tx, &request, &source, false);
                return None;
            }
            Ok(Some(params)) => DigestCredentials::parse(&params),
            Err(_) => Err(AuthError::Malformed),
        };
        let credentials = match credentials {
            Ok(c) => c,
            Err(AuthError::Unsupported) => {
                self.challenge(now, ua, tx, &request, &source, false);
                return None;
            }
            Err(_) => {
                self.refuse(
                    now,
                    ua,
                    Refusal {
                        tx,
                        request: &request,
                        status: 400,
                        reason: "Bad Request - malformed Authorization",
                    },
                );
                return None;
            }
        };
        // A nonce we did not issue to this flow for this AOR (a replay from elsewhere, another
        // realm, a forgery): a fresh challenge; no password was tested, nothing is counted.
        let scope = nonce_scope(&source, &request);
        let unix = unix_secs();
        let issued = match self.digest.nonce_time(&credentials.nonce, &scope) {
            Ok(issued) if credentials.realm == self.digest.realm => issued,
            _ => {
                metrics::counter!("conclave_sip_register_total", "outcome" => "foreign_nonce")
                    .increment(1);
                self.challenge(now, ua, tx, &request, &source, false);
                return None;
            }
        };
        let expired = self
            .digest
            .check_nonce_for(&credentials.nonce, unix, &scope)
            == Err(AuthError::Stale);
        if credentials.username != extension {
            self.refuse(
                now,
                ua,
                Refusal {
                    tx,
                    request: &request,
                    status: 403,
                    reason: "Forbidden - credentials are not for this extension",
                },
            );
            return None;
        }
        // The attempt takes its slot before the response is checked.
        let target = Target::Extension(format!("{extension}@{}", domain.to_ascii_lowercase()));
        let permit = match self.limiter.attempt(target, source.addr.ip()) {
            Ok(permit) => permit,
            Err(_) => {
                self.blocked(now, ua, tx, &request);
                return None;
            }
        };
        let pending = Pending {
            tx,
            request,
            source,
            credentials,
            extension,
            domain,
            permit,
            issued,
            expired,
        };
        Some((pending, self.directory.clone()))
    }

    /// The directory answered: verify, then bind. Returns the connection the binding rides
    /// on, when it is bound over TCP or TLS.
    pub fn looked_up(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        p: Pending,
        user: Option<User>,
    ) -> Option<u64> {
        let ha1 = user.as_ref().and_then(|u| match p.credentials.algorithm {
            Algorithm::Md5 => u.sip_ha1_md5.clone(),
            Algorithm::Sha256 => u.sip_ha1_sha256.clone(),
        });
        // An answer in an algorithm we keep no digest for (MD5 for a SHA-256-only tenant)
        // tests nothing: a fresh challenge in the algorithms the domain allows.
        if ha1.is_none()
            && user
                .as_ref()
                .is_some_and(|u| u.sip_ha1_md5.is_some() || u.sip_ha1_sha256.is_some())
        {
            p.permit.not_checked();
            self.challenge(now, ua, p.tx, &p.request, &p.source, false);
            return None;
        }
        let right = ha1.as_ref().is_some_and(|ha1| {
            self.digest
                .verify_response(&p.credentials, "REGISTER", ha1)
                .is_ok()
        });
        // A frozen account is answered as a wrong password (and counted as one): a 403 for
        // the right one would confirm a guess.
        let Some(user) = user.filter(|u| right && u.status != UserStatus::Frozen) else {
            if right {
                metrics::counter!("conclave_sip_register_total", "outcome" => "frozen")
                    .increment(1);
            }
            p.permit.failed();
            metrics::counter!("conclave_sip_register_total", "outcome" => "denied").increment(1);
            tracing::info!(extension = p.extension, from = %p.source.addr, "SIP authentication failed");
            self.challenge(now, ua, p.tx, &p.request, &p.source, false);
            return None;
        };
        p.permit.succeeded();
        // The right answer to an old nonce, or a count already used: a replay, or a phone
        // that reuses nonces — either way, a fresh nonce (stale=true: no password prompt).
        let unix = unix_secs();
        let fresh = !p.expired
            && self
                .counts
                .accept(
                    &p.credentials.nonce,
                    p.credentials.nc.as_deref(),
                    p.issued,
                    unix,
                    self.digest.nonce_lifetime,
                )
                .is_ok();
        if !fresh {
            metrics::counter!("conclave_sip_register_total", "outcome" => "stale").increment(1);
            self.challenge(now, ua, p.tx, &p.request, &p.source, true);
            return None;
        }
        let aor = aor(&p.extension, &user.tenant_id);
        let tag = ua.endpoint().new_tag();
        let (response, bound) = match self.registrar.register(now, &aor, &p.request, p.source) {
            Ok(_) => {
                metrics::counter!("conclave_sip_register_total", "outcome" => "ok").increment(1);
                let ok = self.registrar.ok_response(now, &aor, &p.request, &tag);
                (ok, p.source.connection)
            }
            Err(err) => (err.response(&p.request, &tag), None),
        };
        let _ = ua.respond(now, p.tx, response);
        bound
    }
}

/// Most nonces whose counts are tracked at once (about 100 bytes each).
const MAX_NONCES: usize = 100_000;
