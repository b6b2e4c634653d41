//! A small in-memory apiserver behind `tower_test::mock` for the operator's reconcile tests: it
//! keeps objects by REST path, applies server-side-apply and merge patches, answers GETs, lists,
//! creates and deletes like the real one does for the verbs the operator uses, and records every
//! request (method, path, query, body) so the tests can assert the exact requests made.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// One request the operator made.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

impl Recorded {
    /// `METHOD path` (for compact assertions).
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<String, Value>,
    pub log: Vec<Recorded>,
    next_uid: u64,
}

/// The fake apiserver; clone it freely (shared state).
#[derive(Clone, Default)]
pub struct FakeApi {
    pub state: Arc<Mutex<State>>,
}

/// JSON merge patch (RFC 7386).
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

/// REST path of a namespaced object, from its apiVersion/kind (plural: lowercase kind + "s",
/// or the known irregular ones).
pub fn path_of(obj: &Value) -> String {
    let api_version = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let ns = obj["metadata"]["namespace"].as_str().unwrap();
    let name = obj["metadata"]["name"].as_str().unwrap();
    format!("{}/{name}", collection(api_version, kind, ns))
}

pub fn collection(api_version: &str, kind: &str, ns: &str) -> String {
    let plural = match kind {
        "PodDisruptionBudget" => "poddisruptionbudgets".to_string(),
        "EndpointSlice" => "endpointslices".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    format!("{prefix}/namespaces/{ns}/{plural}")
}

impl FakeApi {
    /// Starts serving a client; returns it.
    pub fn client(&self) -> kube::Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let resp = me.handle(req).await;
                send.send_response(resp);
            }
        });
        kube::Client::new(service, "default")
    }

    /// Stores an object as if a user had applied it (uid, generation, resourceVersion set).
    pub fn put(&self, mut obj: Value) {
        let mut st = self.state.lock().unwrap();
        st.next_uid += 1;
        let uid = format!("uid-{}", st.next_uid);
        let m = obj["metadata"].as_object_mut().unwrap();
        m.entry("uid").or_insert(json!(uid));
        m.entry("generation").or_insert(json!(1));
        m.insert("resourceVersion".into(), json!("1"));
        st.objects.insert(path_of(&obj), obj);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().objects.remove(path);
    }

    /// Objects under a collection path, deserialized.
    pub fn list<K: serde::de::DeserializeOwned>(&self, collection: &str) -> Vec<K> {
        let st = self.state.lock().unwrap();
        st.objects
            .iter()
            .filter(|(p, _)| p.rsplit_once('/').map(|(c, _)| c) == Some(collection))
            .map(|(_, v)| serde_json::from_value(v.clone()).unwrap())
            .collect()
    }

    /// Takes the recorded requests.
    pub fn take_log(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.state.lock().unwrap().log)
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .or_else(|_| serde_yaml::from_slice(&bytes))
                .unwrap_or(Value::Null)
        };
        let mut st = self.state.lock().unwrap();
        st.log.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: body.clone(),
        });
        match method.as_str() {
            "GET" => {
                if let Some(o) = st.objects.get(&path) {
                    return ok(200, o);
                }
                // A collection: list what is under it.
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|(p, _)| p.rsplit_once('/').map(|(c, _)| c) == Some(path.as_str()))
                    .map(|(_, v)| v.clone())
                    .collect();
                let segs: Vec<&str> = path.split('/').collect();
                let is_collection = segs.len() >= 3 && segs[segs.len() - 3] == "namespaces";
                if is_collection {
                    return ok(
                        200,
                        &json!({"kind": "List", "apiVersion": "v1",
                        "metadata": {"resourceVersion": "1"}, "items": items}),
                    );
                }
                status(404, "NotFound", &format!("{path} not found"))
            }
            "POST" => {
                let mut obj = body;
                if obj["metadata"]["name"].is_null() {
                    let g = obj["metadata"]["generateName"]
                        .as_str()
                        .unwrap_or("obj-")
                        .to_string();
                    let n = st.log.len();
                    obj["metadata"]["name"] = json!(format!("{g}{n}"));
                }
                let p = format!("{path}/{}", obj["metadata"]["name"].as_str().unwrap());
                if st.objects.contains_key(&p) {
                    return status(409, "AlreadyExists", &format!("{p} exists"));
                }
                st.next_uid += 1;
                obj["metadata"]["uid"] = json!(format!("uid-{}", st.next_uid));
                obj["metadata"]["resourceVersion"] = json!("1");
                // Like the apiserver: stringData lands in data (base64).
                if let Some(sd) = obj.get("stringData").cloned() {
                    let mut data = serde_json::Map::new();
                    for (k, v) in sd.as_object().unwrap() {
                        let raw = v.as_str().unwrap().as_bytes();
                        data.insert(k.clone(), json!(base64(raw)));
                    }
                    obj["data"] = Value::Object(data);
                    obj.as_object_mut().unwrap().remove("stringData");
                }
                st.objects.insert(p, obj.clone());
                ok(201, &obj)
            }
            "PATCH" => {
                if let Some(obj_path) = path.strip_suffix("/status") {
                    let Some(obj) = st.objects.get_mut(obj_path) else {
                        return status(404, "NotFound", &format!("{obj_path} not found"));
                    };
                    // Only the status is taken from a status patch.
                    if let Some(s) = body.get("status") {
                        let mut cur = obj.get("status").cloned().unwrap_or(json!({}));
                        merge(&mut cur, s);
                        obj["status"] = cur;
                    }
                    return ok(200, &obj.clone());
                }
                if content_type.starts_with("application/apply-patch") {
                    // Server-side apply by one manager: the applied object becomes the object.
                    let mut obj = body;
                    let prev = st.objects.get(&path).cloned();
                    let uid = prev
                        .as_ref()
                        .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| {
                            st.next_uid += 1;
                            format!("uid-{}", st.next_uid)
                        });
                    obj["metadata"]["uid"] = json!(uid);
                    if let Some(p) = prev
                        && let Some(s) = p.get("status")
                    {
                        obj["status"] = s.clone();
                    }
                    st.objects.insert(path.clone(), obj.clone());
                    return ok(200, &obj);
                }
                let Some(obj) = st.objects.get_mut(&path) else {
                    return status(404, "NotFound", &format!("{path} not found"));
                };
                merge(obj, &body);
                ok(200, &obj.clone())
            }
            "DELETE" => match st.objects.remove(&path) {
                Some(o) => ok(200, &o),
                None => status(404, "NotFound", &format!("{path} not found")),
            },
            _ => status(405, "MethodNotAllowed", &method),
        }
    }
}

/// Standard base64 (what the apiserver stores Secret data as).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
