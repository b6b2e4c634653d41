//! The hashsched API: five namespaced kinds in `hashsched.io/v1alpha1`.
//!
//! - [`Worker`]: one physical miner (asset inventory, health, assignment ledger).
//! - [`Customer`]: who rents, and their pools.
//! - [`PoolEndpoint`]: one stratum pool account.
//! - [`RentalContract`]: machines or hashrate rented, policies, and the SLA ledger.
//! - [`StratumHub`]: a site's hub deployment.
//!
//! The Rust types are the single source of the CRD schemas: `hashsched crdgen` writes them to
//! `crds/` and the API reference to `docs/api.md`, and tests fail when the committed files drift.

pub mod admission;
pub mod common;
pub mod conditions;
pub mod customer;
pub mod manifests;
pub mod pool_endpoint;
pub mod rental_contract;
pub mod stratum_hub;
pub mod worker;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use common::{
    API_VERSION, Assignment, AssignmentRecord, AssignmentRole, CATEGORY, GROUP, HOUSE, LABEL_ROLE,
    ROLE_SPARE, SecretKeyRef, VERSION, WorkerOwner,
};
pub use customer::{Customer, CustomerSpec, CustomerStatus};
pub use pool_endpoint::{PoolEndpoint, PoolEndpointSpec, PoolEndpointStatus};
pub use rental_contract::{
    AccountingState, AssignedWorker, ContractMode, ContractPhase, FailoverPolicy, HealthPolicy,
    RentalContract, RentalContractSpec, RentalContractStatus, SlaPolicy, Uptime,
};
pub use stratum_hub::{
    ServiceType, StratumHub, StratumHubSpec, StratumHubStatus, UnknownWorkerPolicy,
};
pub use worker::{Worker, WorkerHashrate, WorkerPhase, WorkerSpec, WorkerStatus};

/// Every CRD of the API, in a stable order (the order `crdgen` writes them and docs list them),
/// with descriptions tidied for `kubectl explain` (see [`tidy_descriptions`]). Install these, not
/// the bare `Kind::crd()`, so that the cluster has exactly what `crds/` holds.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    [
        StratumHub::crd(),
        PoolEndpoint::crd(),
        Customer::crd(),
        Worker::crd(),
        RentalContract::crd(),
    ]
    .into_iter()
    .map(tidy_descriptions)
    .collect()
}

/// Rust doc comments are hard-wrapped at 100 columns; Kubernetes descriptions are read re-wrapped
/// by `kubectl explain`. Joins the lines of each paragraph (a blank line still separates
/// paragraphs).
fn tidy_descriptions(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    match v {
                        serde_json::Value::String(s) if key == "description" => {
                            *s = join_paragraph_lines(s);
                        }
                        _ => walk(v),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

fn join_paragraph_lines(s: &str) -> String {
    s.split("\n\n")
        .map(|para| {
            para.split('\n')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_joined_per_paragraph() {
        assert_eq!(join_paragraph_lines("a\nb\n\nc\nd"), "a b\n\nc d");
        let crds = all_crds();
        assert_eq!(crds.len(), 5);
        let yaml = serde_json::to_string(&crds).unwrap();
        assert!(yaml.contains("Nameplate hashrate (e.g. `104 TH/s`). Health tests compare the share rate against it, and Threshold"));
    }
}
