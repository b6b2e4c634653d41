//! One place that decides whether a routing document is applied, for both entry points (the admin
//! API and the file reloader): validation, generation ordering, idempotent re-delivery, and the
//! hand-off to the engine through [`RoutingSink`].
//!
//! Generation rules ([`admit`]): a higher generation is applied; the same generation with the same
//! content is a no-op (the ConfigMap catching up with an earlier API push); the same generation with
//! different content, or a lower generation, is refused with the reason. The last good document
//! stays applied whatever is refused.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use thiserror::Error;

use super::{RoutingRejected, SecretStore, ValidRouting};

/// The engine side of routing: `HubHandle` implements this. `apply_routing` must take effect
/// without dropping miners (the engine re-routes live) and must not block for long.
pub trait RoutingSink: Send + Sync + 'static {
    fn apply_routing(&self, routing: Arc<ValidRouting>);
}

/// Where a document came from (a metric label and log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutingSource {
    File,
    Api,
}

impl RoutingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingSource::File => "file",
            RoutingSource::Api => "api",
        }
    }
}

/// Verdict of [`admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Apply,
    /// Same generation and document, but a referenced Secret changed (password rotation): apply
    /// so that new upstream sessions use the new password.
    SecretsRefresh,
    Unchanged,
    Stale {
        applied: u64,
        offered: u64,
    },
    Conflict {
        generation: u64,
    },
}

/// Decides what to do with `offered` given the applied document (pure).
pub fn admit(applied: Option<&ValidRouting>, offered: &ValidRouting) -> Admission {
    let Some(cur) = applied else {
        return Admission::Apply;
    };
    let (a, o) = (cur.generation(), offered.generation());
    if o > a {
        Admission::Apply
    } else if o < a {
        Admission::Stale {
            applied: a,
            offered: o,
        }
    } else if cur.document_digest() == offered.document_digest() {
        if cur.secrets_digest() == offered.secrets_digest() {
            Admission::Unchanged
        } else {
            Admission::SecretsRefresh
        }
    } else {
        Admission::Conflict { generation: o }
    }
}

/// Why a submitted document was not applied.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SubmitError {
    #[error(transparent)]
    Invalid(#[from] RoutingRejected),
    #[error(
        "generation {offered} is lower than the applied generation {applied}; documents must not go back in time"
    )]
    Stale { applied: u64, offered: u64 },
    #[error(
        "generation {generation} is already applied with different content; bump the generation to change it"
    )]
    Conflict { generation: u64 },
}

impl SubmitError {
    /// Metric label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            SubmitError::Invalid(_) => "invalid",
            SubmitError::Stale { .. } => "stale",
            SubmitError::Conflict { .. } => "conflict",
        }
    }
}

/// Result of an accepted submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub generation: u64,
    /// False when the same document was already applied (nothing sent to the engine).
    pub changed: bool,
}

/// Counters of routing submissions, readable by the metrics exporter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoutingStats {
    pub applied: u64,
    pub unchanged: u64,
    pub invalid: u64,
    pub stale: u64,
    pub conflict: u64,
}

/// Holds the last good routing and feeds the engine.
pub struct RoutingControl {
    secrets: SecretStore,
    sink: Arc<dyn RoutingSink>,
    state: Mutex<State>,
    metrics: Option<RoutingMetrics>,
}

#[derive(Default)]
struct State {
    current: Option<Arc<ValidRouting>>,
    stats: RoutingStats,
    last_error: Option<String>,
}

impl RoutingControl {
    pub fn new(secrets: SecretStore, sink: Arc<dyn RoutingSink>) -> Self {
        Self {
            secrets,
            sink,
            state: Mutex::new(State::default()),
            metrics: None,
        }
    }

    /// Also exports outcomes and the applied generation as Prometheus metrics.
    pub fn with_metrics(mut self, metrics: RoutingMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent data (plain assignments).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parses, validates, admits and applies a document.
    pub fn submit_bytes(
        &self,
        bytes: &[u8],
        source: RoutingSource,
    ) -> Result<Accepted, SubmitError> {
        match ValidRouting::from_bytes(bytes, &self.secrets) {
            Ok(r) => self.submit(r, source),
            Err(e) => {
                let err = SubmitError::Invalid(e);
                self.record_refusal(&err, source);
                Err(err)
            }
        }
    }

    /// Admits and applies an already validated document.
    pub fn submit(
        &self,
        routing: ValidRouting,
        source: RoutingSource,
    ) -> Result<Accepted, SubmitError> {
        let mut st = self.lock();
        let generation = routing.generation();
        let verdict = admit(st.current.as_deref(), &routing);
        let result = match verdict {
            Admission::Apply | Admission::SecretsRefresh => {
                let routing = Arc::new(routing);
                st.current = Some(routing.clone());
                st.stats.applied += 1;
                st.last_error = None;
                // Under the lock so two sources cannot apply out of order.
                self.sink.apply_routing(routing);
                if verdict == Admission::SecretsRefresh {
                    tracing::info!(
                        generation,
                        source = source.as_str(),
                        "pool password changed; routing re-applied"
                    );
                } else {
                    tracing::info!(generation, source = source.as_str(), "routing applied");
                }
                if let Some(m) = &self.metrics {
                    m.record(source, "applied");
                }
                return Ok(Accepted {
                    generation,
                    changed: true,
                });
            }
            Admission::Unchanged => {
                st.stats.unchanged += 1;
                if let Some(m) = &self.metrics {
                    m.record(source, "unchanged");
                }
                return Ok(Accepted {
                    generation,
                    changed: false,
                });
            }
            Admission::Stale { applied, offered } => SubmitError::Stale { applied, offered },
            Admission::Conflict { generation } => SubmitError::Conflict { generation },
        };
        drop(st);
        self.record_refusal(&result, source);
        Err(result)
    }

    fn record_refusal(&self, err: &SubmitError, source: RoutingSource) {
        let mut st = self.lock();
        match err {
            SubmitError::Invalid(_) => st.stats.invalid += 1,
            SubmitError::Stale { .. } => st.stats.stale += 1,
            SubmitError::Conflict { .. } => st.stats.conflict += 1,
        }
        st.last_error = Some(err.to_string());
        let applied = st.current.as_ref().map(|c| c.generation());
        drop(st);
        tracing::warn!(
            source = source.as_str(),
            applied_generation = applied,
            error = %err,
            "routing document refused; keeping the last good one"
        );
        if let Some(m) = &self.metrics {
            m.record(source, err.as_str());
        }
    }

    /// Where pool passwords are resolved from.
    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }

    /// The applied document, if any.
    pub fn current(&self) -> Option<Arc<ValidRouting>> {
        self.lock().current.clone()
    }
    pub fn applied_generation(&self) -> Option<u64> {
        self.lock().current.as_ref().map(|c| c.generation())
    }
    pub fn stats(&self) -> RoutingStats {
        self.lock().stats
    }
    /// The most recent refusal since the last successful apply.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpdateLabels {
    source: &'static str,
    result: &'static str,
}

/// Prometheus series for routing submissions by source and result (`applied`, `unchanged`,
/// `invalid`, `stale`, `conflict`). An invalid ConfigMap shows up as
/// `hashsched_hub_routing_updates_total{source="file",result="invalid"}` increasing.
#[derive(Debug, Clone, Default)]
pub struct RoutingMetrics {
    updates: Family<UpdateLabels, Counter>,
}

impl RoutingMetrics {
    /// Creates the series and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            crate::metrics::HUB_ROUTING_UPDATES_TOTAL
                .strip_suffix("_total")
                .unwrap_or(crate::metrics::HUB_ROUTING_UPDATES_TOTAL),
            "Routing documents received, by source (file, api) and result",
            m.updates.clone(),
        );
        m
    }

    fn record(&self, source: RoutingSource, result: &'static str) {
        self.updates
            .get_or_create(&UpdateLabels {
                source: source.as_str(),
                result,
            })
            .inc();
    }
}

/// A sink that records what it was given (unit tests of the API and reloader).
#[cfg(test)]
#[derive(Default)]
pub(crate) struct RecordingSink {
    pub applied: Mutex<Vec<u64>>,
}

#[cfg(test)]
impl RoutingSink for RecordingSink {
    fn apply_routing(&self, routing: Arc<ValidRouting>) {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(routing.generation());
    }
}

#[cfg(test)]
impl RecordingSink {
    pub fn generations(&self) -> Vec<u64> {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
pub(crate) fn test_doc(generation: u64, pool_port: u16) -> String {
    format!(
        r#"apiVersion: routing.hashsched.io/v1
generation: {generation}
pools:
  - name: main
    url: stratum+tcp://127.0.0.1:{pool_port}
    user: acme
    password: {{ public: x }}
workers:
  - name: rig-1
    pools: [main]
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::HUB_ROUTING_UPDATES_TOTAL;

    #[test]
    fn generations_apply_forward_only() {
        let sink = Arc::new(RecordingSink::default());
        let c = RoutingControl::new(SecretStore::none(), sink.clone());
        let mut reg = Registry::default();
        let c = c.with_metrics(RoutingMetrics::register(&mut reg));
        assert_eq!(c.applied_generation(), None);
        let a = c
            .submit_bytes(test_doc(5, 3333).as_bytes(), RoutingSource::Api)
            .expect("applies");
        assert_eq!((a.generation, a.changed), (5, true));
        // Same document again (e.g. from the file): no-op, not sent to the engine twice.
        let a = c
            .submit_bytes(test_doc(5, 3333).as_bytes(), RoutingSource::File)
            .expect("same");
        assert!(!a.changed);
        let e = c
            .submit_bytes(test_doc(5, 4444).as_bytes(), RoutingSource::File)
            .expect_err("conflict");
        assert_eq!(
            e.to_string(),
            "generation 5 is already applied with different content; bump the generation to change it"
        );
        let e = c
            .submit_bytes(test_doc(4, 3333).as_bytes(), RoutingSource::Api)
            .expect_err("stale");
        assert_eq!(
            e.to_string(),
            "generation 4 is lower than the applied generation 5; documents must not go back in time"
        );
        let e = c
            .submit_bytes(b"generation: 9\npools: []\n", RoutingSource::Api)
            .expect_err("invalid");
        assert!(matches!(e, SubmitError::Invalid(_)), "{e}");
        assert_eq!(c.applied_generation(), Some(5));
        c.submit_bytes(test_doc(6, 4444).as_bytes(), RoutingSource::Api)
            .expect("applies");
        assert_eq!(sink.generations(), vec![5, 6]);
        let s = c.stats();
        assert_eq!(
            (s.applied, s.unchanged, s.conflict, s.stale, s.invalid),
            (2, 1, 1, 1, 1)
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).expect("encodes");
        assert!(
            text.contains(&format!(
                r#"{HUB_ROUTING_UPDATES_TOTAL}{{source="file",result="conflict"}} 1"#
            )),
            "{text}"
        );
    }
}
