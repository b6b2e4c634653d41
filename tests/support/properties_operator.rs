//! The properties of the operator's parsers of outside input (local-mode manifests, quantity
//! grammars); see `properties.rs` for how they are used.

use super::properties::check_hub_quantities;

/// A folder of local-mode manifests with this one file: never a panic, and an error names the
/// file.
pub fn check_manifests(data: &[u8]) {
    use hashsched_operator::local::manifests::{ManifestsError, Source, load};
    let text = String::from_utf8_lossy(data).into_owned();
    let sources = [Source {
        name: "fuzz.yaml".into(),
        text,
    }];
    if let Err(ManifestsError::Invalid(problems)) = load(&sources) {
        assert!(!problems.is_empty(), "an invalid folder names its problems");
        for p in problems {
            assert_eq!(p.file, "fuzz.yaml");
        }
    }
}

/// The quantity grammars (hashrate, duration, percentage) and the hub's own small grammars:
/// never a panic; what parses prints in a form that parses back to the same value.
pub fn check_quantities(data: &[u8]) {
    use hashsched_operator::quantity::{Duration, Hashrate, Percentage};
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = s.parse::<Hashrate>() {
        assert_eq!(h.to_string().parse::<Hashrate>(), Ok(h), "hashrate {s:?}");
    }
    if let Ok(d) = s.parse::<Duration>() {
        assert_eq!(d.to_string().parse::<Duration>(), Ok(d), "duration {s:?}");
    }
    if let Ok(p) = s.parse::<Percentage>() {
        assert_eq!(
            p.to_string().parse::<Percentage>(),
            Ok(p),
            "percentage {s:?}"
        );
    }
    check_hub_quantities(data);
}
