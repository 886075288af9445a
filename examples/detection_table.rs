//! Prints the README's backdoor-detection table for the fixture zoo: STRIP's false acceptance
//! rate at the FRR it measured, the trigger search's verdict and timing, per model, with the
//! ONNX models run in-process by tract (one thread). Also the STRIP time per checked input
//! (N = 100), the figure `make bench` sets against onnxruntime.
//! Run: `cargo run --release --example detection_table [-- --seed N] [--strip-n N] [--json]`
//! (`--skip-strip` for the trigger search alone, e.g. to sweep seeds).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use probes::classifier::{Classifier, Geometry, ValueRange};
use probes::strip::{Strip, StripConfig};
use probes::trigger::{self, TriggerConfig};
use serde_json::{Value, json};
#[path = "../probes/tests/common/tract_classifier.rs"]
mod tract_classifier;
use tract_classifier::TractClassifier;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
}

fn read_x(rel: &str) -> Result<Vec<f32>> {
    let a: Array2<f32> =
        ndarray_npy::read_npy(models_dir().join(rel)).with_context(|| format!("reading {rel}"))?;
    Ok(a.iter().copied().collect())
}

struct Args {
    seed: u64,
    strip_n: usize,
    json: bool,
    skip_strip: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        seed: 7,
        strip_n: 100,
        json: false,
        skip_strip: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => args.seed = it.next().context("--seed N")?.parse()?,
            "--strip-n" => args.strip_n = it.next().context("--strip-n N")?.parse()?,
            "--json" => args.json = true,
            "--skip-strip" => args.skip_strip = true,
            other => bail!(
                "unknown argument {other}; usage: [--seed N] [--strip-n N] [--json] [--skip-strip]"
            ),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(models_dir().join("manifest.json"))
            .context("tests/fixtures/models/manifest.json (run `make fixtures`)")?,
    )?;
    let datasets = manifest["datasets"].as_array().context("datasets")?;
    let mut rows = Vec::new();
    if !args.json {
        println!(
            "| model | kind | target | STRIP FAR @ FRR | trigger score | suspected | found class | best trigger | search time | STRIP / input |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
    }
    for model in manifest["models"].as_array().context("models")? {
        let name = model["name"].as_str().unwrap_or("?");
        let ds = datasets
            .iter()
            .find(|d| d["name"] == model["dataset"])
            .context("dataset of model")?;
        let pool = read_x(ds["val_x"].as_str().context("val_x")?)?;
        let mut strip_pool = pool.clone();
        strip_pool.extend(read_x(ds["test_x"].as_str().context("test_x")?)?);
        let range = ValueRange::from_data(&pool);
        let mut clf = TractClassifier::load(&models_dir(), model)
            .with_context(|| format!("loading {name}"))?;
        let geometry = Geometry::from_len(clf.input_len());

        let t0 = Instant::now();
        let config = TriggerConfig {
            seed: args.seed,
            ..Default::default()
        };
        let report = trigger::search(&mut clf, &pool, geometry, range, &config)?;
        let search_secs = t0.elapsed().as_secs_f64();

        let backdoor = model["backdoor"].as_object();
        let (kind, target) = match backdoor {
            Some(b) => (
                b["kind"].as_str().unwrap_or("?").to_string(),
                b["target_class"]
                    .as_u64()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
            ),
            None => ("clean".to_string(), "-".to_string()),
        };
        let mut far_cell = "-".to_string();
        let mut strip_ms = f64::NAN;
        let mut strip_json = Value::Null;
        if let Some(b) = backdoor.filter(|_| !args.skip_strip) {
            let tx = read_x(b["triggered_x"].as_str().context("triggered_x")?)?;
            let strip_config = StripConfig {
                n: args.strip_n,
                seed: args.seed,
                ..Default::default()
            };
            let mut strip = Strip::new(strip_config, &strip_pool, clf.input_len(), range)?;
            let cal = strip.calibrate(&mut clf)?;
            let t1 = Instant::now();
            let r = strip.check(&mut clf, &cal, &tx)?;
            let count = r.inputs.len().max(1);
            strip_ms = t1.elapsed().as_secs_f64() * 1e3 / count as f64;
            let far = 1.0 - r.flagged as f64 / count as f64;
            far_cell = format!("{:.1}% @ {:.1}%", far * 100.0, cal.frr_measured * 100.0);
            strip_json = json!({"far": far, "frr_measured": cal.frr_measured,
                "threshold": cal.threshold, "threshold_normal": cal.threshold_normal,
                "frr_measured_normal": cal.frr_measured_normal, "checked": count,
                "ms_per_input": strip_ms});
        }
        let t = &report.trigger;
        let trig = match t.kind {
            trigger::TriggerKind::Patch => {
                format!(
                    "patch {}x{} {} at ({}, {})",
                    t.size, t.size, t.pattern, t.x, t.y
                )
            }
            trigger::TriggerKind::Blend => format!("blend {} a={}", t.pattern, t.alpha),
        };
        if args.json {
            rows.push(json!({"model": name, "kind": kind, "target": target,
                "strip": strip_json, "trigger": report, "search_secs": search_secs}));
        } else {
            println!(
                "| {name} | {kind} | {target} | {far_cell} | {:.3} | {} | {} | {trig} | {:.2} s | {} |",
                report.score,
                if report.suspected { "yes" } else { "no" },
                report.target_class,
                search_secs,
                if strip_ms.is_nan() {
                    "-".to_string()
                } else {
                    format!("{strip_ms:.2} ms")
                },
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
