//! REGISTER: digest authentication against the users' extensions (HA1 digests from the
//! store), the failed-attempt limiter, and the registrar's bindings.

use conclave_sip::TxId;
use conclave_sip::auth::{Algorithm, AuthError, DigestCredentials, DigestServer};
use conclave_sip::message::{HeaderName, Request, Response};
use conclave_sip::registrar::{AuthLimiter, Registrar, Verdict};
use conclave_sip::transaction::Peer;
use conclave_sip::ua::UserAgent;
use conclave_store::model::{User, UserStatus};
use conclave_store::{Store, repo};
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A REGISTER whose credentials wait for the directory.
pub struct Pending {
    tx: TxId,
    request: Request,
    source: Peer,
    credentials: DigestCredentials,
    extension: String,
    domain: String,
    verdict: Verdict,
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
    limiter: AuthLimiter,
    store: Store,
    /// Refusals held back to slow down guessing (the limiter's `Delay`).
    delayed: Vec<(Instant, TxId, Response)>,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The tenant's user with this extension: by the request's domain when a tenant claims it,
/// otherwise the one user on the installation with that extension.
pub async fn lookup(store: &Store, pending: &Pending) -> Option<User> {
    let mut conn = store.conn().await.ok()?;
    match repo::tenants::get_by_sip_domain(&mut conn, &pending.domain).await {
        Ok(Some(tenant)) => {
            repo::users::get_by_extension(&mut conn, &tenant.id, &pending.extension)
                .await
                .ok()
                .flatten()
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
    }
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

    /// The tenants in which `extension` is registered from this IP address: a call from
    /// there with that extension in From is that user (as PBXes trust their registrations).
    pub fn tenants_of(&self, now: Instant, extension: &str, from: IpAddr) -> Vec<String> {
        let prefix = format!("sip:{extension}@");
        self.registrar
            .registered_from(now, &prefix, from)
            .into_iter()
            .filter_map(|aor| aor.strip_prefix(&prefix).map(str::to_owned))
            .collect()
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
        secret: &[u8],
        realm: &str,
        algorithms: Vec<Algorithm>,
        registrar: Registrar,
        limiter: AuthLimiter,
        store: Store,
    ) -> Self {
        let mut digest = DigestServer::new(secret, realm);
        digest.algorithms = algorithms;
        Registrations {
            digest,
            registrar,
            limiter,
            store,
            delayed: Vec::new(),
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let delayed = self.delayed.iter().map(|(at, ..)| *at).min();
        [delayed, self.registrar.next_expiry()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant, ua: &mut UserAgent) {
        for (aor, binding) in self.registrar.expire(now) {
            tracing::debug!(aor, contact = %binding.contact, "registration expired");
        }
        let (due, later): (Vec<_>, Vec<_>) =
            self.delayed.drain(..).partition(|(at, ..)| *at <= now);
        self.delayed = later;
        for (_, tx, response) in due {
            let _ = ua.respond(now, tx, response);
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        tx: TxId,
        response: Response,
        verdict: Verdict,
    ) {
        match verdict {
            Verdict::Delay(delay) => self.delayed.push((now + delay, tx, response)),
            _ => {
                let _ = ua.respond(now, tx, response);
            }
        }
    }

    fn challenge(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        tx: TxId,
        request: &Request,
        stale: bool,
        verdict: Verdict,
    ) {
        let mut response = request.response(401, "Unauthorized", Some(&ua.endpoint().new_tag()));
        for value in self.digest.challenges(unix_secs(), stale) {
            response.headers.push(HeaderName::WwwAuthenticate, value);
        }
        self.respond(now, ua, tx, response, verdict);
    }

    fn refuse(&mut self, now: Instant, ua: &mut UserAgent, p: Refusal<'_>, verdict: Verdict) {
        let response = p
            .request
            .response(p.status, p.reason, Some(&ua.endpoint().new_tag()));
        self.respond(now, ua, p.tx, response, verdict);
    }

    /// A REGISTER arrived: challenge it, refuse it, or return what to look up.
    pub fn on_register(
        &mut self,
        now: Instant,
        ua: &mut UserAgent,
        tx: TxId,
        request: Request,
        source: Peer,
    ) -> Option<(Pending, Store)> {
        let verdict = self.limiter.check(now, source.addr.ip());
        if let Verdict::Blocked(_) = verdict {
            metrics::counter!("conclave_sip_register_total", "outcome" => "blocked").increment(1);
            self.refuse(
                now,
                ua,
                Refusal {
                    tx,
                    request: &request,
                    status: 403,
                    reason: "Forbidden - too many failed attempts",
                },
                Verdict::Allow,
            );
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
                Verdict::Allow,
            );
            return None;
        };
        let credentials = match request.headers.authorization(&HeaderName::Authorization) {
            Ok(None) => {
                self.challenge(now, ua, tx, &request, false, Verdict::Allow);
                return None;
            }
            Ok(Some(params)) => DigestCredentials::parse(&params),
            Err(_) => Err(AuthError::Malformed),
        };
        let credentials = match credentials {
            Ok(c) => c,
            Err(AuthError::Unsupported) => {
                self.challenge(now, ua, tx, &request, false, Verdict::Allow);
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
                    Verdict::Allow,
                );
                return None;
            }
        };
        match self.digest.check_nonce(&credentials.nonce, unix_secs()) {
            Ok(()) => {}
            Err(AuthError::Stale) => {
                self.challenge(now, ua, tx, &request, true, Verdict::Allow);
                return None;
            }
            Err(_) => {
                let verdict = self.limiter.record_failure(now, source.addr.ip());
                self.challenge(now, ua, tx, &request, false, verdict);
                return None;
            }
        }
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
                verdict,
            );
            return None;
        }
        let pending = Pending {
            tx,
            request,
            source,
            credentials,
            extension,
            domain,
            verdict,
        };
        Some((pending, self.store.clone()))
    }

    /// The directory answered: verify, then bind.
    pub fn looked_up(&mut self, now: Instant, ua: &mut UserAgent, p: Pending, user: Option<User>) {
        let ha1 = user.as_ref().and_then(|u| match p.credentials.algorithm {
            Algorithm::Md5 => u.sip_ha1_md5.clone(),
            Algorithm::Sha256 => u.sip_ha1_sha256.clone(),
        });
        let checked = match &ha1 {
            Some(ha1) => self
                .digest
                .verify_ha1(&p.credentials, "REGISTER", ha1, unix_secs()),
            None => Err(AuthError::BadResponse),
        };
        let ip = p.source.addr.ip();
        match (checked, user) {
            (Ok(()), Some(user)) if user.status == UserStatus::Frozen => {
                metrics::counter!("conclave_sip_register_total", "outcome" => "frozen")
                    .increment(1);
                self.refuse(
                    now,
                    ua,
                    Refusal {
                        tx: p.tx,
                        request: &p.request,
                        status: 403,
                        reason: "Forbidden - account frozen",
                    },
                    Verdict::Allow,
                );
            }
            (Ok(()), Some(user)) => {
                self.limiter.record_success(ip);
                let aor = aor(&p.extension, &user.tenant_id);
                let tag = ua.endpoint().new_tag();
                let response = match self.registrar.register(now, &aor, &p.request, p.source) {
                    Ok(_) => {
                        metrics::counter!("conclave_sip_register_total", "outcome" => "ok")
                            .increment(1);
                        self.registrar.ok_response(now, &aor, &p.request, &tag)
                    }
                    Err(err) => err.response(&p.request, &tag),
                };
                let _ = ua.respond(now, p.tx, response);
            }
            (Err(AuthError::Stale), _) => {
                self.challenge(now, ua, p.tx, &p.request, true, Verdict::Allow)
            }
            _ => {
                metrics::counter!("conclave_sip_register_total", "outcome" => "denied")
                    .increment(1);
                tracing::info!(extension = p.extension, from = %p.source.addr, "SIP authentication failed");
                let verdict = self.limiter.record_failure(now, ip);
                let verdict = if let Verdict::Delay(_) = p.verdict {
                    p.verdict
                } else {
                    verdict
                };
                self.challenge(now, ua, p.tx, &p.request, false, verdict);
            }
        }
    }
}
