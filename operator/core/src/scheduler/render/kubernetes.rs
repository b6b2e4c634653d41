//! The Kubernetes objects that run one StratumHub, as pure functions of the StratumHub, its
//! routing document and the pool Secrets that document references.
//!
//! - Deployment `<hub>`: the `stratum-hub` container with its config file (`hub.yaml`) and
//!   routing document (`routing.json`) from the ConfigMap, the admin token from the Secret
//!   `<hub>-admin-token` (key `token`; created by the operator shell, never rendered here with a
//!   value), every pool-password Secret mounted at `/etc/hashsched/secrets/<name>/<key>`,
//!   readiness on `/metrics`, liveness on the stratum port, non-root, read-only root, no caps.
//!   The pod template carries a hash of `hub.yaml` so a config change rolls the pods; routing
//!   changes do not (the hub reloads the file, and the operator also pushes it over the admin API).
//! - Service `<hub>` (stratum, the StratumHub's service type) and `<hub>-metrics` (ClusterIP:
//!   metrics and admin ports, for the operator and Prometheus).
//! - ConfigMap `<hub>-routing`, PodDisruptionBudget `<hub>` (at most one pod down at a time),
//!   and a PodMonitor (`monitoring.coreos.com/v1`) only when the caller says the CRD exists.
//!
//! Every object is owned by the StratumHub (controller owner reference) when it has a uid, and
//! labelled with the `app.kubernetes.io/*` set.

use crate::crd::StratumHub;
use hashsched_contract::config::{AdminConfig, HubConfig, Limits, VardiffConfig};
use hashsched_contract::routing::RoutingDocument;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction,
    Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Image used when the StratumHub does not name one.
pub const DEFAULT_HUB_IMAGE: &str = "ghcr.io/hashsched/hashsched:0.1.0";
/// Admin API port inside the pod (routing pushes; bearer token).
pub const ADMIN_PORT: i32 = 9091;
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/hashsched/hub";
/// Hub config file inside [`CONFIG_DIR`].
pub const HUB_CONFIG_KEY: &str = "hub.yaml";
/// Routing document file inside [`CONFIG_DIR`] (compact JSON: a 10,000-worker document is
/// ~10× faster to write than YAML and a third smaller; the hub reads both).
pub const ROUTING_KEY: &str = "routing.json";
/// Where pool-password Secrets are mounted (`<dir>/<secret>/<key>`, what the hub's SecretStore reads).
pub const SECRETS_DIR: &str = "/etc/hashsched/secrets";
/// Where the admin-token Secret is mounted.
pub const ADMIN_TOKEN_DIR: &str = "/etc/hashsched/admin";
/// Key of the admin token in its Secret.
pub const ADMIN_TOKEN_KEY: &str = "token";
/// Pod template annotation with the hash of `hub.yaml`.
pub const CONFIG_HASH_ANNOTATION: &str = "hashsched.io/config-hash";
/// Largest ConfigMap the apiserver stores (1 MiB, less room for metadata).
pub const MAX_CONFIG_MAP_BYTES: usize = 1_000_000;
/// Unprivileged user the hub runs as (distroless "nonroot").
pub const HUB_UID: i64 = 65532;

#[derive(Debug, Clone, Error, PartialEq)]
pub enum RenderError {
    #[error("StratumHub has no metadata.name")]
    NoName,
    #[error("hub config does not serialize: {0}")]
    HubConfig(String),
    #[error("routing document does not serialize: {0}")]
    Routing(String),
}

/// What else the objects depend on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HubRenderOptions {
    /// Render the PodMonitor (the caller checked that the CRD is installed).
    pub pod_monitor: bool,
    /// Image when the StratumHub does not set one (e.g. the operator's own version).
    pub default_image: Option<String>,
}

/// Everything one StratumHub becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct HubObjects {
    pub deployment: Deployment,
    pub stratum_service: Service,
    pub metrics_service: Service,
    pub routing_config_map: ConfigMap,
    pub pod_disruption_budget: PodDisruptionBudget,
    /// `monitoring.coreos.com/v1` PodMonitor, when asked for.
    pub pod_monitor: Option<serde_json::Value>,
    /// Name of the Secret (key [`ADMIN_TOKEN_KEY`]) the Deployment expects.
    pub admin_token_secret: String,
}

impl HubObjects {
    /// Bytes of data in the routing ConfigMap.
    pub fn config_map_bytes(&self) -> usize {
        self.routing_config_map
            .data
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum()
    }

    /// Whether the ConfigMap fits the apiserver's limit. A hub with ~6,000 or more workers does
    /// not: the routing then has to reach it over the admin API (the ConfigMap is only the
    /// bootstrap copy), and the caller should say so in the StratumHub's conditions.
    pub fn config_map_fits(&self) -> bool {
        self.config_map_bytes() <= MAX_CONFIG_MAP_BYTES
    }
}

/// Standard labels of every object of hub `name`.
pub fn hub_labels(name: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(name);
    l.insert("app.kubernetes.io/component".into(), "stratum-hub".into());
    l.insert("app.kubernetes.io/part-of".into(), "hashsched".into());
    l.insert(
        "app.kubernetes.io/managed-by".into(),
        "hashsched-operator".into(),
    );
    l
}

/// The subset that selects the hub's pods.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "stratum-hub".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
    ])
}

pub fn admin_token_secret_name(hub: &str) -> String {
    format!("{hub}-admin-token")
}

pub fn routing_config_map_name(hub: &str) -> String {
    format!("{hub}-routing")
}

pub fn metrics_service_name(hub: &str) -> String {
    format!("{hub}-metrics")
}

/// FNV-1a: a stable content hash for the config annotation (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The hub's config file for this StratumHub, built from the hub's own config types (so a field
/// the hub renames or drops fails to compile here instead of failing in a pod at start-up).
pub fn hub_config(hub: &StratumHub) -> HubConfig {
    let spec = &hub.spec;
    let mut limits = Limits::default();
    if let Some(max) = spec.max_connections {
        limits.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
    }
    HubConfig {
        listen: format!("0.0.0.0:{}", spec.stratum_port()),
        metrics: Some(format!("0.0.0.0:{}", spec.metrics_port())),
        admin: Some(AdminConfig {
            listen: format!("0.0.0.0:{ADMIN_PORT}"),
            token_file: Some(format!("{ADMIN_TOKEN_DIR}/{ADMIN_TOKEN_KEY}").into()),
        }),
        routing: None,
        routing_file: Some(format!("{CONFIG_DIR}/{ROUTING_KEY}").into()),
        secrets_dir: Some(SECRETS_DIR.into()),
        vardiff: VardiffConfig {
            share_interval: spec.share_interval(),
            ..VardiffConfig::default()
        },
        limits,
        ..HubConfig::default()
    }
}

fn meta(hub: &StratumHub, name: String, owner: &Option<OwnerReference>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: hub.metadata.namespace.clone(),
        labels: Some(hub_labels(hub.metadata.name.as_deref().unwrap_or_default())),
        owner_references: owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Render all objects for `hub` with `routing` as its routing document.
pub fn render_hub(
    hub: &StratumHub,
    routing: &RoutingDocument,
    opts: &HubRenderOptions,
) -> Result<HubObjects, RenderError> {
    let name = hub.metadata.name.clone().ok_or(RenderError::NoName)?;
    let owner = hub
        .metadata
        .uid
        .as_ref()
        .and_then(|_| hub.controller_owner_ref(&()));
    let spec = &hub.spec;
    let config = hub_config(hub);
    let config_yaml =
        serde_yaml::to_string(&config).map_err(|e| RenderError::HubConfig(e.to_string()))?;
    let routing_json =
        serde_json::to_string(routing).map_err(|e| RenderError::Routing(e.to_string()))?;

    let routing_config_map = ConfigMap {
        metadata: meta(hub, routing_config_map_name(&name), &owner),
        data: Some(BTreeMap::from([
            (HUB_CONFIG_KEY.to_string(), config_yaml.clone()),
            (ROUTING_KEY.to_string(), routing_json),
        ])),
        ..ConfigMap::default()
    };

    // Secrets referenced by the document (pool passwords, pool CA bundles), each mounted as a
    // directory.
    let secrets: BTreeSet<String> = routing
        .pools
        .iter()
        .flat_map(|p| {
            let password = p.password.as_ref().and_then(|r| r.secret_ref.as_ref());
            let ca = p.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref());
            password.into_iter().chain(ca).map(|s| s.name.clone())
        })
        .collect();
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: routing_config_map_name(&name),
                ..Default::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "admin-token".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(admin_token_secret_name(&name)),
                ..Default::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "admin-token".into(),
            mount_path: ADMIN_TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ];
    for (i, secret) in secrets.iter().enumerate() {
        let vol = format!("pool-secret-{i}");
        volumes.push(Volume {
            name: vol.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                ..Default::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: vol,
            mount_path: format!("{SECRETS_DIR}/{secret}"),
            read_only: Some(true),
            ..Default::default()
        });
    }

    let port = |name: &str, p: i32| ContainerPort {
        name: Some(name.into()),
        container_port: p,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    let container = Container {
        name: "stratum-hub".into(),
        image: Some(
            spec.image
                .clone()
                .or_else(|| opts.default_image.clone())
                .unwrap_or_else(|| DEFAULT_HUB_IMAGE.into()),
        ),
        args: Some(vec![
            "--config".into(),
            format!("{CONFIG_DIR}/{HUB_CONFIG_KEY}"),
        ]),
        ports: Some(vec![
            port("stratum", spec.stratum_port()),
            port("metrics", spec.metrics_port()),
            port("admin", ADMIN_PORT),
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/metrics".into()),
                port: IntOrString::String("metrics".into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("stratum".into()),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let selector = selector_labels(&name);
    let mut pod_labels = hub_labels(&name);
    pod_labels.extend(selector.clone());
    let deployment = Deployment {
        metadata: meta(hub, name.clone(), &owner),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_string(),
                        format!("{:016x}", fnv1a(config_yaml.as_bytes())),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(HUB_UID),
                        run_as_group: Some(HUB_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    // Miners reconnect on their own; give in-flight shares a moment to settle.
                    termination_grace_period_seconds: Some(30),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };

    let svc_port = |name: &str, p: i32| ServicePort {
        name: Some(name.into()),
        port: p,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    let stratum_service = Service {
        metadata: meta(hub, name.clone(), &owner),
        spec: Some(ServiceSpec {
            type_: Some(spec.service_type().as_str().into()),
            selector: Some(selector.clone()),
            ports: Some(vec![svc_port("stratum", spec.stratum_port())]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let metrics_service = Service {
        metadata: meta(hub, metrics_service_name(&name), &owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector.clone()),
            ports: Some(vec![
                svc_port("metrics", spec.metrics_port()),
                svc_port("admin", ADMIN_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let pod_disruption_budget = PodDisruptionBudget {
        metadata: meta(hub, name.clone(), &owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    };
    let pod_monitor = opts.pod_monitor.then(|| {
        let m = meta(hub, name.clone(), &owner);
        serde_json::json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": m,
            "spec": {
                "selector": { "matchLabels": selector },
                "podMetricsEndpoints": [{ "port": "metrics", "path": "/metrics", "interval": "15s" }],
            },
        })
    });
    Ok(HubObjects {
        deployment,
        stratum_service,
        metrics_service,
        routing_config_map,
        pod_disruption_budget,
        pod_monitor,
        admin_token_secret: admin_token_secret_name(&name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::StratumHubSpec;
    use hashsched_contract::routing::{PasswordRef, PoolSpec, ROUTING_API_VERSION};

    fn hub() -> StratumHub {
        let mut h = StratumHub::new(
            "site-a",
            StratumHubSpec {
                replicas: Some(3),
                image: None,
                stratum_port: None,
                metrics_port: None,
                service_type: None,
                share_interval: None,
                unknown_workers: None,
                quarantine_pool: None,
                house_pools: vec!["house".into()],
                max_connections: Some(20_000),
                resources: None,
            },
        );
        h.metadata.namespace = Some("mining".into());
        h.metadata.uid = Some("1234-uid".into());
        h
    }

    fn routing() -> RoutingDocument {
        serde_yaml::from_str::<RoutingDocument>(&format!(
            "apiVersion: {ROUTING_API_VERSION}\ngeneration: 7\npools: []\n"
        ))
        .map(|mut d| {
            d.pools = vec![PoolSpec {
                name: "house".into(),
                url: "stratum+tcp://house.example:3333".into(),
                user: "farm".into(),
                worker_name_template: "{user}.{worker}".into(),
                password: Some(PasswordRef::secret("house-pool", "password")),
                tls: None,
            }];
            d
        })
        .unwrap()
    }

    fn mount_paths(c: &k8s_openapi::api::core::v1::Container) -> Vec<&str> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect()
    }

    #[test]
    fn mounts_the_ca_secret_of_a_tls_pool_once() {
        // A TLS pool's CA Secret is mounted next to the password Secrets (once, even when
        // several pools share it).
        let mut r = routing();
        let mut tls_pool = r.pools[0].clone();
        tls_pool.name = "house-ssl".into();
        tls_pool.url = "stratum+ssl://house.example:443".into();
        tls_pool.tls = Some(hashsched_contract::routing::PoolTlsSpec {
            ca_secret_ref: Some(hashsched_contract::routing::SecretKeyRef {
                name: "house-ca".into(),
                key: "ca.crt".into(),
            }),
            ..Default::default()
        });
        r.pools.push(tls_pool.clone());
        tls_pool.name = "house-ssl-2".into();
        r.pools.push(tls_pool);
        let o = render_hub(&hub(), &r, &HubRenderOptions::default()).unwrap();
        let pod = o.deployment.spec.as_ref().unwrap().template.spec.as_ref();
        let mounts = mount_paths(&pod.unwrap().containers[0]);
        let ca_mounts = mounts
            .iter()
            .filter(|m| **m == "/etc/hashsched/secrets/house-ca")
            .count();
        assert_eq!(ca_mounts, 1, "{mounts:?}");
        assert!(
            mounts.contains(&"/etc/hashsched/secrets/house-pool"),
            "{mounts:?}"
        );
    }

    #[test]
    fn renders_a_hardened_owned_deployment_with_config_and_secrets() {
        let o = render_hub(&hub(), &routing(), &HubRenderOptions::default()).unwrap();
        let d = &o.deployment;
        assert_eq!(d.metadata.namespace.as_deref(), Some("mining"));
        let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("StratumHub", "site-a", Some(true))
        );
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        let pod = spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(
            (sc.run_as_non_root, sc.read_only_root_filesystem),
            (Some(true), Some(true))
        );
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
        let mounts = mount_paths(c);
        assert!(
            mounts.contains(&"/etc/hashsched/secrets/house-pool"),
            "{mounts:?}"
        );
        assert!(mounts.contains(&CONFIG_DIR) && mounts.contains(&ADMIN_TOKEN_DIR));
        let labels = d.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/instance"], "site-a");
        // The selector matches the pod template.
        let sel = spec.selector.match_labels.as_ref().unwrap();
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        // The config file is one the hub accepts, and points at the mounted routing file.
        let cm = o.routing_config_map.data.as_ref().unwrap();
        let cfg: HubConfig = serde_yaml::from_str(&cm[HUB_CONFIG_KEY]).unwrap();
        assert_eq!(
            cfg.routing_file.as_deref(),
            Some(std::path::Path::new("/etc/hashsched/hub/routing.json"))
        );
        let back: RoutingDocument = serde_json::from_str(&cm[ROUTING_KEY]).unwrap();
        assert_eq!(back, routing());
        assert_eq!(o.admin_token_secret, "site-a-admin-token");
        assert!(o.pod_monitor.is_none());
        assert!(o.config_map_fits() && o.config_map_bytes() > 100);
        let pdb = o.pod_disruption_budget.spec.as_ref().unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    }

    #[test]
    fn pod_monitor_only_when_asked_and_rendering_is_deterministic() {
        let opts = HubRenderOptions {
            pod_monitor: true,
            default_image: None,
        };
        let a = render_hub(&hub(), &routing(), &opts).unwrap();
        let b = render_hub(&hub(), &routing(), &opts).unwrap();
        assert_eq!(a, b);
        let pm = a.pod_monitor.unwrap();
        assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
        assert_eq!(pm["metadata"]["ownerReferences"][0]["kind"], "StratumHub");
        // A routing change does not roll the pods; a config change does.
        let mut r2 = routing();
        r2.generation = 8;
        let c = render_hub(&hub(), &r2, &opts).unwrap();
        let hash = |o: &HubObjects| {
            o.deployment
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .clone()
        };
        assert_eq!(hash(&c), hash(&b));
        let mut h2 = hub();
        h2.spec.share_interval = Some(crate::quantity::Duration::from_secs(5));
        assert_ne!(hash(&render_hub(&h2, &routing(), &opts).unwrap()), hash(&b));
        // No uid (local mode): no owner references, still renders.
        let mut local = hub();
        local.metadata.uid = None;
        assert!(
            render_hub(&local, &routing(), &opts)
                .unwrap()
                .deployment
                .metadata
                .owner_references
                .is_none()
        );
    }
}
