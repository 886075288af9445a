//! `modelvet probe MODEL`: load an ONNX or WASM model inside the sandbox, feed it validation data
//! and generated probes, look for backdoors (STRIP, trigger search), and report behaviour,
//! correctness and cost as `modelvet.probe/1`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use probes::classifier::{Geometry, ValueRange, argmax, is_probability_row};
use probes::finding::{Category, Finding, Severity, verdict};
use probes::probegen::{self, EdgeOutcome, EdgeResult, Noise, RandomSummary};
use probes::strip::{Blend, Strip, StripConfig, StripReport};
use probes::trigger::{TriggerConfig, TriggerReport};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cli::{BlendArg, Format, ProbeArgs};
use crate::error::{CliError, Result};
use crate::host::channel::{ChannelError, ModelInfo};
use crate::probe::npy::{self, Samples};
use crate::probe::session::{HostClassifier, Session, Started};
use crate::report::{self, sandbox::SandboxReport};

/// Largest batch sent in one request.
const MAX_BATCH: usize = 256;
/// Noise inputs per distribution for the `random` probe.
const RANDOM_PER_NOISE: usize = 256;
/// A class that takes more than this share of pure noise is worth a note.
const NOISE_DOMINANCE: f64 = 0.9;
/// Inputs judged by STRIP when no --check is given: clean held-out inputs with the trigger
/// search's best trigger stamped on them.
const STRIP_GENERATED: usize = 20;
/// How long one inference request may take before the host counts as hung.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Edge cases stop after this many hangs or crashes (each costs a deadline and a restart).
const MAX_EDGE_FAILURES: usize = 3;

#[derive(Serialize)]
struct Target {
    path: String,
    format: String,
    sha256: String,
    bytes: u64,
}

#[derive(Serialize, Default)]
struct Validation {
    count: usize,
    accuracy: f64,
    confusion: Vec<Vec<u64>>,
    non_finite: usize,
    /// Rows that look like probabilities but do not sum to 1.
    bad_probability_rows: usize,
}

#[derive(Serialize)]
struct Edge {
    cases: Vec<EdgeResult>,
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
}

#[derive(Serialize)]
struct Performance {
    inferences: usize,
    per_second: f64,
    latency_ms: Latency,
    batches: usize,
}

#[derive(Serialize, Default)]
struct Probes {
    validation: Option<Validation>,
    random: Option<RandomSummary>,
    edge: Option<Edge>,
    strip: Option<Value>,
    trigger: Option<Value>,
    performance: Option<Performance>,
}

#[derive(Serialize)]
struct ProbeReport<'a> {
    schema: &'static str,
    tool: report::Tool,
    verdict: &'static str,
    findings: &'a [Finding],
    target: Target,
    model: Option<ModelInfo>,
    probes: Probes,
    sandbox: SandboxReport<'a>,
}

fn wants(args: &ProbeArgs, name: &str) -> bool {
    args.probes.is_empty() || args.probes.iter().any(|p| p == name)
}

fn model_format(path: &Path, bytes: &[u8]) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if bytes.starts_with(b"\0asm") || ext == "wasm" || ext == "wat" {
        "wasm"
    } else {
        "onnx"
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A backdoor probe that did not finish. Low when it could not apply (no clean inputs, too few
/// classes) or its host died (the timeout or crash has its own finding); high when the model
/// itself failed on the probe's inputs with its host still answering: a model that answers the
/// validation set but errors exactly where a backdoor would show cannot be cleared by the probes.
fn backdoor_probe_failed(
    rule: &str,
    what: &str,
    e: &dyn std::fmt::Display,
    by_model: bool,
) -> Finding {
    if by_model {
        Finding::new(
            rule,
            Severity::High,
            Category::Backdoor,
            format!(
                "{what} could not finish: the model failed on the probe's inputs ({e}); a model \
                 that fails only where a backdoor would show cannot be cleared"
            ),
        )
    } else {
        Finding::new(
            rule,
            Severity::Low,
            Category::Backdoor,
            format!("{what} did not run: {e}"),
        )
    }
}

/// The largest sample the probes take, in values (1 MiB of f32, a 3x512x512 image fits, a
/// 3x1024x1024 one does not): the probes build a dozen samples of every edge case and batches of
/// up to 256, all in modelvet's own memory, from a shape the model declares.
const MAX_SAMPLE_VALUES: usize = 3 << 18;

/// The shape of one sample, from the model's first input: everything after the batch axis;
/// refused when it holds no value or more than `MAX_SAMPLE_VALUES`.
fn sample_shape(info: &ModelInfo) -> std::result::Result<Vec<usize>, String> {
    let shape = declared_sample_shape(info)?;
    match shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        Some(n) if (1..=MAX_SAMPLE_VALUES).contains(&n) => Ok(shape),
        _ => Err(format!(
            "a sample of shape {shape:?} holds no value or more than {MAX_SAMPLE_VALUES}"
        )),
    }
}

fn declared_sample_shape(info: &ModelInfo) -> std::result::Result<Vec<usize>, String> {
    let input = info.inputs.first().ok_or("the model declares no input")?;
    if input.shape.is_empty() {
        return Err(format!("input {} is a scalar", input.name));
    }
    input.shape[1..]
        .iter()
        .map(|d| {
            d.as_u64().map(|v| v as usize).ok_or_else(|| {
                format!(
                    "input {} has a symbolic non-batch dimension {d}",
                    input.name
                )
            })
        })
        .collect()
}

fn classes_of(info: &ModelInfo) -> std::result::Result<usize, String> {
    let out = info.outputs.first().ok_or("the model declares no output")?;
    out.shape
        .last()
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .filter(|&c| c >= 2)
        .ok_or_else(|| {
            format!(
                "output {} has no fixed class dimension ({:?})",
                out.name, out.shape
            )
        })
        .and_then(|c| {
            // Scores are kept per input and class, and validation counts class pairs.
            if c > probes::trigger::MAX_CLASSES {
                Err(format!(
                    "output {} has {c} classes; the probes take at most {}",
                    out.name,
                    probes::trigger::MAX_CLASSES
                ))
            } else {
                Ok(c)
            }
        })
}

fn shape_text(info: &ModelInfo) -> String {
    info.inputs
        .first()
        .map(|i| {
            format!(
                "{}{:?}",
                i.name,
                i.shape
                    .iter()
                    .map(|d| d.to_string().trim_matches('"').to_string())
                    .collect::<Vec<_>>()
            )
        })
        .unwrap_or_default()
}

pub fn run(args: ProbeArgs) -> Result<u8> {
    let started = Instant::now();
    let model = std::fs::canonicalize(&args.model)
        .map_err(|e| CliError::Input(format!("model {}: {e}", args.model.display())))?;
    let bytes = std::fs::read(&model)
        .map_err(|e| CliError::Input(format!("model {}: {e}", model.display())))?;
    let target = Target {
        path: args.model.display().to_string(),
        format: model_format(&model, &bytes).to_string(),
        sha256: format!("{:x}", Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
    };
    drop(bytes);
    report::check_output(args.common.output.as_deref())?;
    report::check_output_apart(args.common.output.as_deref(), &args.sandbox.allow_write)?;
    if args.strip_n == 0 || args.strip_n > probes::strip::MAX_STRIP_N {
        return Err(CliError::Input(format!(
            "--strip-n {} must be between 1 and {}",
            args.strip_n,
            probes::strip::MAX_STRIP_N
        )));
    }
    if !(args.frr > 0.0 && args.frr < 1.0) {
        return Err(CliError::Input(format!(
            "--frr {} must be between 0 and 1",
            args.frr
        )));
    }
    for p in &args.probes {
        if !["validation", "random", "edge", "strip", "trigger"].contains(&p.as_str()) {
            return Err(CliError::Input(format!(
                "--probes: unknown probe '{p}' (use validation,random,edge,strip,trigger)"
            )));
        }
    }
    let inputs = args
        .inputs
        .as_deref()
        .map(|p| npy::read_samples(p, "--inputs"))
        .transpose()?;
    let labels = args.labels.as_deref().map(npy::read_labels).transpose()?;
    let check = args
        .check
        .as_deref()
        .map(|p| npy::read_samples(p, "--check"))
        .transpose()?;
    if let (Some(l), Some(x)) = (&labels, &inputs)
        && l.len() != x.count()
    {
        return Err(CliError::Input(format!(
            "--labels has {} labels but --inputs has {} samples",
            l.len(),
            x.count()
        )));
    }
    if labels.is_some() && inputs.is_none() {
        return Err(CliError::Input("--labels needs --inputs".into()));
    }

    let host = sandbox::HostSupport::detect();
    let mut session = Session::new(
        &model,
        &args.sandbox,
        host,
        CALL_TIMEOUT.min(Duration::from_secs_f64(args.sandbox.timeout)),
    );
    let progress = |msg: &str| {
        eprintln!(
            "modelvet probe: {msg} ({:.1} s)",
            started.elapsed().as_secs_f64()
        )
    };
    progress("loading the model in the sandbox");
    let mut findings: Vec<Finding> = Vec::new();
    let mut probes = Probes::default();
    let info = match session.start()? {
        Started::Loaded(info) => Some(info),
        Started::Failed(e) => {
            findings.push(load_finding(&e));
            None
        }
    };

    let mut trigger_image: Option<PathBuf> = None;
    if let Some(info) = &info {
        let shape = sample_shape(info).and_then(|s| classes_of(info).map(|c| (s, c)));
        match shape {
            Err(msg) => findings.push(
                Finding::new(
                    "model.unsupported-shape",
                    Severity::Medium,
                    Category::Integrity,
                    format!("cannot probe this model: {msg}"),
                )
                .at(target.path.clone()),
            ),
            Ok((sample, classes)) => {
                let input_len: usize = sample.iter().product();
                let shape_desc = shape_text(info);
                if let Some(x) = &inputs {
                    x.fit("--inputs", input_len, &shape_desc)?;
                }
                if let Some(c) = &check {
                    c.fit("--check", input_len, &shape_desc)?;
                }
                let ctx = Ctx {
                    args: &args,
                    sample,
                    input_len,
                    classes,
                    target: &target,
                    started,
                };
                trigger_image = run_probes(
                    &ctx,
                    &mut session,
                    inputs.as_ref(),
                    labels.as_deref(),
                    check.as_ref(),
                    &mut probes,
                    &mut findings,
                )?;
            }
        }
    }
    session.stop();
    if let Some(sig) = sandbox::interrupt::received() {
        // The host was stopped under the probes (see `main`): no report, rather than one that
        // blames the model for a crash we caused and judges it on unfinished probes.
        return Err(CliError::Sandbox(format!(
            "interrupted by {}: no report written",
            sandbox::interrupt::name(sig)
        )));
    }

    // Merge every sandbox run of the session (restarts after crashes included).
    let outcome = merge_outcomes(&session);
    findings.extend(report::sandbox::findings(
        &outcome,
        args.sandbox.timeout,
        args.sandbox.memory,
        args.sandbox.pids,
    ));
    findings.extend(wasm_findings(&session));
    // A host the wall limit killed did not crash: the resource.timeout finding says what happened.
    // Unless another instance of it did die by a signal of its own: that crash stays.
    let timed_out = session
        .outcomes
        .iter()
        .any(|o| o.exit.status == sandbox::ExitStatus::Timeout);
    let crashed = session.outcomes.iter().any(|o| match o.exit.status {
        sandbox::ExitStatus::Signaled => o.exit.signal != Some(libc::SIGKILL),
        // A panicking host exits 101; one we stopped politely exits 0.
        sandbox::ExitStatus::Exited => o.exit.code.is_some_and(|c| c != 0),
        _ => false,
    });
    if timed_out && !crashed {
        session.failures.remove("crash");
    }
    findings.extend(failure_findings(&session, &target.path));
    let mut outcome = outcome;
    add_host_events(&mut outcome, &session);

    let host = session.host_support().clone();
    let rendered = match args.common.format {
        Format::Json | Format::Sarif => {
            if args.common.format == Format::Sarif {
                let format = if target.format == "wasm" {
                    "wasm"
                } else {
                    "onnx"
                };
                let s = report::sarif_target::render(
                    "modelvet.probe/1",
                    &target.path,
                    format,
                    &target.sha256,
                    target.bytes,
                    &findings,
                );
                report::emit(args.common.output.as_deref(), &s)?;
                return Ok(report::exit_code(&findings, args.common.fail_on.0));
            }
            let r = ProbeReport {
                schema: "modelvet.probe/1",
                tool: report::tool(),
                verdict: verdict(&findings),
                findings: &findings,
                target,
                model: info,
                probes,
                sandbox: SandboxReport::new(&outcome, &host),
            };
            let mut s =
                serde_json::to_string_pretty(&r).map_err(|e| CliError::Input(e.to_string()))?;
            s.push('\n');
            s
        }
        Format::Text => report::text::terminal_safe(text_view(
            &target,
            info.as_ref(),
            &probes,
            &findings,
            &outcome,
            trigger_image.as_deref(),
        )),
    };
    report::emit(args.common.output.as_deref(), &rendered)?;
    Ok(report::exit_code(&findings, args.common.fail_on.0))
}

struct Ctx<'a> {
    args: &'a ProbeArgs,
    sample: Vec<usize>,
    input_len: usize,
    classes: usize,
    target: &'a Target,
    started: Instant,
}

fn load_finding(e: &ChannelError) -> Finding {
    match e {
        ChannelError::Model { message, .. } => Finding::new(
            "model.load-failed",
            Severity::High,
            Category::Integrity,
            format!("the model does not load: {message}"),
        ),
        ChannelError::Timeout => Finding::new(
            "model.hang",
            Severity::High,
            Category::Behaviour,
            "the model host hung while loading the model",
        ),
        other => Finding::new(
            "model.crash",
            Severity::High,
            Category::Behaviour,
            format!("the model host died while loading the model: {other}"),
        ),
    }
}

fn run_probes(
    ctx: &Ctx,
    session: &mut Session,
    inputs: Option<&Samples>,
    labels: Option<&[i64]>,
    check: Option<&Samples>,
    probes: &mut Probes,
    findings: &mut Vec<Finding>,
) -> Result<Option<PathBuf>> {
    let args = ctx.args;
    let progress = |msg: &str| {
        eprintln!(
            "modelvet probe: {msg} ({:.1} s)",
            ctx.started.elapsed().as_secs_f64()
        )
    };
    let range = inputs.map_or(ValueRange { lo: 0.0, hi: 1.0 }, |x| {
        ValueRange::from_data(&x.data)
    });
    let mut clf = HostClassifier {
        session,
        sample_shape: ctx.sample.clone(),
        input_len: ctx.input_len,
        classes: ctx.classes,
        // A batch must fit one tensor frame (or the request would fail as if the host had died).
        max_batch: MAX_BATCH
            .min(crate::host::channel::MAX_FRAME_BYTES / (4 * ctx.input_len.max(1))),
        inferences: 0,
        calls: 0,
        latencies_ms: Vec::new(),
        busy: Duration::ZERO,
    };
    let loc = ctx.target.path.clone();

    // validation
    if let (Some(x), Some(y)) = (inputs, labels)
        && wants(args, "validation")
    {
        progress("validation");
        match probes::classifier::Classifier::predict(&mut clf, &x.data, x.count()) {
            Ok(scores) => {
                let v = validation(&scores, y, ctx.classes);
                if v.non_finite > 0 {
                    findings.push(
                        Finding::new(
                            "probe.non-finite-output",
                            Severity::Medium,
                            Category::Behaviour,
                            format!(
                                "{} non-finite scores on clean validation inputs",
                                v.non_finite
                            ),
                        )
                        .at(loc.clone()),
                    );
                }
                if v.bad_probability_rows > 0 {
                    findings.push(
                        Finding::new(
                            "probe.bad-probabilities",
                            Severity::Low,
                            Category::Behaviour,
                            format!(
                                "{} output rows look like probabilities but do not sum to 1",
                                v.bad_probability_rows
                            ),
                        )
                        .at(loc.clone()),
                    );
                }
                probes.validation = Some(v);
            }
            Err(e) => findings.push(
                Finding::new(
                    "probe.validation-failed",
                    Severity::Medium,
                    Category::Behaviour,
                    format!("validation inputs failed: {e}"),
                )
                .at(loc.clone()),
            ),
        }
    }

    // random
    if wants(args, "random") && clf.session.alive() {
        progress("random probes");
        let mut batch = probegen::random_inputs(
            Noise::Uniform,
            RANDOM_PER_NOISE,
            ctx.input_len,
            range,
            args.common.seed,
        );
        batch.extend(probegen::random_inputs(
            Noise::Gaussian,
            RANDOM_PER_NOISE,
            ctx.input_len,
            range,
            args.common.seed,
        ));
        let n = batch.len() / ctx.input_len;
        match probes::classifier::Classifier::predict(&mut clf, &batch, n) {
            Ok(scores) => {
                let s = probegen::summarize_random(&scores, ctx.classes);
                if s.dominant_share >= NOISE_DOMINANCE {
                    findings.push(
                        Finding::new(
                            "probe.noise-dominant-class",
                            Severity::Low,
                            Category::Backdoor,
                            format!("{:.0}% of random noise goes to class {} (backdoored models often pull noise to their target)", s.dominant_share * 100.0, s.dominant_class),
                        )
                        .at(loc.clone()),
                    );
                }
                probes.random = Some(s);
            }
            Err(e) => findings.push(
                Finding::new(
                    "probe.random-failed",
                    Severity::Medium,
                    Category::Behaviour,
                    format!("random inputs failed: {e}"),
                )
                .at(loc.clone()),
            ),
        }
    }

    // trigger search (before STRIP, whose generated inputs use the best trigger)
    let mut best: Option<TriggerReport> = None;
    let mut trigger_ms = 0.0;
    let mut trigger_image = None;
    if let Some(x) = inputs
        && wants(args, "trigger")
        && clf.session.alive()
        && x.count() > 0
    {
        progress("trigger search");
        let geometry = Geometry::from_len(ctx.input_len);
        let cfg = TriggerConfig {
            seed: args.common.seed,
            strip_blend: blend(args.blend),
            ..TriggerConfig::default()
        };
        let t0 = Instant::now();
        match probes::trigger::search(&mut clf, &x.data, geometry, range, &cfg) {
            Ok(t) => {
                trigger_ms = t0.elapsed().as_secs_f64() * 1e3;
                if t.suspected {
                    findings.push(
                            Finding::new(
                                "backdoor.suspected",
                                Severity::High,
                                Category::Backdoor,
                                format!(
                                    "the model looks backdoored: a small {} trigger sends {:.0}% of clean inputs to class {} (score {:.2}, anomaly index {:.1})",
                                    serde_json::to_value(t.trigger.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                                    t.flip_rate * 100.0,
                                    t.target_class,
                                    t.score,
                                    t.anomaly_index
                                ),
                            )
                            .at(loc.clone())
                            .with_evidence(format!("{:?}", t.trigger)),
                        );
                }
                if let Some(out) = &args.common.output {
                    let png = out.with_extension("trigger.png");
                    if save_png(&png, &t.best.image(range), geometry, range).is_ok() {
                        trigger_image = Some(png);
                    }
                }
                best = Some(t);
            }
            Err(e) => {
                let by_model = matches!(e, probes::trigger::TriggerError::Classifier(_))
                    && clf.session.alive();
                findings.push(
                    backdoor_probe_failed("probe.trigger-failed", "trigger search", &e, by_model)
                        .at(loc.clone()),
                );
            }
        }
    }
    if let Some(t) = &best {
        let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
        if let Some(p) = &trigger_image {
            v["image"] = json!(p.display().to_string());
        }
        v["time_ms"] = json!((trigger_ms * 1000.0).round() / 1000.0);
        probes.trigger = Some(v);
    }

    // STRIP
    if let Some(x) = inputs
        && wants(args, "strip")
        && clf.session.alive()
    {
        progress("STRIP");
        let cfg = StripConfig {
            n: args.strip_n,
            blend: blend(args.blend),
            frr: args.frr,
            seed: args.common.seed,
            ..StripConfig::default()
        };
        let judged: Option<Vec<f32>> = match (check, &best) {
            (Some(c), _) => Some(c.data.clone()),
            (None, Some(t)) => {
                // Probe-generated: the best trigger found, stamped on clean inputs.
                let n = STRIP_GENERATED.min(x.count());
                let mut out = vec![0.0; n * ctx.input_len];
                for i in 0..n {
                    let src = &x.data[i * ctx.input_len..(i + 1) * ctx.input_len];
                    t.best
                        .stamp(src, &mut out[i * ctx.input_len..(i + 1) * ctx.input_len]);
                }
                Some(out)
            }
            (None, None) => None,
        };
        let run = Strip::new(cfg, &x.data, ctx.input_len, range).and_then(|mut strip| {
            timed(|| strip.calibrate(&mut clf)).and_then(|(cal, cal_ms)| {
                timed(|| strip.check(&mut clf, &cal, judged.as_deref().unwrap_or(&[])))
                    .map(|(r, check_ms)| (r, cal_ms, check_ms))
            })
        });
        match run {
            Ok((r, cal_ms, check_ms)) => {
                if check.is_some() && r.flagged > 0 {
                    findings.push(
                        Finding::new(
                            "backdoor.strip-flagged-input",
                            Severity::High,
                            Category::Backdoor,
                            format!("{} of {} checked inputs carry a trigger by STRIP (entropy under {:.3} bits)", r.flagged, r.inputs.len(), r.threshold),
                        )
                        .at(args.check.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
                    );
                }
                if r.non_finite_rows > 0 {
                    findings.push(
                        Finding::new(
                            "probe.strip-non-finite",
                            Severity::High,
                            Category::Backdoor,
                            format!(
                                "the model answered {} STRIP blends with NaN or infinite scores: STRIP reads them as uncertain, i.e. clean, so it cannot clear this model",
                                r.non_finite_rows
                            ),
                        )
                        .at(loc.clone()),
                    );
                }
                probes.strip = Some(strip_json(&r, cal_ms, check_ms));
            }
            Err(e) => {
                let by_model =
                    matches!(e, probes::strip::StripError::Classifier(_)) && clf.session.alive();
                findings.push(
                    backdoor_probe_failed("probe.strip-failed", "STRIP", &e, by_model)
                        .at(loc.clone()),
                );
            }
        }
    }

    // performance, from every call so far
    let mut lat = clf.latencies_ms.clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    probes.performance = Some(Performance {
        inferences: clf.inferences,
        per_second: if clf.busy.is_zero() {
            0.0
        } else {
            clf.inferences as f64 / clf.busy.as_secs_f64()
        },
        latency_ms: Latency {
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
        },
        batches: clf.calls,
    });

    // edge cases last: they may crash or hang the host, which then restarts for the next case
    if wants(args, "edge") {
        progress("edge cases");
        let session = clf.session;
        let cases = probegen::edge_cases(ctx.input_len, range);
        let mut results = Vec::new();
        let mut failures = 0;
        for case in &cases {
            if failures >= MAX_EDGE_FAILURES {
                break;
            }
            if !session.alive() {
                session.restarts += 1;
                if !matches!(session.start()?, Started::Loaded(_)) {
                    break;
                }
            }
            let per = if case.n == 0 {
                ctx.input_len
            } else {
                case.data.len() / case.n.max(1)
            };
            let mut shape = vec![case.n];
            if case.malformed {
                shape.push(per);
            } else {
                shape.extend_from_slice(&ctx.sample);
            }
            let r = session.infer(&case.data, &shape);
            let res = match r {
                Ok(scores) => probegen::edge_outcome(case, &Ok::<_, String>(scores), ctx.classes),
                Err(ChannelError::Model { kind, message, .. }) => {
                    let kind = kind.to_string();
                    let outcome = if kind == "timeout" {
                        EdgeOutcome::Timeout
                    } else {
                        EdgeOutcome::Error
                    };
                    EdgeResult {
                        name: case.name.to_string(),
                        outcome,
                        message: format!("{kind}: {message}"),
                    }
                }
                Err(ChannelError::Timeout) => EdgeResult {
                    name: case.name.to_string(),
                    outcome: EdgeOutcome::Timeout,
                    message: "no answer within the call deadline".into(),
                },
                Err(e) => EdgeResult {
                    name: case.name.to_string(),
                    outcome: EdgeOutcome::Crash,
                    message: e.to_string(),
                },
            };
            if matches!(res.outcome, EdgeOutcome::Crash | EdgeOutcome::Timeout) {
                failures += 1;
            }
            results.push(res);
        }
        probes.edge = Some(Edge { cases: results });
    }
    Ok(trigger_image)
}

fn timed<T, E>(f: impl FnOnce() -> std::result::Result<T, E>) -> std::result::Result<(T, f64), E> {
    let t = Instant::now();
    f().map(|v| (v, t.elapsed().as_secs_f64() * 1e3))
}

/// SPEC's `strip` object plus how long calibration and the check took (per judged input too).
fn strip_json(r: &StripReport, calibration_ms: f64, check_ms: f64) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    let n = r.inputs.len().max(1) as f64;
    v["time_ms"] = json!({
        "calibration": (calibration_ms * 1000.0).round() / 1000.0,
        "check": (check_ms * 1000.0).round() / 1000.0,
        "per_checked_input": (check_ms / n * 1000.0).round() / 1000.0,
    });
    v
}

fn blend(b: BlendArg) -> Blend {
    match b {
        BlendArg::SumClip => Blend::SumClip,
        BlendArg::Alpha => Blend::Alpha,
    }
}

fn validation(scores: &[f32], labels: &[i64], classes: usize) -> Validation {
    let mut v = Validation {
        count: labels.len(),
        confusion: vec![vec![0; classes]; classes],
        ..Default::default()
    };
    let mut correct = 0usize;
    for (row, &y) in scores.chunks_exact(classes).zip(labels) {
        v.non_finite += row.iter().filter(|s| !s.is_finite()).count();
        let looks_prob = row.iter().all(|&s| (0.0..=1.0).contains(&s));
        if looks_prob && !is_probability_row(row) && row.iter().sum::<f32>() > 0.5 {
            v.bad_probability_rows += 1;
        }
        let p = argmax(row);
        if y >= 0 && (y as usize) < classes {
            v.confusion[y as usize][p] += 1;
            if p == y as usize {
                correct += 1;
            }
        }
    }
    v.accuracy = if labels.is_empty() {
        0.0
    } else {
        correct as f64 / labels.len() as f64
    };
    v
}

fn save_png(path: &Path, pixels: &[f32], g: Geometry, range: ValueRange) -> std::io::Result<()> {
    let (w, h) = (g.width as u32, g.height as u32);
    let span = range.span().max(f32::EPSILON);
    // First channel as grey, scaled up so an 8x8 trigger is visible.
    let scale = (256 / w.max(h).max(1)).max(1);
    let mut data = Vec::with_capacity((w * h * scale * scale) as usize);
    for y in 0..h * scale {
        for x in 0..w * scale {
            let v = pixels[g.index(0, (y / scale) as usize, (x / scale) as usize)];
            data.push((((v - range.lo) / span).clamp(0.0, 1.0) * 255.0) as u8);
        }
    }
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w * scale, h * scale);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(&data)
        .map_err(std::io::Error::other)
}

fn merge_outcomes(session: &Session) -> sandbox::Outcome {
    let mut it = session.outcomes.iter();
    let Some(first) = it.next() else {
        return sandbox::Outcome::killed(0);
    };
    let mut m = first.clone();
    for o in it {
        m.resources.wall_ms += o.resources.wall_ms;
        m.resources.cpu_user_ms += o.resources.cpu_user_ms;
        m.resources.cpu_sys_ms += o.resources.cpu_sys_ms;
        m.resources.peak_rss_bytes = m.resources.peak_rss_bytes.max(o.resources.peak_rss_bytes);
        m.resources.peak_pids = m.resources.peak_pids.max(o.resources.peak_pids);
        m.resources.peak_pids_upper_bound |= o.resources.peak_pids_upper_bound;
        for (k, v) in &o.syscalls {
            *m.syscalls.entry(k.clone()).or_insert(0) += v;
        }
        m.events.extend(o.events.iter().cloned());
        m.events_dropped += o.events_dropped;
    }
    // A limit any instance hit is the session's (its resource finding must not hang on which
    // instance came first).
    use sandbox::ExitStatus::{Memory, Pids, Timeout};
    if let Some(limited) = [Memory, Pids, Timeout]
        .into_iter()
        .find_map(|s| session.outcomes.iter().find(|o| o.exit.status == s))
    {
        m.exit = limited.exit.clone();
    }
    // The host is stopped by us at the end: its exit is ours, not the model's, unless a limit
    // or a crash ended it first.
    if m.exit.status == sandbox::ExitStatus::Signaled && m.exit.signal == Some(libc::SIGKILL) {
        m.exit.status = sandbox::ExitStatus::Killed;
    }
    m
}

/// WASI imports the model called, as sandbox events (`syscall` "wasi:<import>").
fn add_host_events(outcome: &mut sandbox::Outcome, session: &Session) {
    outcome.events_dropped += session.host_events.dropped;
    for e in &session.host_events.kept {
        let kind = if e.event.import == "path_open" {
            sandbox::EventKind::File
        } else {
            sandbox::EventKind::Syscall
        };
        let mut detail = json!({"import": e.event.import, "args": e.event.args, "result": e.event.result, "wasi": true});
        if let Some(p) = e.event.args.get("path") {
            detail["path"] = p.clone();
        }
        let action = if e.event.result.unwrap_or(0) == 0 {
            sandbox::Action::Allowed
        } else {
            sandbox::Action::Denied
        };
        outcome.events.push(sandbox::Event {
            t_ms: (e.t_ms * 1000.0).round() / 1000.0,
            pid: 1,
            kind,
            syscall: format!("wasi:{}", e.event.import),
            action,
            detail,
        });
    }
}

/// The model's own failures over the whole session, one finding per kind.
fn failure_findings(session: &Session, loc: &str) -> Vec<Finding> {
    session
        .failures
        .iter()
        .filter_map(|(kind, (count, first))| {
            let (rule, sev, what) = match kind.as_str() {
                "crash" => ("model.crash", Severity::High, "the model host died"),
                "timeout" => (
                    "model.hang",
                    Severity::Medium,
                    "the model did not answer within the call deadline",
                ),
                "memory" => (
                    "model.memory-cap",
                    Severity::Medium,
                    "the model tried to grow its memory past the cap",
                ),
                "trap" => ("model.trap", Severity::Medium, "the model trapped"),
                _ => return None, // shape and runtime errors are the edge probe's business
            };
            Some(
                Finding::new(
                    rule,
                    sev,
                    Category::Behaviour,
                    format!("{what} ({count} calls)"),
                )
                .at(loc.to_string())
                .with_evidence(first.clone()),
            )
        })
        .collect()
}

fn wasm_findings(session: &Session) -> Vec<Finding> {
    session
        .host_events
        .per_import
        .iter()
        .map(|(import, (count, args))| (import.clone(), (*count, args.clone())))
        .map(|(import, (count, args))| {
            let (rule, sev, what) = match import.as_str() {
                "path_open" | "path_filestat_get" | "path_readlink" | "fd_prestat_get"
                | "fd_read" => ("wasm.file-access", Severity::High, "tried to reach files"),
                "sock_open" | "sock_connect" | "sock_send" | "sock_recv" | "sock_accept" => {
                    ("wasm.network", Severity::High, "tried to use sockets")
                }
                "clock_time_get" | "clock_res_get" => (
                    "wasm.clock",
                    Severity::Medium,
                    "read the clock (a time bomb can change its answers on a date)",
                ),
                "random_get" => (
                    "wasm.random",
                    Severity::Medium,
                    "read randomness (its answers may not be deterministic)",
                ),
                "environ_get" | "environ_sizes_get" | "args_get" | "args_sizes_get" => (
                    "wasm.environment",
                    Severity::Low,
                    "read its environment or arguments",
                ),
                "fd_write" => ("wasm.output", Severity::Low, "wrote output"),
                "proc_exit" => ("wasm.exit", Severity::Low, "asked to exit the process"),
                _ => ("wasm.import", Severity::Low, "called a WASI import"),
            };
            Finding::new(
                rule,
                sev,
                Category::Behaviour,
                format!("the WASM model {what}: {import} ({count} calls)"),
            )
            .with_evidence(format!("{import}({args})"))
        })
        .collect()
}

/// `[N, 1, 28, 28]`: symbols by name, sizes as numbers.
fn dims(shape: &[Value]) -> String {
    let d: Vec<String> = shape
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect();
    format!("[{}]", d.join(", "))
}

fn text_view(
    target: &Target,
    info: Option<&ModelInfo>,
    p: &Probes,
    findings: &[Finding],
    outcome: &sandbox::Outcome,
    trigger_image: Option<&Path>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "modelvet probe: {} ({}, {} bytes, sha256 {})",
        target.path,
        target.format,
        target.bytes,
        &target.sha256[..16]
    );
    let _ = writeln!(s, "verdict: {}", verdict(findings));
    if let Some(i) = info {
        for t in &i.inputs {
            let _ = writeln!(s, "input  {} {} {}", t.name, dims(&t.shape), t.dtype);
        }
        for t in &i.outputs {
            let _ = writeln!(s, "output {} {} {}", t.name, dims(&t.shape), t.dtype);
        }
    }
    if let Some(v) = &p.validation {
        let _ = writeln!(
            s,
            "validation: {} inputs, accuracy {:.4}",
            v.count, v.accuracy
        );
    }
    if let Some(r) = &p.random {
        let _ = writeln!(
            s,
            "random: {} noise inputs, dominant class {} ({:.0}%), non-finite {}",
            r.count,
            r.dominant_class,
            r.dominant_share * 100.0,
            r.non_finite
        );
    }
    if let Some(t) = &p.trigger {
        let _ = writeln!(
            s,
            "trigger search: score {:.2}, suspected {}, target class {}, anomaly index {:.2}, best trigger {}",
            t["score"].as_f64().unwrap_or(0.0),
            t["suspected"],
            t["target_class"],
            t["anomaly_index"].as_f64().unwrap_or(0.0),
            t["trigger"]
        );
        if let Some(img) = trigger_image {
            let _ = writeln!(s, "  trigger image: {}", img.display());
        }
    }
    if let Some(st) = &p.strip {
        let _ = writeln!(
            s,
            "strip: n {} blend {} threshold {:.4} bits (FRR target {}, measured {:.3}), {} of {} judged inputs flagged, {:.2} ms per judged input",
            st["n"],
            st["blend"].as_str().unwrap_or(""),
            st["threshold"].as_f64().unwrap_or(0.0),
            st["frr_target"],
            st["frr_measured"].as_f64().unwrap_or(0.0),
            st["flagged"],
            st["inputs"].as_array().map_or(0, Vec::len),
            st["time_ms"]["per_checked_input"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(e) = &p.edge {
        let list: Vec<String> = e
            .cases
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c.name,
                    serde_json::to_value(c.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(s, "edge: {}", list.join(", "));
    }
    if let Some(perf) = &p.performance {
        let _ = writeln!(
            s,
            "performance: {} inferences, {:.0}/s, latency p50 {:.2} ms p99 {:.2} ms",
            perf.inferences, perf.per_second, perf.latency_ms.p50, perf.latency_ms.p99
        );
    }
    report::sandbox::text(&mut s, outcome);
    s.push_str("findings:\n");
    report::text::findings(&mut s, findings);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backdoor_probe_the_model_made_fail_is_high_one_that_could_not_apply_is_low() {
        let e = probes::strip::StripError::Classifier(probes::classifier::ClassifierError::Model(
            "status 1".into(),
        ));
        let f = backdoor_probe_failed("probe.strip-failed", "STRIP", &e, true);
        assert_eq!(f.severity, Severity::High);
        assert!(f.message.contains("cannot be cleared"), "{}", f.message);
        let e = probes::strip::StripError::EmptyPool;
        let f = backdoor_probe_failed("probe.strip-failed", "STRIP", &e, false);
        assert_eq!(f.severity, Severity::Low);
    }
}
