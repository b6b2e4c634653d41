//! The hub routing document from an allocation: each worker's ordered pool list and assignment
//! labels, the default route for idle and benched workers, and the generation stamp.
//!
//! Who mines where:
//! - Primary or Substitute: the contract's pools (`spec.pools`, else its customer's pools), with
//!   labels `{contract, customer, role}`.
//! - Benched or Spare: a worker a customer owns mines on that customer's pools (labels
//!   `{customer, role: spare}`); a house worker takes the default route (the hub's house pools).
//!
//! A contract with no pools at all sends its workers to the default route too; the cycle reports
//! that on the contract (its hashrate is not delivered).

use crate::scheduler::allocation::{Owner, Placement, Role};
use hashsched_contract::routing::{
    Assignment, DefaultRoute, FailoverPolicy, HealthWindows, MAX_EXPECTED_HASHRATE, PoolSpec,
    ROUTING_API_VERSION, RoutingDocument, UnknownWorkerPolicy, WorkerRoute,
};
use std::collections::BTreeMap;

/// Where a contract's hashrate goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractRoute {
    pub customer: String,
    /// Pool names in failover order.
    pub pools: Vec<String>,
}

/// A worker as the routing document needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedWorker {
    pub name: String,
    /// Stratum user, when it differs from the name.
    pub user: Option<String>,
    pub owner: Owner,
    /// Hashes per second.
    pub expected_hashrate: f64,
}

/// Everything except the placements.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingInputs {
    /// Every pool any route may name.
    pub pools: Vec<PoolSpec>,
    /// The hub's house pools (default route).
    pub house_pools: Vec<String>,
    pub contracts: BTreeMap<String, ContractRoute>,
    /// Customers' own pools (for idle workers they own).
    pub customer_pools: BTreeMap<String, Vec<String>>,
    pub unknown_workers: UnknownWorkerPolicy,
    pub health: HealthWindows,
    pub failover: FailoverPolicy,
}

/// Render the document for `workers` (generation 0; see [`stamp_generation`]).
pub fn render_routing(
    inputs: &RoutingInputs,
    workers: &[RoutedWorker],
    placements: &BTreeMap<String, Placement>,
) -> RoutingDocument {
    let mut routes: BTreeMap<&str, WorkerRoute> = BTreeMap::new();
    for w in workers {
        let placement = placements.get(&w.name);
        let serving = placement
            .filter(|p| p.role.serves())
            .and_then(|p| p.contract.as_deref().map(|c| (c, p.role)))
            .and_then(|(c, role)| inputs.contracts.get(c).map(|r| (c, r, role)));
        let (pools, assignment) = match serving {
            Some((contract, route, role)) => {
                let pools = (!route.pools.is_empty()).then(|| route.pools.clone());
                let a = Assignment {
                    contract: Some(contract.to_string()),
                    customer: Some(route.customer.clone()),
                    role,
                };
                (pools, a)
            }
            None => match &w.owner {
                Owner::Customer(c) => {
                    let pools = inputs
                        .customer_pools
                        .get(c)
                        .filter(|p| !p.is_empty())
                        .cloned();
                    (
                        pools,
                        Assignment {
                            contract: None,
                            customer: Some(c.clone()),
                            role: Role::Spare,
                        },
                    )
                }
                Owner::House => (
                    None,
                    Assignment {
                        contract: None,
                        customer: None,
                        role: Role::Spare,
                    },
                ),
            },
        };
        let expected = w.expected_hashrate;
        let route = WorkerRoute {
            name: w.name.clone(),
            user: w.user.clone().filter(|u| *u != w.name),
            pools,
            assignment: Some(assignment),
            expected_hashrate: (expected.is_finite()
                && expected > 0.0
                && expected <= MAX_EXPECTED_HASHRATE)
                .then_some(expected),
        };
        routes.entry(w.name.as_str()).or_insert(route);
    }
    let mut pools = inputs.pools.clone();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    pools.dedup_by(|a, b| a.name == b.name);
    RoutingDocument {
        api_version: ROUTING_API_VERSION.to_string(),
        generation: 0,
        pools,
        workers: routes.into_values().collect(),
        default_route: (!inputs.house_pools.is_empty()).then(|| DefaultRoute {
            pools: inputs.house_pools.clone(),
        }),
        unknown_workers: inputs.unknown_workers.clone(),
        health: inputs.health.clone(),
        failover: inputs.failover.clone(),
    }
}

/// Give `doc` its generation: the previous one if nothing else changed (no needless reloads),
/// else one more than the previous (the hub refuses to go back).
pub fn stamp_generation(
    previous: Option<&RoutingDocument>,
    mut doc: RoutingDocument,
) -> RoutingDocument {
    match previous {
        Some(prev) => {
            doc.generation = prev.generation;
            if doc != *prev {
                doc.generation = prev.generation.saturating_add(1);
            }
        }
        None => doc.generation = doc.generation.max(1),
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashsched_contract::routing::{PasswordRef, SecretStore, ValidRouting};
    use jiff::Timestamp;

    fn pool(name: &str) -> PoolSpec {
        PoolSpec {
            name: name.into(),
            url: format!("stratum+tcp://{name}.example:3333"),
            user: name.into(),
            worker_name_template: "{user}.{worker}".into(),
            password: Some(PasswordRef::secret(format!("{name}-pool"), "password")),
            tls: None,
        }
    }

    fn inputs() -> RoutingInputs {
        RoutingInputs {
            pools: vec![
                pool("house"),
                pool("acme-main"),
                pool("acme-backup"),
                pool("hosted"),
            ],
            house_pools: vec!["house".into()],
            contracts: [(
                "acme-2026".to_string(),
                ContractRoute {
                    customer: "acme".into(),
                    pools: vec!["acme-main".into(), "acme-backup".into()],
                },
            )]
            .into(),
            customer_pools: [("beta".to_string(), vec!["hosted".to_string()])].into(),
            unknown_workers: UnknownWorkerPolicy::Reject,
            health: HealthWindows::default(),
            failover: FailoverPolicy::default(),
        }
    }

    fn placed(contract: Option<&str>, role: Role) -> Placement {
        Placement {
            contract: contract.map(Into::into),
            role,
            covers: None,
            since: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn routes_follow_roles_and_owners_and_the_hub_accepts_the_document() {
        let rw = |name: &str, owner: Owner| RoutedWorker {
            name: name.into(),
            user: None,
            owner,
            expected_hashrate: 1e14,
        };
        let workers = vec![
            rw("r1", Owner::House),
            rw("r2", Owner::House),
            rw("s1", Owner::House),
            rw("idle", Owner::House),
            rw("hosted-1", Owner::Customer("beta".into())),
        ];
        let placements: BTreeMap<String, Placement> = [
            ("r1", placed(Some("acme-2026"), Role::Primary)),
            ("r2", placed(Some("acme-2026"), Role::Benched)),
            ("s1", placed(Some("acme-2026"), Role::Substitute)),
            ("idle", placed(None, Role::Spare)),
            ("hosted-1", placed(None, Role::Spare)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let doc = stamp_generation(None, render_routing(&inputs(), &workers, &placements));
        let by: BTreeMap<&str, &WorkerRoute> =
            doc.workers.iter().map(|w| (w.name.as_str(), w)).collect();
        let acme = Some(vec!["acme-main".to_string(), "acme-backup".to_string()]);
        assert_eq!(by["r1"].pools, acme);
        assert_eq!(by["s1"].pools, acme);
        assert_eq!(by["s1"].assignment.as_ref().unwrap().role, Role::Substitute);
        assert_eq!(by["r2"].pools, None, "benched original mines for the house");
        assert_eq!(by["idle"].pools, None);
        assert_eq!(by["hosted-1"].pools, Some(vec!["hosted".to_string()]));
        assert_eq!(doc.generation, 1);
        // The hub's own validation accepts it (secrets are resolved only when loaded).
        doc.validate().expect("valid routing document");
        let yaml = serde_yaml::to_string(&doc).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for p in ["house", "acme-main", "acme-backup", "hosted"] {
            std::fs::create_dir_all(dir.path().join(format!("{p}-pool"))).unwrap();
            std::fs::write(dir.path().join(format!("{p}-pool")).join("password"), "pw").unwrap();
        }
        ValidRouting::from_bytes(yaml.as_bytes(), &SecretStore::new(dir.path()))
            .expect("hub loads it");
    }

    #[test]
    fn generation_moves_only_on_change() {
        let workers = vec![RoutedWorker {
            name: "a".into(),
            user: Some("acct.a".into()),
            owner: Owner::House,
            expected_hashrate: 1e14,
        }];
        let mut placements = BTreeMap::from([("a".to_string(), placed(None, Role::Spare))]);
        let first = stamp_generation(None, render_routing(&inputs(), &workers, &placements));
        let same = stamp_generation(
            Some(&first),
            render_routing(&inputs(), &workers, &placements),
        );
        assert_eq!(same, first);
        placements.insert("a".into(), placed(Some("acme-2026"), Role::Substitute));
        let moved = stamp_generation(
            Some(&first),
            render_routing(&inputs(), &workers, &placements),
        );
        assert_eq!(moved.generation, first.generation + 1);
        assert_eq!(moved.workers[0].user.as_deref(), Some("acct.a"));
    }
}
