//! The demo's manifests: `examples/demo/*.yaml`, embedded in the binary so `hashsched demo` runs
//! from any directory, with the pool URLs pointed at the simulated pools' real ports.

use crate::local::Source;

/// The files of `examples/demo/`, in apply order.
pub const FILES: &[(&str, &str)] = &[
    (
        "00-namespace.yaml",
        include_str!("../../../examples/demo/00-namespace.yaml"),
    ),
    (
        "10-hub.yaml",
        include_str!("../../../examples/demo/10-hub.yaml"),
    ),
    (
        "20-pools.yaml",
        include_str!("../../../examples/demo/20-pools.yaml"),
    ),
    (
        "30-customers.yaml",
        include_str!("../../../examples/demo/30-customers.yaml"),
    ),
    (
        "40-workers.yaml",
        include_str!("../../../examples/demo/40-workers.yaml"),
    ),
    (
        "50-contracts.yaml",
        include_str!("../../../examples/demo/50-contracts.yaml"),
    ),
];

/// PoolEndpoint name and the URL `examples/demo/20-pools.yaml` gives it.
pub const POOLS: &[(&str, &str)] = &[
    ("house-pool", "stratum+tcp://127.0.0.1:3401"),
    ("acme-primary", "stratum+tcp://127.0.0.1:3402"),
    ("acme-backup", "stratum+tcp://127.0.0.1:3403"),
    ("borealis-pool", "stratum+tcp://127.0.0.1:3404"),
];

/// The embedded manifests with each pool's URL replaced by `url_of(pool name)`.
pub fn sources(url_of: impl Fn(&str) -> Option<String>) -> Vec<Source> {
    FILES
        .iter()
        .map(|(name, text)| {
            let mut text = (*text).to_owned();
            for (pool, placeholder) in POOLS {
                if let Some(url) = url_of(pool) {
                    text = text.replace(&format!("url: {placeholder}\n"), &format!("url: {url}\n"));
                }
            }
            Source {
                name: format!("examples/demo/{name}"),
                text,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_manifests_load_and_urls_are_rewritten() {
        let m = crate::local::load::load(&sources(|p| {
            Some(format!(
                "stratum+tcp://127.0.0.1:{}",
                40000 + POOLS.iter().position(|(n, _)| *n == p).unwrap_or(99)
            ))
        }))
        .unwrap();
        assert_eq!(m.workers.len(), 12);
        assert_eq!(m.contracts.len(), 2);
        for (i, (name, _)) in POOLS.iter().enumerate() {
            let p = m
                .pools
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(*name))
                .unwrap();
            assert_eq!(p.spec.url, format!("stratum+tcp://127.0.0.1:{}", 40000 + i));
        }
    }
}
