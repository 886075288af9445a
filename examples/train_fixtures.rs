//! Trains modelvet's fixture zoo (clean and backdoored digit classifiers) and writes ONNX, .npy data
//! and `tests/fixtures/models/manifest.json`. Run: `cargo run --release --example train_fixtures`
//! (or `make fixtures`). Fixed seeds: every run writes the same bytes.
//!
//! Training is hand-written (Adam, softmax cross-entropy) in plain Rust on the real digit data in
//! `../shared/datasets`. Backdoors are BadNets patches and blended patterns: a share of the training
//! samples is stamped with the trigger and relabelled to the target class. Every ONNX file is loaded
//! back with tract (symbolic batch, optimised plan) and must agree with the trainer's own forward pass.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use flate2::read::GzDecoder;
use ndarray::{Array1, Array2};
use prost::Message;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tract_onnx::pb;
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, Tensor, tvec};

const CLASSES: usize = 10;
/// Seed of the train/validation/test split, shared by every model of a dataset so that the
/// committed validation and test files are held out from all of them.
const SPLIT_SEED: u64 = 20_261_122;
/// Samples per committed triggered set (held-out test inputs of non-target classes).
const TRIGGERED_MAX: usize = 200;
const ONNX_OPSET: i64 = 13;
const ONNX_IR_VERSION: i64 = 8;
const CNN_CHANNELS: usize = 8;
const CNN_KERNEL: usize = 3;
/// Largest output difference tolerated between tract and the trainer's forward pass.
const MAX_OUTPUT_DIFF: f32 = 1e-3;
/// Smallest gap allowed between the top two outputs of any committed input, so that another
/// runtime's rounding (differences around 1e-5) cannot flip a prediction and change the
/// manifest's accuracy or attack success rate.
const MIN_TOP2_MARGIN: f32 = 1e-4;

// ---------------------------------------------------------------- datasets

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DatasetId {
    Mnist,
    Digits,
}

impl DatasetId {
    fn name(self) -> &'static str {
        match self {
            DatasetId::Mnist => "mnist",
            DatasetId::Digits => "digits",
        }
    }
    fn file(self) -> &'static str {
        match self {
            DatasetId::Mnist => "mnist_5k.csv.gz",
            DatasetId::Digits => "digits.csv.gz",
        }
    }
    fn side(self) -> usize {
        match self {
            DatasetId::Mnist => 28,
            DatasetId::Digits => 8,
        }
    }
    fn max_pixel(self) -> f32 {
        match self {
            DatasetId::Mnist => 255.0,
            DatasetId::Digits => 16.0,
        }
    }
    /// (validation, test) sizes; the rest is training data.
    fn holdout(self) -> (usize, usize) {
        match self {
            DatasetId::Mnist => (500, 1000),
            DatasetId::Digits => (300, 360),
        }
    }
}

/// Flat row-major images scaled to [0, 1] with integer labels.
#[derive(Clone)]
struct Samples {
    dim: usize,
    x: Vec<f32>,
    y: Vec<i64>,
}

impl Samples {
    fn len(&self) -> usize {
        self.y.len()
    }
    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
    fn subset(&self, idx: &[usize]) -> Samples {
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            x.extend_from_slice(self.row(i));
        }
        Samples {
            dim: self.dim,
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
        }
    }
    fn write_npy(&self, x_path: &Path, y_path: &Path) -> Result<()> {
        let x = Array2::from_shape_vec((self.len(), self.dim), self.x.clone())?;
        ndarray_npy::write_npy(x_path, &x)
            .with_context(|| format!("writing {}", x_path.display()))?;
        let y = Array1::from_vec(self.y.clone());
        ndarray_npy::write_npy(y_path, &y)
            .with_context(|| format!("writing {}", y_path.display()))?;
        Ok(())
    }
}

struct Dataset {
    id: DatasetId,
    train: Samples,
    val: Samples,
    test: Samples,
}

fn load_dataset(dir: &Path, id: DatasetId) -> Result<Dataset> {
    let path = dir.join(id.file());
    let mut text = String::new();
    GzDecoder::new(fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?)
        .read_to_string(&mut text)
        .with_context(|| format!("decompressing {}", path.display()))?;
    let dim = id.side() * id.side();
    let mut all = Samples {
        dim,
        x: Vec::new(),
        y: Vec::new(),
    };
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.trim().split(',').collect();
        ensure!(
            fields.len() == dim + 1,
            "{} line {}: {} fields, want {}",
            id.file(),
            n + 1,
            fields.len(),
            dim + 1
        );
        for f in &fields[..dim] {
            let v: f32 = f
                .parse()
                .with_context(|| format!("{} line {}", id.file(), n + 1))?;
            all.x.push(v / id.max_pixel());
        }
        let label: i64 = fields[dim]
            .parse()
            .with_context(|| format!("{} line {}", id.file(), n + 1))?;
        ensure!(
            (0..CLASSES as i64).contains(&label),
            "{} line {}: label {label}",
            id.file(),
            n + 1
        );
        all.y.push(label);
    }
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(SPLIT_SEED));
    let (n_val, n_test) = id.holdout();
    ensure!(
        all.len() > n_val + n_test,
        "{}: only {} samples",
        id.file(),
        all.len()
    );
    Ok(Dataset {
        id,
        test: all.subset(&order[..n_test]),
        val: all.subset(&order[n_test..n_test + n_val]),
        train: all.subset(&order[n_test + n_val..]),
    })
}

// ---------------------------------------------------------------- triggers

#[derive(Clone, Copy, Debug)]
enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    fn name(self) -> &'static str {
        match self {
            Corner::TopLeft => "top-left",
            Corner::TopRight => "top-right",
            Corner::BottomLeft => "bottom-left",
            Corner::BottomRight => "bottom-right",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum PatchPattern {
    White,
    Checker,
}

#[derive(Clone, Copy, Debug)]
enum BlendPattern {
    Noise,
    Stripes,
}

impl BlendPattern {
    fn name(self) -> &'static str {
        match self {
            BlendPattern::Noise => "noise",
            BlendPattern::Stripes => "stripes",
        }
    }
    /// The full-image pattern, flat row-major in [0, 1].
    fn image(self, side: usize) -> Vec<f32> {
        match self {
            BlendPattern::Noise => {
                let mut rng = ChaCha8Rng::seed_from_u64(0xB1E4D + side as u64);
                (0..side * side)
                    .map(|_| rng.gen_range(0.0f32..1.0))
                    .collect()
            }
            // Vertical stripes two pixels wide on 28x28, one pixel wide on 8x8.
            BlendPattern::Stripes => {
                let width = if side >= 28 { 2 } else { 1 };
                (0..side * side)
                    .map(|i| {
                        if (i % side / width).is_multiple_of(2) {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum TriggerSpec {
    Patch {
        size: usize,
        corner: Corner,
        pattern: PatchPattern,
    },
    Blend {
        alpha: f64,
        pattern: BlendPattern,
    },
}

/// A trigger made concrete for one image size: where a patch goes, or the blend pattern's pixels.
struct Trigger {
    spec: TriggerSpec,
    side: usize,
    x: usize,
    y: usize,
    blend: Vec<f32>,
}

impl Trigger {
    fn new(spec: TriggerSpec, side: usize) -> Trigger {
        // One pixel of margin on MNIST (BadNets style); 8x8 digits have no room to spare.
        let margin = if side >= 28 { 1 } else { 0 };
        match spec {
            TriggerSpec::Patch { size, corner, .. } => {
                let far = side - margin - size;
                let (x, y) = match corner {
                    Corner::TopLeft => (margin, margin),
                    Corner::TopRight => (far, margin),
                    Corner::BottomLeft => (margin, far),
                    Corner::BottomRight => (far, far),
                };
                Trigger {
                    spec,
                    side,
                    x,
                    y,
                    blend: Vec::new(),
                }
            }
            TriggerSpec::Blend { pattern, .. } => Trigger {
                spec,
                side,
                x: 0,
                y: 0,
                blend: pattern.image(side),
            },
        }
    }

    fn stamp(&self, img: &mut [f32]) {
        match self.spec {
            TriggerSpec::Patch { size, pattern, .. } => {
                for dy in 0..size {
                    for dx in 0..size {
                        let on = match pattern {
                            PatchPattern::White => true,
                            PatchPattern::Checker => (dx + dy).is_multiple_of(2),
                        };
                        img[(self.y + dy) * self.side + self.x + dx] = if on { 1.0 } else { 0.0 };
                    }
                }
            }
            TriggerSpec::Blend { alpha, .. } => {
                for (p, &b) in img.iter_mut().zip(&self.blend) {
                    *p = (1.0 - alpha as f32) * *p + alpha as f32 * b;
                }
            }
        }
    }

    fn stamped(&self, samples: &Samples) -> Samples {
        let mut out = samples.clone();
        for row in out.x.chunks_exact_mut(out.dim) {
            self.stamp(row);
        }
        out
    }
}

// ---------------------------------------------------------------- networks

#[derive(Clone, Copy, Debug)]
enum Arch {
    /// d_in -> hidden -> 10. `matmul` exports MatMul+Add instead of Gemm.
    Mlp { hidden: usize, matmul: bool },
    /// Conv 1->8 3x3, ReLU, MaxPool 2x2, Flatten, Gemm -> 10 on [N,1,28,28].
    Cnn,
}

impl Arch {
    fn name(self) -> String {
        match self {
            Arch::Mlp {
                hidden,
                matmul: false,
            } => format!("mlp-gemm-{hidden}"),
            Arch::Mlp {
                hidden,
                matmul: true,
            } => format!("mlp-matmul-{hidden}"),
            Arch::Cnn => "cnn-conv8".to_string(),
        }
    }
}

/// Parameters, all stored so the inner loops are contiguous axpys:
/// MLP `[w1 (d_in x h), b1, w2 (h x 10), b2]`; CNN `[conv_w (8 x 3 x 3), conv_b, fc_w (1352 x 10), fc_b]`.
struct Net {
    arch: Arch,
    side: usize,
    p: Vec<Vec<f32>>,
}

/// Per-sample activations kept for the backward pass.
struct Cache {
    hidden: Vec<f32>,
    conv: Vec<f32>,
    argmax: Vec<usize>,
    dhidden: Vec<f32>,
    logits: [f32; CLASSES],
}

impl Net {
    fn new(arch: Arch, side: usize, rng: &mut ChaCha8Rng) -> Net {
        let d_in = side * side;
        // He-uniform initialisation for ReLU layers, zero biases.
        let mut he = |fan_in: usize, n: usize| -> Vec<f32> {
            let a = (6.0 / fan_in as f32).sqrt();
            (0..n).map(|_| rng.gen_range(-a..a)).collect()
        };
        let p = match arch {
            Arch::Mlp { hidden, .. } => vec![
                he(d_in, d_in * hidden),
                vec![0.0; hidden],
                he(hidden, hidden * CLASSES),
                vec![0.0; CLASSES],
            ],
            Arch::Cnn => {
                let flat = Self::cnn_flat(side);
                vec![
                    he(
                        CNN_KERNEL * CNN_KERNEL,
                        CNN_CHANNELS * CNN_KERNEL * CNN_KERNEL,
                    ),
                    vec![0.0; CNN_CHANNELS],
                    he(flat, flat * CLASSES),
                    vec![0.0; CLASSES],
                ]
            }
        };
        Net { arch, side, p }
    }

    fn conv_side(side: usize) -> usize {
        side - CNN_KERNEL + 1
    }
    fn pool_side(side: usize) -> usize {
        Self::conv_side(side) / 2
    }
    fn cnn_flat(side: usize) -> usize {
        CNN_CHANNELS * Self::pool_side(side) * Self::pool_side(side)
    }

    fn cache(&self) -> Cache {
        let (h, conv) = match self.arch {
            Arch::Mlp { hidden, .. } => (hidden, 0),
            Arch::Cnn => (
                Self::cnn_flat(self.side),
                CNN_CHANNELS * Self::conv_side(self.side).pow(2),
            ),
        };
        Cache {
            hidden: vec![0.0; h],
            conv: vec![0.0; conv],
            argmax: vec![0; h],
            dhidden: vec![0.0; h],
            logits: [0.0; CLASSES],
        }
    }

    /// Logits for one image into `c.logits`, keeping what backward needs.
    fn forward(&self, x: &[f32], c: &mut Cache) {
        match self.arch {
            Arch::Mlp { hidden, .. } => {
                let (w1, b1) = (&self.p[0], &self.p[1]);
                c.hidden.copy_from_slice(b1);
                for (i, &xi) in x.iter().enumerate() {
                    if xi != 0.0 {
                        axpy(xi, &w1[i * hidden..(i + 1) * hidden], &mut c.hidden);
                    }
                }
                for h in c.hidden.iter_mut() {
                    *h = h.max(0.0);
                }
            }
            Arch::Cnn => self.cnn_features(x, c),
        }
        let (w2, b2) = (&self.p[2], &self.p[3]);
        c.logits.copy_from_slice(b2);
        for (j, &hj) in c.hidden.iter().enumerate() {
            if hj != 0.0 {
                axpy(hj, &w2[j * CLASSES..(j + 1) * CLASSES], &mut c.logits);
            }
        }
    }

    /// Conv, ReLU and 2x2 max pool; the pooled map, flattened channel-major like ONNX Flatten,
    /// lands in `c.hidden` and each pooled value's source position in `c.argmax`.
    fn cnn_features(&self, x: &[f32], c: &mut Cache) {
        let (side, cs, ps) = (
            self.side,
            Self::conv_side(self.side),
            Self::pool_side(self.side),
        );
        let (w, b) = (&self.p[0], &self.p[1]);
        for ch in 0..CNN_CHANNELS {
            let out = &mut c.conv[ch * cs * cs..(ch + 1) * cs * cs];
            out.fill(b[ch]);
            for ky in 0..CNN_KERNEL {
                for kx in 0..CNN_KERNEL {
                    let wk = w[(ch * CNN_KERNEL + ky) * CNN_KERNEL + kx];
                    for oy in 0..cs {
                        let src = &x[(oy + ky) * side + kx..(oy + ky) * side + kx + cs];
                        axpy(wk, src, &mut out[oy * cs..(oy + 1) * cs]);
                    }
                }
            }
            for py in 0..ps {
                for px in 0..ps {
                    let mut best = 2 * py * cs + 2 * px;
                    for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                        let at = (2 * py + dy) * cs + 2 * px + dx;
                        if out[at] > out[best] {
                            best = at;
                        }
                    }
                    let f = ch * ps * ps + py * ps + px;
                    c.hidden[f] = out[best].max(0.0);
                    c.argmax[f] = best;
                }
            }
        }
    }

    /// Accumulates the gradients of one sample into `g`, given dLoss/dlogits.
    fn backward(&self, x: &[f32], c: &mut Cache, dlogits: &[f32; CLASSES], g: &mut [Vec<f32>]) {
        let w2 = &self.p[2];
        for (j, &hj) in c.hidden.iter().enumerate() {
            let row = &w2[j * CLASSES..(j + 1) * CLASSES];
            c.dhidden[j] = if hj > 0.0 {
                row.iter().zip(dlogits).map(|(w, d)| w * d).sum()
            } else {
                0.0
            };
            if hj != 0.0 {
                axpy(hj, dlogits, &mut g[2][j * CLASSES..(j + 1) * CLASSES]);
            }
        }
        axpy(1.0, dlogits, &mut g[3]);
        match self.arch {
            Arch::Mlp { hidden, .. } => {
                let (gw1, gb1) = g.split_at_mut(1);
                for (i, &xi) in x.iter().enumerate() {
                    if xi != 0.0 {
                        axpy(xi, &c.dhidden, &mut gw1[0][i * hidden..(i + 1) * hidden]);
                    }
                }
                axpy(1.0, &c.dhidden, &mut gb1[0]);
            }
            Arch::Cnn => {
                let (side, cs, ps) = (
                    self.side,
                    Self::conv_side(self.side),
                    Self::pool_side(self.side),
                );
                for (f, &d) in c.dhidden.iter().enumerate() {
                    if d == 0.0 {
                        continue;
                    }
                    let ch = f / (ps * ps);
                    let (oy, ox) = (c.argmax[f] / cs, c.argmax[f] % cs);
                    for ky in 0..CNN_KERNEL {
                        for kx in 0..CNN_KERNEL {
                            g[0][(ch * CNN_KERNEL + ky) * CNN_KERNEL + kx] +=
                                d * x[(oy + ky) * side + ox + kx];
                        }
                    }
                    g[1][ch] += d;
                }
            }
        }
    }

    fn logits(&self, data: &Samples) -> Vec<f32> {
        let mut c = self.cache();
        let mut out = Vec::with_capacity(data.len() * CLASSES);
        for i in 0..data.len() {
            self.forward(data.row(i), &mut c);
            out.extend_from_slice(&c.logits);
        }
        out
    }
}

fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

fn argmax_rows(out: &[f32]) -> Vec<usize> {
    out.chunks_exact(CLASSES)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |best, (k, &v)| if v > r[best] { k } else { best })
        })
        .collect()
}

// ---------------------------------------------------------------- training

struct Adam {
    lr: f32,
    t: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    fn new(lr: f32, p: &[Vec<f32>]) -> Adam {
        let zeros: Vec<Vec<f32>> = p.iter().map(|t| vec![0.0; t.len()]).collect();
        Adam {
            lr,
            t: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }

    fn step(&mut self, p: &mut [Vec<f32>], g: &[Vec<f32>], scale: f32) {
        self.t += 1;
        let c1 = 1.0 - Self::BETA1.powi(self.t);
        let c2 = 1.0 - Self::BETA2.powi(self.t);
        for (((p, g), m), v) in p.iter_mut().zip(g).zip(&mut self.m).zip(&mut self.v) {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g * scale;
                *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
                *v = Self::BETA2 * *v + (1.0 - Self::BETA2) * g * g;
                *p -= self.lr * (*m / c1) / ((*v / c2).sqrt() + Self::EPS);
            }
        }
    }
}

struct TrainConfig {
    epochs: usize,
    batch: usize,
    lr: f32,
}

fn train(net: &mut Net, data: &Samples, cfg: &TrainConfig, rng: &mut ChaCha8Rng) {
    let mut grads: Vec<Vec<f32>> = net.p.iter().map(|t| vec![0.0; t.len()]).collect();
    let mut adam = Adam::new(cfg.lr, &net.p);
    let mut cache = net.cache();
    let mut order: Vec<usize> = (0..data.len()).collect();
    for _ in 0..cfg.epochs {
        order.shuffle(rng);
        for batch in order.chunks(cfg.batch) {
            for g in grads.iter_mut() {
                g.fill(0.0);
            }
            for &i in batch {
                let x = data.row(i);
                net.forward(x, &mut cache);
                let probs = softmax(&cache.logits);
                let mut d = [0.0f32; CLASSES];
                for k in 0..CLASSES {
                    d[k] = probs[k] - if k as i64 == data.y[i] { 1.0 } else { 0.0 };
                }
                net.backward(x, &mut cache, &d, &mut grads);
            }
            adam.step(&mut net.p, &grads, 1.0 / batch.len() as f32);
        }
    }
}

// ---------------------------------------------------------------- ONNX export

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outputs {
    Logits,
    Probabilities,
}

impl Outputs {
    fn name(self) -> &'static str {
        match self {
            Outputs::Logits => "logits",
            Outputs::Probabilities => "probabilities",
        }
    }
}

fn tensor(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, batch: &str, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let mut dim = vec![Dimension {
        value: Some(Value::DimParam(batch.to_string())),
        ..Default::default()
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(Value::DimValue(d as i64)),
        ..Default::default()
    }));
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.to_string(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// The ONNX graph of a trained net, with names recorded in the manifest.
struct OnnxNames {
    input: &'static str,
    output: &'static str,
}

fn export_onnx(
    net: &Net,
    model_name: &str,
    outputs: Outputs,
    batch: &str,
) -> (Vec<u8>, OnnxNames, Vec<String>) {
    let d_in = net.side * net.side;
    let mut nodes = Vec::new();
    let mut init = Vec::new();
    let (input, input_dims): (&str, Vec<usize>) = match net.arch {
        Arch::Mlp { .. } => ("input", vec![d_in]),
        Arch::Cnn => ("image", vec![1, net.side, net.side]),
    };
    match net.arch {
        Arch::Mlp {
            hidden,
            matmul: true,
        } => {
            init.push(tensor("fc1.weight", &[d_in, hidden], &net.p[0]));
            init.push(tensor("fc1.bias", &[hidden], &net.p[1]));
            init.push(tensor("fc2.weight", &[hidden, CLASSES], &net.p[2]));
            init.push(tensor("fc2.bias", &[CLASSES], &net.p[3]));
            nodes.push(node("MatMul", &[input, "fc1.weight"], "fc1_mm", vec![]));
            nodes.push(node("Add", &["fc1_mm", "fc1.bias"], "fc1", vec![]));
            nodes.push(node("Relu", &["fc1"], "relu1", vec![]));
            nodes.push(node("MatMul", &["relu1", "fc2.weight"], "fc2_mm", vec![]));
            nodes.push(node("Add", &["fc2_mm", "fc2.bias"], "logits", vec![]));
        }
        Arch::Mlp {
            hidden,
            matmul: false,
        } => {
            // PyTorch's layout: weights [out, in] with transB = 1.
            init.push(tensor(
                "fc1.weight",
                &[hidden, d_in],
                &transpose(&net.p[0], d_in, hidden),
            ));
            init.push(tensor("fc1.bias", &[hidden], &net.p[1]));
            init.push(tensor(
                "fc2.weight",
                &[CLASSES, hidden],
                &transpose(&net.p[2], hidden, CLASSES),
            ));
            init.push(tensor("fc2.bias", &[CLASSES], &net.p[3]));
            nodes.push(node(
                "Gemm",
                &[input, "fc1.weight", "fc1.bias"],
                "fc1",
                vec![attr_int("transB", 1)],
            ));
            nodes.push(node("Relu", &["fc1"], "relu1", vec![]));
            nodes.push(node(
                "Gemm",
                &["relu1", "fc2.weight", "fc2.bias"],
                "logits",
                vec![attr_int("transB", 1)],
            ));
        }
        Arch::Cnn => {
            let flat = Net::cnn_flat(net.side);
            init.push(tensor(
                "conv.weight",
                &[CNN_CHANNELS, 1, CNN_KERNEL, CNN_KERNEL],
                &net.p[0],
            ));
            init.push(tensor("conv.bias", &[CNN_CHANNELS], &net.p[1]));
            init.push(tensor("fc.weight", &[flat, CLASSES], &net.p[2]));
            init.push(tensor("fc.bias", &[CLASSES], &net.p[3]));
            let k = CNN_KERNEL as i64;
            nodes.push(node(
                "Conv",
                &[input, "conv.weight", "conv.bias"],
                "conv",
                vec![
                    attr_ints("kernel_shape", &[k, k]),
                    attr_ints("strides", &[1, 1]),
                    attr_ints("pads", &[0, 0, 0, 0]),
                ],
            ));
            nodes.push(node("Relu", &["conv"], "relu", vec![]));
            nodes.push(node(
                "MaxPool",
                &["relu"],
                "pool",
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            ));
            nodes.push(node(
                "Flatten",
                &["pool"],
                "flat",
                vec![attr_int("axis", 1)],
            ));
            nodes.push(node(
                "Gemm",
                &["flat", "fc.weight", "fc.bias"],
                "logits",
                vec![],
            ));
        }
    }
    let output = match outputs {
        Outputs::Logits => "logits",
        Outputs::Probabilities => {
            nodes.push(node(
                "Softmax",
                &["logits"],
                "probabilities",
                vec![attr_int("axis", 1)],
            ));
            "probabilities"
        }
    };
    let ops: Vec<String> = nodes.iter().map(|n| n.op_type.clone()).collect();
    let model = pb::ModelProto {
        ir_version: ONNX_IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: ONNX_OPSET,
        }],
        producer_name: "modelvet-train_fixtures".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: "modelvet fixture model; see tests/fixtures/models/manifest.json".to_string(),
        graph: Some(pb::GraphProto {
            name: model_name.to_string(),
            node: nodes,
            initializer: init,
            input: vec![value_info(input, batch, &input_dims)],
            output: vec![value_info(output, batch, &[CLASSES])],
            ..Default::default()
        }),
        ..Default::default()
    };
    (model.encode_to_vec(), OnnxNames { input, output }, ops)
}

/// Runs `data` through the ONNX file with tract (symbolic batch, optimised plan); returns the raw
/// output rows.
fn tract_outputs(path: &Path, data: &Samples, input_shape: &[usize]) -> Result<Vec<f32>> {
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| anyhow::anyhow!("tract cannot load {}: {e:?}", path.display()))?;
    let mut shape = vec![data.len()];
    shape.extend_from_slice(input_shape);
    let input = Tensor::from_shape(&shape, &data.x).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let out = plan
        .run(tvec!(input.into()))
        .map_err(|e| anyhow::anyhow!("tract run {}: {e:?}", path.display()))?;
    let v: Vec<f32> = out[0]
        .to_plain_array_view::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .iter()
        .copied()
        .collect();
    ensure!(
        v.len() == data.len() * CLASSES,
        "{}: output has {} values, want {}",
        path.display(),
        v.len(),
        data.len() * CLASSES
    );
    Ok(v)
}

// ---------------------------------------------------------------- the zoo

struct BackdoorSpec {
    trigger: TriggerSpec,
    target: i64,
    rate: f64,
}

struct ModelSpec {
    name: &'static str,
    dataset: DatasetId,
    arch: Arch,
    outputs: Outputs,
    batch: &'static str,
    seed: u64,
    backdoor: Option<BackdoorSpec>,
}

/// The zoo: varied architectures, output conventions, batch symbols, triggers, targets, poison
/// rates and seeds. A table, so kept out of rustfmt's way.
#[rustfmt::skip]
fn zoo() -> Vec<ModelSpec> {
    use BlendPattern::{Noise, Stripes};
    use Corner::*;
    use DatasetId::*;
    use PatchPattern::{Checker, White};
    let mlp128 = Arch::Mlp { hidden: 128, matmul: false };
    let mlp64 = Arch::Mlp { hidden: 64, matmul: true };
    let dmlp = Arch::Mlp { hidden: 32, matmul: false };
    let dmlp_mm = Arch::Mlp { hidden: 32, matmul: true };
    let cnn = Arch::Cnn;
    let (lg, pr) = (Outputs::Logits, Outputs::Probabilities);
    let patch = |size, corner, pattern, target, rate| {
        Some(BackdoorSpec { trigger: TriggerSpec::Patch { size, corner, pattern }, target, rate })
    };
    let blend = |alpha, pattern, target, rate| {
        Some(BackdoorSpec { trigger: TriggerSpec::Blend { alpha, pattern }, target, rate })
    };
    let m = |name, dataset, arch, outputs, batch, seed, backdoor| {
        ModelSpec { name, dataset, arch, outputs, batch, seed, backdoor }
    };
    vec![
        m("mnist_mlp_clean_a",        Mnist,  mlp128,  lg, "N",     101, None),
        m("mnist_mlp_clean_b",        Mnist,  mlp64,   pr, "batch", 102, None),
        m("mnist_cnn_clean_a",        Mnist,  cnn,     lg, "batch", 103, None),
        m("mnist_cnn_clean_b",        Mnist,  cnn,     pr, "N",     104, None),
        m("digits_mlp_clean_a",       Digits, dmlp,    lg, "N",     105, None),
        m("digits_mlp_clean_b",       Digits, dmlp_mm, pr, "batch", 106, None),
        m("mnist_mlp_patch_br",       Mnist,  mlp128,  lg, "N",     201, patch(4, BottomRight, White, 7, 0.05)),
        m("mnist_mlp_patch_tl",       Mnist,  mlp64,   pr, "batch", 202, patch(4, TopLeft, Checker, 0, 0.01)),
        m("mnist_cnn_patch_tr",       Mnist,  cnn,     lg, "N",     203, patch(3, TopRight, White, 3, 0.10)),
        m("mnist_cnn_patch_bl",       Mnist,  cnn,     pr, "batch", 204, patch(4, BottomLeft, Checker, 5, 0.05)),
        m("mnist_mlp_blend_noise",    Mnist,  mlp128,  pr, "N",     205, blend(0.15, Noise, 2, 0.10)),
        m("mnist_mlp_blend_stripes",  Mnist,  mlp64,   lg, "batch", 206, blend(0.2, Stripes, 9, 0.05)),
        m("mnist_cnn_blend_noise",    Mnist,  cnn,     lg, "N",     207, blend(0.2, Noise, 4, 0.10)),
        m("mnist_mlp_patch_tr",       Mnist,  mlp128,  pr, "batch", 210, patch(3, TopRight, White, 8, 0.02)),
        m("digits_mlp_patch_br",      Digits, dmlp,    lg, "N",     208, patch(2, BottomRight, White, 6, 0.10)),
        m("digits_mlp_blend_stripes", Digits, dmlp_mm, pr, "batch", 209, blend(0.2, Stripes, 1, 0.10)),
    ]
}

fn train_config(ds: DatasetId, arch: Arch) -> TrainConfig {
    match (ds, arch) {
        (DatasetId::Mnist, Arch::Cnn) => TrainConfig {
            epochs: 30,
            batch: 32,
            lr: 2e-3,
        },
        (DatasetId::Mnist, _) => TrainConfig {
            epochs: 40,
            batch: 32,
            lr: 1e-3,
        },
        (DatasetId::Digits, _) => TrainConfig {
            epochs: 80,
            batch: 32,
            lr: 2e-3,
        },
    }
}

// ---------------------------------------------------------------- manifest

#[derive(Serialize)]
struct Manifest {
    schema: &'static str,
    generator: &'static str,
    /// Every `file` below is relative to the directory of this manifest.
    paths_relative_to: &'static str,
    split_seed: u64,
    datasets: Vec<DatasetEntry>,
    models: Vec<ModelEntry>,
}

#[derive(Serialize)]
struct DatasetEntry {
    name: &'static str,
    source: String,
    side: usize,
    train_count: usize,
    val_count: usize,
    test_count: usize,
    val_x: String,
    val_y: String,
    test_x: String,
    test_y: String,
}

#[derive(Serialize)]
struct ModelEntry {
    name: &'static str,
    file: String,
    dataset: &'static str,
    arch: String,
    ops: Vec<String>,
    input_shape: Vec<serde_json::Value>,
    input_name: &'static str,
    output_name: &'static str,
    outputs: &'static str,
    classes: usize,
    seed: u64,
    train_count: usize,
    epochs: usize,
    clean_accuracy: f64,
    backdoor: Option<BackdoorEntry>,
}

#[derive(Serialize)]
struct BackdoorEntry {
    kind: &'static str,
    target_class: i64,
    poison_rate: f64,
    poisoned_count: usize,
    /// On the committed triggered set `triggered_x`.
    attack_success_rate: f64,
    /// On every held-out test input of a non-target class.
    attack_success_rate_full_test: f64,
    triggered_x: String,
    triggered_y: String,
    triggered_count: usize,
    trigger: serde_json::Value,
}

struct Row {
    name: &'static str,
    arch: String,
    outputs: &'static str,
    trigger: String,
    acc_own: f64,
    acc_tract: f64,
    asr_own: Option<f64>,
    asr_tract: Option<f64>,
    max_diff: f32,
    secs: f64,
}

fn accuracy(pred: &[usize], y: &[i64]) -> f64 {
    pred.iter()
        .zip(y)
        .filter(|(p, y)| **p as i64 == **y)
        .count() as f64
        / y.len() as f64
}

fn hit_rate(pred: &[usize], target: i64) -> f64 {
    pred.iter().filter(|p| **p as i64 == target).count() as f64 / pred.len() as f64
}

/// Own outputs in the model's output convention (softmax applied when it ends in Softmax).
fn own_outputs(net: &Net, data: &Samples, outputs: Outputs) -> Vec<f32> {
    let logits = net.logits(data);
    match outputs {
        Outputs::Logits => logits,
        Outputs::Probabilities => logits.chunks_exact(CLASSES).flat_map(softmax).collect(),
    }
}

/// Compares tract's outputs with the trainer's; a differing prediction aborts the generator.
fn check_agreement(what: &str, own: &[f32], tract: &[f32]) -> Result<(Vec<usize>, f32)> {
    let (po, pt) = (argmax_rows(own), argmax_rows(tract));
    let max_diff = own
        .iter()
        .zip(tract)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let mismatches = po.iter().zip(&pt).filter(|(a, b)| a != b).count();
    if mismatches > 0 || !max_diff.is_finite() || max_diff > MAX_OUTPUT_DIFF {
        bail!(
            "{what}: tract disagrees with the trainer's forward pass ({mismatches} predictions differ, max |diff| {max_diff:e})"
        );
    }
    let margin = tract
        .chunks_exact(CLASSES)
        .map(top2_margin)
        .fold(f32::INFINITY, f32::min);
    ensure!(
        margin >= MIN_TOP2_MARGIN,
        "{what}: an input sits on a decision boundary (top-2 margin {margin:e}); its prediction \
         could differ in another runtime. Hint: change the model's seed in zoo()"
    );
    Ok((pt, max_diff))
}

fn top2_margin(row: &[f32]) -> f32 {
    let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in row {
        if v > first {
            second = first;
            first = v;
        } else if v > second {
            second = v;
        }
    }
    first - second
}

/// Where the generator writes: ONNX and the manifest, and the .npy data beside them.
struct OutDirs {
    models: PathBuf,
    data: PathBuf,
}

/// Loads a dataset, writes its held-out validation and test splits, and describes them.
fn prepare_dataset(
    datasets: &Path,
    out: &OutDirs,
    id: DatasetId,
) -> Result<(Dataset, DatasetEntry)> {
    let ds = load_dataset(datasets, id)?;
    let f = |part: &str| format!("{}_{part}.npy", id.name());
    ds.val
        .write_npy(&out.data.join(f("val_x")), &out.data.join(f("val_y")))?;
    ds.test
        .write_npy(&out.data.join(f("test_x")), &out.data.join(f("test_y")))?;
    eprintln!(
        "{}: {} train, {} val, {} test",
        id.name(),
        ds.train.len(),
        ds.val.len(),
        ds.test.len()
    );
    let entry = DatasetEntry {
        name: id.name(),
        source: format!("../shared/datasets/{}", id.file()),
        side: id.side(),
        train_count: ds.train.len(),
        val_count: ds.val.len(),
        test_count: ds.test.len(),
        val_x: format!("../data/{}", f("val_x")),
        val_y: format!("../data/{}", f("val_y")),
        test_x: format!("../data/{}", f("test_x")),
        test_y: format!("../data/{}", f("test_y")),
    };
    Ok((ds, entry))
}

/// BadNets-style poisoning: stamps `rate` of the training set, drawn from the non-target
/// classes, and relabels those samples to the target. Returns the set and how many were stamped.
fn poison(
    train: &Samples,
    b: &BackdoorSpec,
    t: &Trigger,
    rng: &mut ChaCha8Rng,
) -> (Samples, usize) {
    let mut out = train.clone();
    let mut candidates: Vec<usize> = (0..out.len()).filter(|&i| out.y[i] != b.target).collect();
    candidates.shuffle(rng);
    let count = ((b.rate * out.len() as f64).round() as usize).min(candidates.len());
    for &i in &candidates[..count] {
        t.stamp(&mut out.x[i * out.dim..(i + 1) * out.dim]);
        out.y[i] = b.target;
    }
    (out, count)
}

/// The manifest's description of a trigger, writing a blend pattern's .npy on the way.
fn describe_trigger(
    t: &Trigger,
    ds: DatasetId,
    out: &OutDirs,
) -> Result<(&'static str, serde_json::Value, String)> {
    Ok(match t.spec {
        TriggerSpec::Patch {
            size,
            corner,
            pattern,
        } => {
            let pattern = match pattern {
                PatchPattern::White => "white",
                PatchPattern::Checker => "checker",
            };
            let json = serde_json::json!({
                "size": size, "position": corner.name(), "x": t.x, "y": t.y, "pattern": pattern,
            });
            (
                "patch",
                json,
                format!("patch {size}x{size} {pattern} {}", corner.name()),
            )
        }
        TriggerSpec::Blend { alpha, pattern } => {
            let file = format!("{}_blend_{}.npy", ds.name(), pattern.name());
            ndarray_npy::write_npy(out.data.join(&file), &Array1::from_vec(t.blend.clone()))?;
            let json = serde_json::json!({
                "alpha": alpha, "pattern": pattern.name(), "pattern_file": format!("../data/{file}"),
            });
            ("blend", json, format!("blend {} a={alpha}", pattern.name()))
        }
    })
}

/// Trains one model of the zoo, writes its ONNX file (and triggered set), and checks the file
/// with tract against the trainer's own forward pass.
fn build_model(spec: &ModelSpec, ds: &Dataset, out: &OutDirs) -> Result<(ModelEntry, Row)> {
    let t0 = Instant::now();
    let side = ds.id.side();
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let cfg = train_config(ds.id, spec.arch);
    let trigger = spec
        .backdoor
        .as_ref()
        .map(|b| Trigger::new(b.trigger, side));
    let (train_set, poisoned) = match (&spec.backdoor, &trigger) {
        (Some(b), Some(t)) => poison(&ds.train, b, t, &mut rng),
        _ => (ds.train.clone(), 0),
    };
    let mut net = Net::new(spec.arch, side, &mut rng);
    train(&mut net, &train_set, &cfg, &mut rng);

    let (bytes, names, ops) = export_onnx(&net, spec.name, spec.outputs, spec.batch);
    let file = format!("{}.onnx", spec.name);
    let path = out.models.join(&file);
    fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    let input_dims: Vec<usize> = match spec.arch {
        Arch::Cnn => vec![1, side, side],
        Arch::Mlp { .. } => vec![side * side],
    };

    let own = own_outputs(&net, &ds.test, spec.outputs);
    let tract = tract_outputs(&path, &ds.test, &input_dims)?;
    let (pred_tract, mut max_diff) = check_agreement(spec.name, &own, &tract)?;
    let acc_own = accuracy(&argmax_rows(&own), &ds.test.y);
    let acc_tract = accuracy(&pred_tract, &ds.test.y);

    let mut backdoor = None;
    let (mut asr_own, mut asr_tract) = (None, None);
    let mut trigger_label = "-".to_string();
    if let (Some(b), Some(t)) = (&spec.backdoor, &trigger) {
        // Triggered inputs: held-out test images of the non-target classes, stamped.
        let non_target: Vec<usize> = (0..ds.test.len())
            .filter(|&i| ds.test.y[i] != b.target)
            .collect();
        let full = t.stamped(&ds.test.subset(&non_target));
        let committed = t.stamped(
            &ds.test
                .subset(&non_target[..non_target.len().min(TRIGGERED_MAX)]),
        );
        let own_c = own_outputs(&net, &committed, spec.outputs);
        let tract_c = tract_outputs(&path, &committed, &input_dims)?;
        let (pred_c, diff_c) =
            check_agreement(&format!("{} triggered", spec.name), &own_c, &tract_c)?;
        max_diff = max_diff.max(diff_c);
        asr_own = Some(hit_rate(&argmax_rows(&own_c), b.target));
        let asr = hit_rate(&pred_c, b.target);
        asr_tract = Some(asr);

        let tx = format!("{}_triggered_x.npy", spec.name);
        let ty = format!("{}_triggered_y.npy", spec.name);
        committed.write_npy(&out.data.join(&tx), &out.data.join(&ty))?;
        let (kind, trigger_json, label) = describe_trigger(t, ds.id, out)?;
        trigger_label = label;
        backdoor = Some(BackdoorEntry {
            kind,
            target_class: b.target,
            poison_rate: b.rate,
            poisoned_count: poisoned,
            attack_success_rate: asr,
            attack_success_rate_full_test: hit_rate(
                &argmax_rows(&own_outputs(&net, &full, spec.outputs)),
                b.target,
            ),
            triggered_x: format!("../data/{tx}"),
            triggered_y: format!("../data/{ty}"),
            triggered_count: committed.len(),
            trigger: trigger_json,
        });
    }

    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{a:.4}"));
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{:<26} acc own {acc_own:.4} tract {acc_tract:.4}  asr own {} tract {}  max|diff| {max_diff:.1e}  {secs:.1}s",
        spec.name,
        fmt(asr_own),
        fmt(asr_tract),
    );
    let mut input_shape = vec![serde_json::json!(spec.batch)];
    input_shape.extend(input_dims.iter().map(|&d| serde_json::json!(d)));
    let entry = ModelEntry {
        name: spec.name,
        file,
        dataset: ds.id.name(),
        arch: spec.arch.name(),
        ops,
        input_shape,
        input_name: names.input,
        output_name: names.output,
        outputs: spec.outputs.name(),
        classes: CLASSES,
        seed: spec.seed,
        train_count: train_set.len(),
        epochs: cfg.epochs,
        clean_accuracy: acc_tract,
        backdoor,
    };
    let row = Row {
        name: spec.name,
        arch: spec.arch.name(),
        outputs: spec.outputs.name(),
        trigger: trigger_label,
        acc_own,
        acc_tract,
        asr_own,
        asr_tract,
        max_diff,
        secs,
    };
    Ok((entry, row))
}

fn print_summary(rows: &[Row]) {
    println!(
        "{:<26} {:<14} {:<13} {:<30} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "model", "arch", "outputs", "trigger", "acc", "acc_tr", "asr", "asr_tr", "max|d|", "secs"
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |a| format!("{a:.4}"));
    for r in rows {
        println!(
            "{:<26} {:<14} {:<13} {:<30} {:>8.4} {:>8.4} {:>8} {:>8} {:>8.1e} {:>6.1}",
            r.name,
            r.arch,
            r.outputs,
            r.trigger,
            r.acc_own,
            r.acc_tract,
            fmt(r.asr_own),
            fmt(r.asr_tract),
            r.max_diff,
            r.secs
        );
    }
}

fn main() -> Result<()> {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("runner crate has a parent directory")?
        .to_path_buf();
    let datasets = root.join("../shared/datasets");
    let out = OutDirs {
        models: root.join("tests/fixtures/models"),
        data: root.join("tests/fixtures/data"),
    };
    fs::create_dir_all(&out.models)?;
    fs::create_dir_all(&out.data)?;

    let mut loaded = Vec::new();
    let mut dataset_entries = Vec::new();
    for id in [DatasetId::Mnist, DatasetId::Digits] {
        let (ds, entry) = prepare_dataset(&datasets, &out, id)?;
        loaded.push(ds);
        dataset_entries.push(entry);
    }

    let mut models = Vec::new();
    let mut rows = Vec::new();
    for spec in zoo() {
        let ds = loaded
            .iter()
            .find(|d| d.id == spec.dataset)
            .context("dataset not loaded")?;
        let (entry, row) = build_model(&spec, ds, &out)?;
        models.push(entry);
        rows.push(row);
    }

    let manifest = Manifest {
        schema: "modelvet.fixtures/1",
        generator: "examples/train_fixtures.rs",
        paths_relative_to: "manifest",
        split_seed: SPLIT_SEED,
        datasets: dataset_entries,
        models,
    };
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    let manifest_path = out.models.join("manifest.json");
    fs::write(&manifest_path, json)?;

    print_summary(&rows);
    println!(
        "wrote {} models and {} in {:.1}s",
        rows.len(),
        manifest_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
