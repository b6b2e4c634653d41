//! Against a real kube-apiserver (only when `HASHSCHED_E2E_KUBECONFIG` names a kubeconfig):
//! the generated CRDs are accepted and become Established, every example is accepted by
//! server-side apply, and invalid objects are refused at admission with the rule's message.
//! Without the variable the test is listed as ignored with its reason; run with
//! `--include-ignored` it fails saying what is missing (never a silent pass).

use std::time::{Duration, Instant};

use hashsched_operator::crd;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::{Value, json};

const MANAGER: &str = "hashsched-e2e";

async fn client() -> Client {
    let Some(path) = std::env::var_os("HASHSCHED_E2E_KUBECONFIG") else {
        panic!("HASHSCHED_E2E_KUBECONFIG is not set: this suite needs a real cluster");
    };
    let kubeconfig = Kubeconfig::read_from(&path).expect("readable kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("usable kubeconfig");
    Client::try_from(config).expect("client")
}

/// The API for one manifest, from its apiVersion and kind (plural: lowercase kind + "s", true for
/// every kind the examples use).
fn api_for(client: &Client, doc: &Value) -> Api<DynamicObject> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = doc["kind"].as_str().unwrap_or_default();
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let plural = format!("{}s", kind.to_lowercase());
    let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
    match doc.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn wait_established(crds: &Api<CustomResourceDefinition>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let crd = crds.get(name).await.expect("CRD readable");
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} not Established after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs a real cluster: set HASHSCHED_E2E_KUBECONFIG and run with --include-ignored"]
async fn crds_and_examples_are_accepted_by_a_real_apiserver() {
    let client = client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply(MANAGER).force();
    for c in crd::all_crds() {
        let name = c.metadata.name.clone().unwrap();
        crds.patch(&name, &apply, &Patch::Apply(&c))
            .await
            .unwrap_or_else(|e| panic!("CRD {name} refused: {e}"));
        wait_established(&crds, &name).await;
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for de in serde_yaml::Deserializer::from_str(&text) {
            let yaml = <serde_yaml::Value as serde::Deserialize>::deserialize(de).unwrap();
            if yaml.is_null() {
                continue;
            }
            let doc: Value = serde_json::to_value(&yaml).unwrap();
            let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
            api_for(&client, &doc)
                .patch(&name, &apply, &Patch::Apply(&doc))
                .await
                .unwrap_or_else(|e| panic!("{}: {name} refused: {e}", path.display()));
        }
    }

    // Refusals at admission, with the rule's own message (dry run: nothing is stored).
    let refusals = [
        (
            json!({"customer": "acme", "mode": "Threshold"}),
            "mode Threshold needs spec.contractedHashrate",
        ),
        (
            json!({"customer": "acme", "mode": "Rental", "workers": ["a"]}),
            "Unsupported value",
        ),
        (
            json!({"customer": "acme", "mode": "Threshold", "contractedHashrate": -5}),
            "should be greater than or equal to 0",
        ),
        (
            json!({"customer": "acme", "mode": "MinerToMiner", "workers": ["a"],
                "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
            "spec.end must be after spec.start",
        ),
    ];
    for (spec, needle) in refusals {
        let doc = json!({
            "apiVersion": "hashsched.io/v1alpha1",
            "kind": "RentalContract",
            "metadata": {"name": "refused", "namespace": "mining"},
            "spec": spec,
        });
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let err = api_for(&client, &doc)
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                &obj,
            )
            .await
            .expect_err("invalid object must be refused");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{spec}: {msg:?} lacks {needle:?}");
    }
}
