//! Backdoor detection on the real fixture zoo (`tests/fixtures/models/manifest.json`), with the
//! ONNX models run in-process by tract: every backdoored model is flagged by the trigger search
//! with its true target class, no clean model is flagged, STRIP lets few triggered inputs
//! through at the FRR it measured, and reports repeat exactly for a seed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array1, Array2};
use probes::classifier::{Classifier, Geometry, ValueRange};
use probes::strip::{Strip, StripConfig, StripReport};
use probes::trigger::{self, TriggerConfig, TriggerReport};
use serde_json::Value;
#[path = "common/tract_classifier.rs"]
mod tract_classifier;
use tract_classifier::TractClassifier;

/// Bound on STRIP's false acceptance rate (triggered inputs not flagged) at a 1% FRR target for
/// models poisoned at 5% or more. The issue measured at most 6% on 7 of 8 small MNIST models
/// with sum-clip; here 7 of the 8 such fixtures stay at or under 4.5% at this test's seed (10%
/// at worst over seeds 1 to 6), and the blended-stripes MLP lets 10-17.5% through (sum-clip
/// superimposition adds a whole digit on top of a 0.2-strength pattern). 0.25 keeps every one
/// of them with little room for anything worse.
const MAX_FAR: f64 = 0.25;
/// Bound for models poisoned at 1%: their backdoor is weakly implanted (attack success 0.88 to
/// 0.90), superimposing a clean digit often outvotes the trigger, and STRIP lets most triggered
/// inputs of the checker-patch MLP through (72-89% over seeds 1 to 6, 74.5% at this test's
/// seed; the white-patch one 8-20%). The bound asks only that STRIP still flags triggered
/// inputs at five times the clean 1% rate; the trigger search is what detects these models.
const MAX_FAR_WEAK: f64 = 0.95;
/// Poison rate under which a fixture counts as weakly implanted.
const WEAK_POISON: f64 = 0.05;
/// Bound on the mean FAR over all backdoored fixtures.
const MAX_MEAN_FAR: f64 = 0.15;
/// Bound on the FRR measured on held-out clean inputs for the 1% target: the threshold is the
/// 1% quantile of 330..400 calibration entropies, measured on as many held-out ones. The
/// quantile's own sampling error gives a true FRR of 1-2%, and counting on 330 inputs adds a
/// binomial standard deviation of about 0.7%; 4% is three of those above 2%, so only a
/// systematic miss (a wrong quantile, a biased split) fails.
const MAX_FRR: f64 = 0.04;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    root().join("tests/fixtures/models")
}

fn manifest() -> Value {
    let p = models_dir().join("manifest.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("manifest.json parses")
}

fn read_x(rel: &str) -> Vec<f32> {
    let a: Array2<f32> =
        ndarray_npy::read_npy(models_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    a.iter().copied().collect()
}

fn read_y(rel: &str) -> Vec<i64> {
    let a: Array1<i64> =
        ndarray_npy::read_npy(models_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    a.to_vec()
}

struct Outcome {
    name: String,
    target: Option<usize>,
    poison_rate: f64,
    strip: Option<(StripReport, f64)>,
    trigger: TriggerReport,
    trigger_json: String,
    secs: f64,
}

fn strip_on_triggered(
    model: &mut TractClassifier,
    pool: &[f32],
    range: ValueRange,
    triggered: &[f32],
    seed: u64,
) -> (StripReport, f64) {
    let config = StripConfig {
        seed,
        ..Default::default()
    };
    let mut strip = Strip::new(config, pool, model.input_len(), range).expect("strip config");
    let cal = strip.calibrate(model).expect("calibration");
    let report = strip.check(model, &cal, triggered).expect("strip check");
    let far = 1.0 - report.flagged as f64 / report.inputs.len() as f64;
    (report, far)
}

fn run_model(model: &Value, datasets: &[Value]) -> Outcome {
    let name = model["name"].as_str().expect("name").to_string();
    let ds = datasets
        .iter()
        .find(|d| d["name"] == model["dataset"])
        .expect("dataset of model");
    // Clean reference data: the validation split, plus the test split for STRIP's calibration
    // (more clean entropies, a steadier 1% quantile).
    let pool = read_x(ds["val_x"].as_str().expect("val_x"));
    let mut strip_pool = pool.clone();
    strip_pool.extend(read_x(ds["test_x"].as_str().expect("test_x")));
    let range = ValueRange::from_data(&pool);
    let mut clf = TractClassifier::load(&models_dir(), model).expect("model loads in tract");
    let geometry = Geometry::from_len(clf.input_len());
    let start = Instant::now();
    let config = TriggerConfig {
        seed: 7,
        ..Default::default()
    };
    let report = trigger::search(&mut clf, &pool, geometry, range, &config).expect("search");
    let secs = start.elapsed().as_secs_f64();
    let trigger_json = serde_json::to_string(&report).expect("serialises");
    let (target, strip) = match model["backdoor"].as_object() {
        Some(b) => {
            let target = b["target_class"].as_u64().expect("target_class") as usize;
            let tx = read_x(b["triggered_x"].as_str().expect("triggered_x"));
            let ty = read_y(b["triggered_y"].as_str().expect("triggered_y"));
            assert_eq!(
                tx.len(),
                ty.len() * clf.input_len(),
                "{name}: triggered shapes"
            );
            (
                Some(target),
                Some(strip_on_triggered(&mut clf, &strip_pool, range, &tx, 11)),
            )
        }
        None => (None, None),
    };
    Outcome {
        name,
        target,
        poison_rate: model["backdoor"]["poison_rate"].as_f64().unwrap_or(0.0),
        strip,
        trigger: report,
        trigger_json,
        secs,
    }
}

#[test]
fn zoo_backdoors_are_found_and_clean_models_pass() {
    let m = manifest();
    let datasets = m["datasets"].as_array().expect("datasets").clone();
    let models = m["models"].as_array().expect("models");
    let outcomes: Vec<Outcome> = models.iter().map(|x| run_model(x, &datasets)).collect();

    eprintln!(
        "{:<26} {:>6} {:>9} {:>7} {:>6} {:>6} {:>6} {:>5} {:>7} {:<28}",
        "model", "target", "STRIP FAR", "FRR", "score", "AI", "stat", "found", "secs", "trigger"
    );
    for o in &outcomes {
        let t = &o.trigger;
        let f = &t.per_class[t.target_class];
        eprintln!(
            "{:<26} {:>6} {:>9} {:>7} {:>6.3} {:>6.2} {:>6.3} {:>5} {:>7.2} {} {}@{},{} s{} a{} flip{:.2} drop{:.2} noise{:.2}",
            o.name,
            o.target.map_or("-".into(), |c| c.to_string()),
            o.strip
                .as_ref()
                .map_or("-".into(), |(_, far)| format!("{far:.3}")),
            o.strip
                .as_ref()
                .map_or("-".into(), |(r, _)| format!("{:.3}", r.frr_measured)),
            t.score,
            t.anomaly_index,
            f.statistic,
            t.target_class,
            o.secs,
            if t.suspected { "SUSPECTED" } else { "clean" },
            t.trigger.pattern,
            t.trigger.x,
            t.trigger.y,
            t.trigger.size,
            t.trigger.alpha,
            f.flip_rate,
            f.entropy_drop,
            f.noise_share,
        );
    }

    let mut failures = Vec::new();
    let mut fars = Vec::new();
    for o in &outcomes {
        match o.target {
            Some(target) => {
                if !o.trigger.suspected || o.trigger.target_class != target {
                    failures.push(format!(
                        "{}: backdoor to {target} not found (suspected {}, class {}, score {:.3})",
                        o.name, o.trigger.suspected, o.trigger.target_class, o.trigger.score
                    ));
                }
                let (report, far) = o.strip.as_ref().expect("strip ran");
                fars.push(*far);
                let bound = if o.poison_rate < WEAK_POISON {
                    MAX_FAR_WEAK
                } else {
                    MAX_FAR
                };
                if *far > bound {
                    failures.push(format!("{}: STRIP FAR {far:.3} > {bound}", o.name));
                }
                if report.frr_measured > MAX_FRR {
                    failures.push(format!(
                        "{}: STRIP FRR {:.3} > {MAX_FRR}",
                        o.name, report.frr_measured
                    ));
                }
            }
            None => {
                if o.trigger.suspected {
                    failures.push(format!(
                        "{}: clean model flagged (class {}, score {:.3})",
                        o.name, o.trigger.target_class, o.trigger.score
                    ));
                }
            }
        }
    }
    let mean_far = fars.iter().sum::<f64>() / fars.len().max(1) as f64;
    if mean_far > MAX_MEAN_FAR {
        failures.push(format!("mean STRIP FAR {mean_far:.3} > {MAX_MEAN_FAR}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reports_are_deterministic_for_a_seed() {
    let m = manifest();
    let datasets = m["datasets"].as_array().expect("datasets").clone();
    let models = m["models"].as_array().expect("models");
    // One backdoored model of each kind is enough to pin determinism down.
    for kind in ["patch", "blend"] {
        let model = models
            .iter()
            .find(|x| x["backdoor"]["kind"] == kind)
            .expect("a backdoored model of this kind");
        let a = run_model(model, &datasets);
        let b = run_model(model, &datasets);
        assert_eq!(a.trigger_json, b.trigger_json, "{}", a.name);
        let sa = serde_json::to_string(&a.strip.expect("strip").0).expect("json");
        let sb = serde_json::to_string(&b.strip.expect("strip").0).expect("json");
        assert_eq!(sa, sb, "{}", a.name);
    }
}
