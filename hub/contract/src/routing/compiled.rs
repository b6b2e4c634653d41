//! The validated form the engine consumes: a [`ValidRouting`] is a document that passed
//! validation and whose secrets resolved, with the per-worker routing decision.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::validate::invalid;
use super::{
    Assignment, FailoverPolicy, Password, PoolUrl, RoutingDocument, RoutingError, RoutingRejected,
    SecretStore, UnknownWorkerPolicy, WorkerNameTemplate, WorkerRoute,
};

/// A pool ready to connect to: URL parsed, template checked, password resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPool {
    pub name: String,
    pub url: PoolUrl,
    pub user: String,
    pub worker_name_template: WorkerNameTemplate,
    pub password: Password,
    /// Certificate checks (`Some` exactly for `stratum+ssl://` pools).
    pub tls: Option<crate::tls::PoolTls>,
}

impl ResolvedPool {
    /// The name `worker` authorizes as on this pool.
    pub fn upstream_worker_name(&self, worker: &str) -> String {
        self.worker_name_template.render(&self.user, worker)
    }
}

/// Why a worker got the route it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteSource {
    /// Listed with its own pool list.
    Listed,
    /// Listed without pools: the default route.
    Default,
    /// Not listed; the default route by `unknownWorkers: defaultRoute`.
    UnknownDefault,
    /// Not listed; quarantine pools.
    Quarantine,
}

impl RouteSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteSource::Listed => "listed",
            RouteSource::Default => "default",
            RouteSource::UnknownDefault => "unknown_default",
            RouteSource::Quarantine => "quarantine",
        }
    }
}

/// Where one worker mines, as the engine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The worker's name (the document's `name`, or the login of an unknown worker).
    pub worker: String,
    /// Pool names in failover order; every name is in [`ValidRouting::pool`].
    pub pools: Vec<String>,
    pub assignment: Option<Assignment>,
    pub expected_hashrate: Option<f64>,
    pub source: RouteSource,
}

/// The decision for a miner that authorizes as some login.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerDecision {
    Route(Route),
    /// Unknown worker under `unknownWorkers: reject`.
    Reject,
}

/// A routing document that passed validation and whose secrets resolved. Only this reaches the
/// engine.
#[derive(Debug, Clone)]
pub struct ValidRouting {
    doc: RoutingDocument,
    pools: BTreeMap<String, ResolvedPool>,
    by_login: HashMap<String, usize>,
    doc_digest: [u8; 32],
    secrets_digest: [u8; 32],
}

impl ValidRouting {
    /// Validates `doc` and resolves its passwords; every problem is reported.
    pub fn new(doc: RoutingDocument, secrets: &SecretStore) -> Result<Self, RoutingRejected> {
        doc.validate()?;
        let mut errs = Vec::new();
        let mut pools = BTreeMap::new();
        let doc_digest: [u8; 32] =
            Sha256::digest(serde_json::to_vec(&doc).unwrap_or_default()).into();
        let mut hasher = Sha256::new();
        for (i, p) in doc.pools.iter().enumerate() {
            let path = format!("pools[{i}].password");
            let password = match p.password.as_ref().map(|r| secrets.resolve(r)) {
                Some(Ok(pw)) => pw,
                Some(Err(detail)) => {
                    errs.push(RoutingError::MissingSecret { path, detail });
                    continue;
                }
                None => {
                    errs.push(RoutingError::MissingPasswordRef { path });
                    continue;
                }
            };
            // Validation above guarantees these parse; map errors anyway rather than panic.
            let url = PoolUrl::parse(&p.url).map_err(|reason| RoutingError::MalformedUrl {
                path: format!("pools[{i}].url"),
                url: p.url.clone(),
                reason,
            });
            let tpl = WorkerNameTemplate::parse(&p.worker_name_template)
                .map_err(|reason| invalid(format!("pools[{i}].workerNameTemplate"), reason));
            let tls = match &url {
                Ok(u) => secrets.resolve_tls(u, p.tls.as_ref()).map_err(|detail| {
                    RoutingError::MissingSecret {
                        path: format!("pools[{i}].tls"),
                        detail,
                    }
                }),
                Err(_) => Ok(None),
            };
            match (url, tpl, tls) {
                (Ok(url), Ok(worker_name_template), Ok(tls)) => {
                    hasher.update(p.name.as_bytes());
                    hasher.update([0]);
                    hasher.update(Sha256::digest(password.expose().as_bytes()));
                    // A rotated CA counts as a changed secret, like a rotated password.
                    for c in tls
                        .iter()
                        .flat_map(|t| t.ca.iter())
                        .flat_map(|ca| ca.iter())
                    {
                        hasher.update(Sha256::digest(c.as_ref()));
                    }
                    pools.insert(
                        p.name.clone(),
                        ResolvedPool {
                            name: p.name.clone(),
                            url,
                            user: p.user.clone(),
                            worker_name_template,
                            password,
                            tls,
                        },
                    );
                }
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => errs.push(e),
            }
        }
        if !errs.is_empty() {
            return Err(RoutingRejected { errors: errs });
        }
        let by_login = doc
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| (w.login().to_string(), i))
            .collect();
        Ok(Self {
            doc,
            pools,
            by_login,
            doc_digest,
            secrets_digest: hasher.finalize().into(),
        })
    }

    /// Parses, validates and resolves in one step (what the admin API and file reloader do).
    pub fn from_bytes(bytes: &[u8], secrets: &SecretStore) -> Result<Self, RoutingRejected> {
        let doc = RoutingDocument::parse(bytes)?;
        Self::new(doc, secrets)
    }

    pub fn generation(&self) -> u64 {
        self.doc.generation
    }
    pub fn document(&self) -> &RoutingDocument {
        &self.doc
    }
    /// Content digest (document + resolved passwords): equal digests mean nothing changed.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.doc_digest);
        h.update(self.secrets_digest);
        h.finalize().into()
    }
    /// Digest of the document alone (what the operator wrote, without resolved secrets).
    pub fn document_digest(&self) -> [u8; 32] {
        self.doc_digest
    }
    /// Digest of the resolved pool passwords (changes when a Secret is rotated).
    pub fn secrets_digest(&self) -> [u8; 32] {
        self.secrets_digest
    }
    pub fn pool(&self, name: &str) -> Option<&ResolvedPool> {
        self.pools.get(name)
    }
    /// All pools, by name.
    pub fn pools(&self) -> impl Iterator<Item = &ResolvedPool> {
        self.pools.values()
    }
    pub fn failover(&self) -> &FailoverPolicy {
        &self.doc.failover
    }
    pub fn health_windows(&self) -> Vec<Duration> {
        self.doc.health.windows.iter().map(|d| d.as_std()).collect()
    }
    /// Listed workers (their routes, in document order).
    pub fn listed_workers(&self) -> impl Iterator<Item = (&str, Route)> + '_ {
        self.doc
            .workers
            .iter()
            .map(|w| (w.login(), self.listed_route(w)))
    }

    fn listed_route(&self, w: &WorkerRoute) -> Route {
        let (pools, source) = match &w.pools {
            Some(p) => (p.clone(), RouteSource::Listed),
            None => (self.default_pools(), RouteSource::Default),
        };
        Route {
            worker: w.name.clone(),
            pools,
            assignment: w.assignment.clone(),
            expected_hashrate: w.expected_hashrate,
            source,
        }
    }

    fn default_pools(&self) -> Vec<String> {
        self.doc
            .default_route
            .as_ref()
            .map(|d| d.pools.clone())
            .unwrap_or_default()
    }

    /// Where a miner authorizing as `login` mines.
    pub fn decide(&self, login: &str) -> WorkerDecision {
        if let Some(w) = self
            .by_login
            .get(login)
            .and_then(|i| self.doc.workers.get(*i))
        {
            return WorkerDecision::Route(self.listed_route(w));
        }
        let (pools, source) = match &self.doc.unknown_workers {
            UnknownWorkerPolicy::Reject => return WorkerDecision::Reject,
            UnknownWorkerPolicy::DefaultRoute => {
                (self.default_pools(), RouteSource::UnknownDefault)
            }
            UnknownWorkerPolicy::Quarantine { pools } => (pools.clone(), RouteSource::Quarantine),
        };
        WorkerDecision::Route(Route {
            worker: login.to_string(),
            pools,
            assignment: None,
            expected_hashrate: None,
            source,
        })
    }
}
