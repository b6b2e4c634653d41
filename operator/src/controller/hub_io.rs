//! Where a StratumHub's pods are reached and how the operator talks to them: scrape `/metrics`,
//! push the routing document to the admin API.
//!
//! In a cluster the pods are the ready endpoints of the hub's metrics Service (EndpointSlices,
//! ports `metrics` and `admin`). Outside one, `--hub-url NAMESPACE/NAME=METRICS_URL[,ADMIN_URL]`
//! names them (a locally run `stratum-hub`). The transport is a trait so the mocked-apiserver
//! tests can serve pages from the hub's own encoder without sockets.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use hashsched_hub::admin::client::{self, AdminResponse};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// One hub pod (or one `--hub-url`): where its metrics page and admin API answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HubTarget {
    /// Pod name (or the metrics address when there is no pod), for logs and metric labels.
    pub pod: String,
    pub metrics: SocketAddr,
    pub admin: SocketAddr,
}

/// `NAMESPACE/NAME` of a StratumHub.
pub type HubKey = (String, String);

/// Why a `--hub-url` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--hub-url {value:?}: {detail} (expected NAMESPACE/NAME=http://HOST:METRICS_PORT[,http://HOST:ADMIN_PORT])"
)]
pub struct HubUrlError {
    pub value: String,
    pub detail: String,
}

fn addr_of(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .parse::<SocketAddr>()
        .map_err(|_| format!("{authority:?} is not IP:PORT"))
}

/// Parses one `--hub-url` value. Without an admin URL the admin API is taken to answer on the
/// metrics address too.
pub fn parse_hub_url(value: &str) -> Result<(HubKey, HubTarget), HubUrlError> {
    let err = |detail: String| HubUrlError {
        value: value.to_owned(),
        detail,
    };
    let (key, urls) = value.split_once('=').ok_or_else(|| err("no '='".into()))?;
    let (ns, name) = key
        .split_once('/')
        .filter(|(n, m)| !n.is_empty() && !m.is_empty() && !m.contains('/'))
        .ok_or_else(|| err(format!("{key:?} is not NAMESPACE/NAME")))?;
    let mut parts = urls.split(',');
    let metrics_url = parts.next().unwrap_or_default();
    let metrics = addr_of(metrics_url).map_err(err)?;
    let admin = match parts.next() {
        Some(a) => addr_of(a).map_err(err)?,
        None => metrics,
    };
    if parts.next().is_some() {
        return Err(err("more than two URLs".into()));
    }
    Ok((
        (ns.to_owned(), name.to_owned()),
        HubTarget {
            pod: metrics_url.to_owned(),
            metrics,
            admin,
        },
    ))
}

/// The hub pods behind the metrics Service: ready endpoints of its EndpointSlices.
pub fn targets_from_slices(slices: &[EndpointSlice]) -> Vec<HubTarget> {
    let mut out = Vec::new();
    for s in slices {
        let port = |name: &str| {
            s.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
        };
        let (Some(mp), Some(ap)) = (port("metrics"), port("admin")) else {
            continue;
        };
        for e in &s.endpoints {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            let Some(ip) = e
                .addresses
                .first()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            else {
                continue;
            };
            let pod = e
                .target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_else(|| ip.to_string());
            out.push(HubTarget {
                pod,
                metrics: SocketAddr::new(ip, mp),
                admin: SocketAddr::new(ip, ap),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Errors talking to a hub pod.
#[derive(Debug, thiserror::Error)]
pub enum HubIoError {
    #[error("{0}")]
    Client(#[from] client::ClientError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

/// A boxed future, as the [`HubIo`] methods return.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the operator reaches hub pods.
pub trait HubIo: Send + Sync + 'static {
    /// The pod's `/metrics` page.
    fn scrape<'a>(&'a self, target: &'a HubTarget) -> BoxFut<'a, Result<String, HubIoError>>;
    /// `PUT /routing` with the bearer token; the hub's answer.
    fn push<'a>(
        &'a self,
        target: &'a HubTarget,
        token: &'a str,
        document: &'a [u8],
    ) -> BoxFut<'a, Result<AdminResponse, HubIoError>>;
}

/// Plain HTTP/1.1 to the pods (the hub's own admin client), with a deadline per request.
#[derive(Debug, Clone)]
pub struct HttpHubIo {
    pub timeout: Duration,
}

impl Default for HttpHubIo {
    fn default() -> Self {
        HttpHubIo {
            timeout: Duration::from_secs(3),
        }
    }
}

impl HubIo for HttpHubIo {
    fn scrape<'a>(&'a self, target: &'a HubTarget) -> BoxFut<'a, Result<String, HubIoError>> {
        Box::pin(async move {
            let r = tokio::time::timeout(
                self.timeout,
                client::request(target.metrics, "GET", "/metrics", None, b""),
            )
            .await
            .map_err(|_| HubIoError::Timeout(self.timeout))??;
            if r.status != 200 {
                return Err(HubIoError::Status {
                    status: r.status,
                    body: r.body.chars().take(200).collect(),
                });
            }
            Ok(r.body)
        })
    }

    fn push<'a>(
        &'a self,
        target: &'a HubTarget,
        token: &'a str,
        document: &'a [u8],
    ) -> BoxFut<'a, Result<AdminResponse, HubIoError>> {
        Box::pin(async move {
            let r = tokio::time::timeout(
                self.timeout,
                client::push_routing(target.admin, token, document),
            )
            .await
            .map_err(|_| HubIoError::Timeout(self.timeout))??;
            Ok(r)
        })
    }
}

/// `--hub-url` values by hub; a hub named twice gets both targets (two local hubs).
pub fn hub_urls(values: &[String]) -> Result<BTreeMap<HubKey, Vec<HubTarget>>, HubUrlError> {
    let mut out: BTreeMap<HubKey, Vec<HubTarget>> = BTreeMap::new();
    for v in values {
        let (k, t) = parse_hub_url(v)?;
        out.entry(k).or_default().push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};

    #[test]
    fn hub_url_forms() {
        let (k, t) =
            parse_hub_url("mining/site-a=http://127.0.0.1:9100,http://127.0.0.1:9091").unwrap();
        assert_eq!(k, ("mining".into(), "site-a".into()));
        assert_eq!(t.metrics, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(t.admin, "127.0.0.1:9091".parse().unwrap());
        let (_, t) = parse_hub_url("m/h=http://127.0.0.1:9100/metrics").unwrap();
        assert_eq!(t.admin, t.metrics);
        for bad in [
            "site-a=http://127.0.0.1:1",
            "m/h",
            "m/h=127.0.0.1:1",
            "m/h=http://localhost:1",
            "m/h=http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3",
            "/h=http://127.0.0.1:1",
        ] {
            let e = parse_hub_url(bad).unwrap_err();
            assert!(e.to_string().contains("NAMESPACE/NAME="), "{e}");
        }
    }

    #[test]
    fn ready_endpoints_with_both_ports_are_targets() {
        let ep = |ip: &str, ready: bool, pod: &str| Endpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                ..Default::default()
            }),
            target_ref: Some(ObjectReference {
                name: Some(pod.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let port = |n: &str, p: i32| EndpointPort {
            name: Some(n.into()),
            port: Some(p),
            ..Default::default()
        };
        let s = EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: vec![
                ep("10.0.0.2", true, "hub-b"),
                ep("10.0.0.1", true, "hub-a"),
                ep("10.0.0.3", false, "hub-c"),
            ],
            ports: Some(vec![port("metrics", 9100), port("admin", 9091)]),
            ..Default::default()
        };
        let t = targets_from_slices(&[s]);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].pod, "hub-a");
        assert_eq!(t[0].metrics, "10.0.0.1:9100".parse().unwrap());
        assert_eq!(t[0].admin, "10.0.0.1:9091".parse().unwrap());
    }
}
