//! The properties of the operator's parsers of outside input (local-mode manifests, quantity
//! grammars); see `properties.rs` for how they are used.

use super::properties::check_hub_quantities;

/// A folder of local-mode manifests with this one file: never a panic, and an error names the
/// file.
pub fn check_manifests(data: &[u8]) {
    use hashsched_operator::local::load::{ManifestsError, Source, load};
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

/// The Prometheus text the operator reads from every hub pod: never a panic (parser and the
/// facts built from its samples); the samples of a page that parses, written again in canonical
/// form, parse back to the same samples (parse ∘ encode = id).
pub fn check_exposition(data: &[u8]) {
    use hashsched_operator::controller::exposition::{Sample, hub_report, parse};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(samples) = parse(text) else {
        return;
    };
    let _ = hub_report(&samples);
    fn value(v: f64) -> String {
        if v.is_nan() {
            "NaN".into()
        } else if v == f64::INFINITY {
            "+Inf".into()
        } else if v == f64::NEG_INFINITY {
            "-Inf".into()
        } else {
            format!("{v:?}")
        }
    }
    fn escape(s: &str) -> String {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }
    let encoded: String = samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            format!("{}{{{}}} {}\n", s.name, labels.join(","), value(s.value))
        })
        .collect();
    let again = parse(&encoded).unwrap_or_else(|e| panic!("re-encoded page fails: {e}\n{encoded}"));
    let same = |a: &Sample, b: &Sample| {
        a.name == b.name
            && a.labels == b.labels
            && (a.value == b.value || (a.value.is_nan() && b.value.is_nan()))
    };
    assert_eq!(again.len(), samples.len(), "{encoded}");
    for (a, b) in samples.iter().zip(&again) {
        assert!(same(a, b), "{a:?} became {b:?}");
    }
}
