//! StratumHub → its children, driven by `kube::runtime::Controller`: the Deployment, the stratum
//! and metrics Services, the routing ConfigMap, the PodDisruptionBudget, the PodMonitor (only when
//! the `monitoring.coreos.com` API exists) and the admin-token Secret.
//!
//! The objects themselves are the pure renderer's ([`crate::scheduler::render::kubernetes`]);
//! this module only applies them: server-side apply with one field manager, each carrying the
//! StratumHub as controller owner so deleting the hub garbage-collects them. Children of the hub
//! that the current spec no longer asks for (found by the hub's labels) are deleted. The admin
//! token is random, created once, and never regenerated while the Secret exists (the operator
//! needs only `get` and `create` on Secrets).
//!
//! The routing document inside the ConfigMap is the scheduling loop's latest for the hub
//! ([`super::Shared::routing`]); until the loop has rendered one, the hub waits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::{ControllerError, FIELD_MANAGER, Shared};
use crate::crd::StratumHub;
use crate::scheduler::render::kubernetes::{
    ADMIN_TOKEN_KEY, HubObjects, HubRenderOptions, admin_token_secret_name, hub_labels, render_hub,
};

/// How long a hub waits between two full reconciles when nothing changes.
pub const RESYNC: Duration = Duration::from_secs(300);

/// The PodMonitor API (prometheus-operator).
pub fn pod_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PodMonitor"),
        "podmonitors",
    )
}

/// Whether the cluster serves `monitoring.coreos.com/v1` PodMonitors (discovered, not assumed).
pub async fn pod_monitor_api_exists(client: &Client) -> bool {
    match client
        .list_api_group_resources("monitoring.coreos.com/v1")
        .await
    {
        Ok(list) => list.resources.iter().any(|r| r.name == "podmonitors"),
        Err(_) => false,
    }
}

/// Label selector of every child of hub `name`.
pub fn children_selector(name: &str) -> String {
    hub_labels(name)
        .into_iter()
        .filter(|(k, _)| k == "app.kubernetes.io/instance" || k == "app.kubernetes.io/managed-by")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A fresh admin token: 32 random bytes, hex.
pub fn new_admin_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The admin-token Secret of `hub`: created with a random token when absent, otherwise left
/// exactly as it is.
pub async fn ensure_admin_token(
    client: &Client,
    hub: &StratumHub,
    shared: &Shared,
) -> Result<(), ControllerError> {
    let ns = hub.namespace().unwrap_or_default();
    let name = admin_token_secret_name(&hub.name_any());
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    if api.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(hub_labels(&hub.name_any())),
            owner_references: hub.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(
            ADMIN_TOKEN_KEY.to_owned(),
            new_admin_token(),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            shared.metrics.write("Secret", "create");
            info!(hub = %format!("{ns}/{}", hub.name_any()), secret = %name, "created the hub's admin token");
            Ok(())
        }
        // Someone (another replica, a user) created it meanwhile: keep theirs.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn apply<K>(
    client: &Client,
    ns: &str,
    obj: &K,
    shared: &Shared,
) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    shared.metrics.write(&K::kind(&()), "apply");
    Ok(())
}

/// Deletes children of kind `K` labelled for `hub` whose names are not in `keep`.
async fn delete_stale<K>(
    client: &Client,
    ns: &str,
    hub: &str,
    keep: &BTreeSet<String>,
    shared: &Shared,
) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&children_selector(hub)))
        .await?;
    for o in list.items {
        let name = o.meta().name.clone().unwrap_or_default();
        if !keep.contains(&name) {
            api.delete(&name, &DeleteParams::background()).await?;
            shared.metrics.write(&K::kind(&()), "delete");
            info!(hub = %format!("{ns}/{hub}"), kind = %K::kind(&()), object = %name,
                "deleted a child the StratumHub no longer asks for");
        }
    }
    Ok(())
}

/// Applies every child of `hub` for `routing`, and deletes children it no longer asks for.
pub async fn apply_children(
    client: &Client,
    hub: &StratumHub,
    objects: &HubObjects,
    shared: &Shared,
) -> Result<(), ControllerError> {
    let ns = hub.namespace().unwrap_or_default();
    let name = hub.name_any();
    ensure_admin_token(client, hub, shared).await?;
    apply(client, &ns, &objects.routing_config_map, shared).await?;
    apply(client, &ns, &objects.stratum_service, shared).await?;
    apply(client, &ns, &objects.metrics_service, shared).await?;
    apply(client, &ns, &objects.deployment, shared).await?;
    apply(client, &ns, &objects.pod_disruption_budget, shared).await?;
    let names =
        |o: &[Option<String>]| -> BTreeSet<String> { o.iter().flatten().cloned().collect() };
    delete_stale::<Service>(
        client,
        &ns,
        &name,
        &names(&[
            objects.stratum_service.metadata.name.clone(),
            objects.metrics_service.metadata.name.clone(),
        ]),
        shared,
    )
    .await?;
    delete_stale::<ConfigMap>(
        client,
        &ns,
        &name,
        &names(std::slice::from_ref(
            &objects.routing_config_map.metadata.name,
        )),
        shared,
    )
    .await?;
    delete_stale::<Deployment>(
        client,
        &ns,
        &name,
        &names(std::slice::from_ref(&objects.deployment.metadata.name)),
        shared,
    )
    .await?;
    delete_stale::<PodDisruptionBudget>(
        client,
        &ns,
        &name,
        &names(std::slice::from_ref(
            &objects.pod_disruption_budget.metadata.name,
        )),
        shared,
    )
    .await?;
    if shared.pod_monitor_api {
        let ar = pod_monitor_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        match &objects.pod_monitor {
            Some(pm) => {
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(pm),
                )
                .await?;
                shared.metrics.write("PodMonitor", "apply");
            }
            None => match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => shared.metrics.write("PodMonitor", "delete"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    Ok(())
}

/// Renders the children of `hub` with the routing the scheduling loop holds for it.
pub fn render_children(
    hub: &StratumHub,
    shared: &Shared,
) -> Option<Result<HubObjects, ControllerError>> {
    let key = (hub.namespace().unwrap_or_default(), hub.name_any());
    let routing = shared.routing.lock().ok()?.get(&key).cloned()?;
    let opts = HubRenderOptions {
        pod_monitor: shared.pod_monitor_api,
        default_image: shared.default_image.clone(),
    };
    Some(render_hub(hub, &routing, &opts).map_err(ControllerError::from))
}

/// The Controller's reconcile of one StratumHub.
pub async fn reconcile(
    hub: Arc<StratumHub>,
    ctx: Arc<super::Context>,
) -> Result<Action, ControllerError> {
    let key = format!("{}/{}", hub.namespace().unwrap_or_default(), hub.name_any());
    if hub.meta().deletion_timestamp.is_some() {
        // Owner references let the garbage collector delete the children.
        return Ok(Action::await_change());
    }
    let Some(objects) = render_children(&hub, &ctx.shared) else {
        // The scheduling loop has not rendered this hub's routing yet (first cycle).
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let hub_key = (hub.namespace().unwrap_or_default(), hub.name_any());
    let result = match objects {
        Ok(o) => {
            ctx.shared.set_render_error(hub_key, None);
            apply_children(&ctx.client, &hub, &o, &ctx.shared).await
        }
        Err(e) => {
            ctx.shared.set_render_error(hub_key, Some(e.to_string()));
            Err(e)
        }
    };
    ctx.shared.metrics.reconcile("StratumHub", result.is_ok());
    match result {
        Ok(()) => Ok(Action::requeue(RESYNC)),
        Err(e) => {
            warn!(hub = %key, error = %e, "could not apply the hub's objects; retrying");
            Err(e)
        }
    }
}

/// Retry a failed hub reconcile after a short pause.
pub fn error_policy(
    _hub: Arc<StratumHub>,
    _e: &ControllerError,
    _ctx: Arc<super::Context>,
) -> Action {
    Action::requeue(Duration::from_secs(5))
}
