//! StratumHub: a site's stratum hub, which the operator turns into a Deployment and Services.
//!
//! Miners connect to the hub's stratum port; the hub routes each to its pools and reports share
//! facts on its metrics port. The spec says how to run it and what to do with miners nobody
//! declared as Workers.

// `#[kube(printcolumn(...))]` repeats `type_`, `priority`, ... once per column by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{MAX_POOLS, NAME_MAX_LEN, NAME_PATTERN};
use crate::quantity::Duration;

/// Default number of hub pods.
pub const DEFAULT_REPLICAS: i32 = 2;
/// Default stratum port (the conventional one).
pub const DEFAULT_STRATUM_PORT: i32 = 3333;
/// Default port of the hub's `/metrics` and authenticated admin API.
pub const DEFAULT_METRICS_PORT: i32 = 9090;
/// Default target time between shares of one miner (the hub's vardiff aims for it).
pub const DEFAULT_SHARE_INTERVAL: Duration = Duration::from_secs(2);

/// A stratum hub for one site.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hashsched.io",
    version = "v1alpha1",
    kind = "StratumHub",
    namespaced,
    derive = "PartialEq",
    status = "StratumHubStatus",
    shortname = "hub",
    category = "hashsched",
    doc = "StratumHub is one site's stratum hub: miners connect to it, it measures every worker from its shares and routes each to the pools of the customer it serves. The operator runs it as a Deployment with Services, a routing ConfigMap, an admin-token Secret and a PodDisruptionBudget.",
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Workers",
        type_ = "integer",
        description = "Connected workers",
        json_path = ".status.connectedWorkers"
    ),
    printcolumn(
        name = "Routing",
        type_ = "integer",
        description = "Routing generation applied by all replicas",
        json_path = ".status.appliedRoutingGeneration"
    ),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.serviceType"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.unknownWorkers) || self.unknownWorkers != 'Quarantine' || has(self.quarantinePool)",
        "message": "unknownWorkers: Quarantine needs spec.quarantinePool",
        "reason": "FieldValueRequired",
        "fieldPath": ".quarantinePool"
    },
    {
        "rule": "!has(self.unknownWorkers) || self.unknownWorkers != 'HousePool' || (has(self.housePools) && size(self.housePools) > 0)",
        "message": "unknownWorkers: HousePool needs at least one entry in spec.housePools",
        "reason": "FieldValueRequired",
        "fieldPath": ".housePools"
    }
]))]
pub struct StratumHubSpec {
    /// Number of hub pods (default 2). Miners spread over them through the Service; each pod
    /// handles about 10,000 connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Container image of the hub. Unset: the image the operator was released with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Port miners connect to (default 3333).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub stratum_port: Option<i32>,
    /// Port of `/metrics` and the admin API (default 9090).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub metrics_port: Option<i32>,
    /// How miners reach the stratum Service: ClusterIP, NodePort or LoadBalancer (default
    /// ClusterIP; farms usually want LoadBalancer or NodePort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Target time between two shares of one miner (default `2s`). Shorter detects failures
    /// faster and costs more hub CPU; the hub sets each miner's difficulty to hit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_interval: Option<Duration>,
    /// What to do with a miner whose stratum user matches no Worker: Reject (default), Quarantine
    /// (send its hashrate to `quarantinePool`) or HousePool (mine for the house). Never a customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_workers: Option<UnknownWorkerPolicy>,
    /// PoolEndpoint that receives the hashrate of unknown miners under `unknownWorkers: Quarantine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = NAME_MAX_LEN), pattern(NAME_PATTERN))]
    pub quarantine_pool: Option<String>,
    /// PoolEndpoints (failover order) that idle house workers and spares mine to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POOLS), inner(length(min = 1, max = NAME_MAX_LEN), pattern(NAME_PATTERN)))]
    pub house_pools: Vec<String>,
    /// Most concurrent miner connections per pod (default: the hub's own limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: Option<u32>,
    /// CPU and memory for each hub pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl StratumHubSpec {
    /// Replicas with the default applied.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(DEFAULT_REPLICAS)
    }
    /// Stratum port with the default applied.
    pub fn stratum_port(&self) -> i32 {
        self.stratum_port.unwrap_or(DEFAULT_STRATUM_PORT)
    }
    /// Metrics port with the default applied.
    pub fn metrics_port(&self) -> i32 {
        self.metrics_port.unwrap_or(DEFAULT_METRICS_PORT)
    }
    /// Service type with the default applied.
    pub fn service_type(&self) -> ServiceType {
        self.service_type.unwrap_or_default()
    }
    /// Share interval with the default applied.
    pub fn share_interval(&self) -> Duration {
        self.share_interval.unwrap_or(DEFAULT_SHARE_INTERVAL)
    }
    /// Unknown-worker policy with the default applied.
    pub fn unknown_workers(&self) -> UnknownWorkerPolicy {
        self.unknown_workers.unwrap_or_default()
    }

    /// The rule the schema and its CEL rules cannot express: a zero share interval. The CEL
    /// rules (Quarantine needs a pool, HousePool needs house pools) are written once, in the
    /// schema; the apiserver runs them and local mode's admission evaluates them from the CRD.
    pub fn validate(&self) -> Result<(), String> {
        if self.share_interval().is_zero() {
            return Err("shareInterval must be greater than 0".into());
        }
        Ok(())
    }
}

/// Kubernetes Service type of the miner-facing Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = super::common::drop_description)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// An external load balancer (MetalLB on bare metal).
    LoadBalancer,
}

impl ServiceType {
    /// The value Kubernetes expects in `Service.spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// What the hub does with a miner whose stratum user matches no Worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = super::common::drop_description)]
pub enum UnknownWorkerPolicy {
    /// Refuse `mining.authorize` (the miner sees an error and retries).
    #[default]
    Reject,
    /// Accept, and send its hashrate to `spec.quarantinePool` until someone declares it.
    Quarantine,
    /// Accept, and mine for the house pools.
    HousePool,
}

/// What the operator sees of the hub's pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StratumHubStatus {
    /// Hub pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Miners connected over all pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_workers: Option<u32>,
    /// Latest routing generation the operator rendered for this hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_routing_generation: Option<i64>,
    /// Lowest routing generation applied by the ready pods (equal to the desired one when all
    /// pods caught up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_routing_generation: Option<i64>,
    /// Stratum address miners should use (Service host:port), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratum_endpoint: Option<String>,
    /// Conditions: `Ready`, `RoutingApplied`, `SpecValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
