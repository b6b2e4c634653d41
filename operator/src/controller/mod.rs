//! The Kubernetes shell of hashsched: `hashsched operator`.
//!
//! - [`children`]: a `kube::runtime::Controller` turning each StratumHub into its Deployment,
//!   Services, routing ConfigMap, PodDisruptionBudget, PodMonitor and admin-token Secret.
//! - [`schedule`]: the scheduling loop, the one writer of decisions (hub scrapes → decision
//!   core → routing pushes, statuses, Events).
//! - [`exposition`]: the hub's `/metrics` page read back into facts; [`hub_io`]: where hub pods
//!   are and how they are reached; [`status_writes`]: which status writes are worth it;
//!   [`events`]: which Events a cycle deserves; [`metrics`]: the operator's own metrics;
//!   [`serve`]: `/metrics`, `/healthz`, `/readyz`; [`run`]: reflectors, leader election and
//!   shutdown.
//!
//! Decisions stay in [`crate::scheduler`]; this module reads, applies and reports.

pub mod children;
pub mod events;
pub mod exposition;
pub mod hub_io;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod status_writes;
pub mod telemetry;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hashsched_contract::routing::RoutingDocument;
use kube::Client;

use crate::scheduler::render::kubernetes::RenderError;
use crate::scheduler::sli::{self, SliSnapshot};

/// The one field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "hashsched-operator";
/// `reportingController` of the operator's Events.
pub const EVENT_REPORTER: &str = "hashsched.io/operator";

/// Why a reconcile or a write failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("rendering the hub's objects: {0}")]
    Render(#[from] RenderError),
}

/// State the hub controller and the scheduling loop share.
#[derive(Debug)]
pub struct Shared {
    pub metrics: telemetry::OperatorMetrics,
    /// The scheduling loop's latest routing document per hub (`namespace`, `name`): what the
    /// routing ConfigMap carries.
    pub routing: Mutex<BTreeMap<hub_io::HubKey, RoutingDocument>>,
    /// The cluster serves `monitoring.coreos.com/v1` PodMonitors.
    pub pod_monitor_api: bool,
    /// Hub image when a StratumHub does not name one.
    pub default_image: Option<String>,
    /// The per-contract SLIs and per-worker phases of the last cycle, for `/metrics`: the
    /// scheduling loop publishes, the SLI collector reads on each scrape.
    pub slis: tokio::sync::watch::Sender<Arc<SliSnapshot>>,
    /// Per hub: why its objects cannot be rendered (the hub controller writes, the scheduling
    /// loop reports it in the StratumHub's `SpecValid` condition).
    pub render_errors: Mutex<BTreeMap<hub_io::HubKey, String>>,
}

/// The SLI snapshot the scheduling loop publishes, as the collector's source (the core has no
/// async runtime, so the watch channel is adapted here).
#[derive(Debug)]
struct SliWatch(tokio::sync::watch::Receiver<Arc<SliSnapshot>>);

impl sli::SliSource for SliWatch {
    fn snapshot(&self) -> Arc<SliSnapshot> {
        self.0.borrow().clone()
    }
}

impl Shared {
    pub fn new(pod_monitor_api: bool, default_image: Option<String>) -> Self {
        let (slis, sli_reader) = tokio::sync::watch::channel(Arc::new(SliSnapshot::default()));
        Shared {
            metrics: telemetry::OperatorMetrics::new_with(|registry| {
                sli::register(registry, SliWatch(sli_reader))
            }),
            routing: Mutex::new(BTreeMap::new()),
            pod_monitor_api,
            default_image,
            slis,
            render_errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Why the hub's objects cannot be rendered, if they cannot.
    pub fn render_error(&self, hub: &hub_io::HubKey) -> Option<String> {
        self.render_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hub)
            .cloned()
    }

    /// Records the outcome of rendering a hub's objects.
    pub fn set_render_error(&self, hub: hub_io::HubKey, error: Option<String>) {
        let mut errors = self.render_errors.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(e) => {
                errors.insert(hub, e);
            }
            None => {
                errors.remove(&hub);
            }
        }
    }
}

/// The hub controller's context.
pub struct Context {
    pub client: Client,
    pub shared: Arc<Shared>,
}
