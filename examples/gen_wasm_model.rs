//! Trains a small MLP (64-32-10, ReLU) on the 8x8 digits and writes it as a WASM model in WAT
//! text following docs/wasm-abi.md: weights in a data segment, the forward pass in WAT.
//! Run: `cargo run --release -p modelvet --example gen_wasm_model` (from the repo root).
//! Writes `examples/wasm/digits_model.wat` and `examples/wasm/digits_model.json` (accuracy on the
//! held-out rows, `row % 5 == 0`). Deterministic: fixed seed, f32 arithmetic in a fixed order.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const INPUTS: usize = 64;
const HIDDEN: usize = 32;
const CLASSES: usize = 10;
const EPOCHS: usize = 40;
const LEARNING_RATE: f32 = 0.05;
const SEED: u64 = 20_240_613;
/// A row is held out for testing when `row % TEST_EVERY == 0`.
const TEST_EVERY: usize = 5;

/// Where the weights live in linear memory (bytes); see the WAT below.
const W1_AT: usize = 1024;
const B1_AT: usize = W1_AT + 4 * HIDDEN * INPUTS;
const W2_AT: usize = B1_AT + 4 * HIDDEN;
const B2_AT: usize = W2_AT + 4 * CLASSES * HIDDEN;
const WEIGHTS_END: usize = B2_AT + 4 * CLASSES;
const HIDDEN_AT: usize = 12_288;
const HEAP_AT: usize = 16_384;

struct Mlp {
    /// [HIDDEN][INPUTS], row per hidden unit.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// [CLASSES][HIDDEN], row per class.
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl Mlp {
    fn new(rng: &mut ChaCha8Rng) -> Mlp {
        let mut init = |fan_in: usize, fan_out: usize| {
            let a = (6.0 / (fan_in + fan_out) as f32).sqrt();
            (0..fan_in * fan_out)
                .map(|_| rng.gen_range(-a..a))
                .collect::<Vec<f32>>()
        };
        let w1 = init(INPUTS, HIDDEN);
        let w2 = init(HIDDEN, CLASSES);
        Mlp {
            w1,
            b1: vec![0.0; HIDDEN],
            w2,
            b2: vec![0.0; CLASSES],
        }
    }

    /// The forward pass exactly as the WAT computes it: same order of f32 adds, ReLU by select.
    #[allow(clippy::needless_range_loop)] // index loops mirror the WAT's, term for term
    fn forward(&self, x: &[f32], hidden: &mut [f32; HIDDEN], out: &mut [f32; CLASSES]) {
        for j in 0..HIDDEN {
            let mut acc = self.b1[j];
            for i in 0..INPUTS {
                acc += x[i] * self.w1[j * INPUTS + i];
            }
            hidden[j] = if acc > 0.0 { acc } else { 0.0 };
        }
        for k in 0..CLASSES {
            let mut acc = self.b2[k];
            for j in 0..HIDDEN {
                acc += hidden[j] * self.w2[k * HIDDEN + j];
            }
            out[k] = acc;
        }
    }

    /// One SGD step on softmax cross-entropy.
    #[allow(clippy::needless_range_loop)] // the same index loops as the forward pass
    fn step(&mut self, x: &[f32], label: usize) {
        let (mut hidden, mut out) = ([0.0f32; HIDDEN], [0.0f32; CLASSES]);
        self.forward(x, &mut hidden, &mut out);
        let max = out.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut probs = out.map(|v| (v - max).exp());
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        probs[label] -= 1.0;
        let mut grad_hidden = [0.0f32; HIDDEN];
        for k in 0..CLASSES {
            for j in 0..HIDDEN {
                grad_hidden[j] += probs[k] * self.w2[k * HIDDEN + j];
                self.w2[k * HIDDEN + j] -= LEARNING_RATE * probs[k] * hidden[j];
            }
            self.b2[k] -= LEARNING_RATE * probs[k];
        }
        for j in 0..HIDDEN {
            if hidden[j] <= 0.0 {
                continue;
            }
            for i in 0..INPUTS {
                self.w1[j * INPUTS + i] -= LEARNING_RATE * grad_hidden[j] * x[i];
            }
            self.b1[j] -= LEARNING_RATE * grad_hidden[j];
        }
    }

    fn predict(&self, x: &[f32]) -> usize {
        let (mut hidden, mut out) = ([0.0f32; HIDDEN], [0.0f32; CLASSES]);
        self.forward(x, &mut hidden, &mut out);
        argmax(&out)
    }
}

/// First index of the largest value (ties go to the lower class, as in the tests).
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

fn load_digits(path: &Path) -> Result<Vec<(Vec<f32>, usize)>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let values: Vec<f32> = line
                .split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            if values.len() != INPUTS + 1 {
                return Err(format!(
                    "a row has {} values, expected {}",
                    values.len(),
                    INPUTS + 1
                ));
            }
            let label = values[INPUTS] as usize;
            Ok((values[..INPUTS].iter().map(|v| v / 16.0).collect(), label))
        })
        .collect()
}

fn wat_bytes(floats: &[f32], out: &mut String) {
    for f in floats {
        for b in f.to_le_bytes() {
            let _ = write!(out, "\\{b:02x}");
        }
    }
}

fn wat(model: &Mlp, accuracy: f64, correct: usize, test_count: usize) -> String {
    let mut data = String::new();
    for part in [&model.w1, &model.b1, &model.w2, &model.b2] {
        wat_bytes(part, &mut data);
    }
    format!(
        r#";; modelvet example WASM model: an MLP 64-32-10 (ReLU) on the 8x8 UCI digits, pixels / 16.
;; Generated by examples/gen_wasm_model.rs (seed {SEED}); do not edit by hand.
;; Held-out accuracy (rows with index % {TEST_EVERY} == 0): {correct}/{test_count} = {accuracy:.4}.
;; ABI: docs/wasm-abi.md. Input [N, 8, 8] f32, output [N, 10] f32 class scores (logits).
(module
  (memory (export "memory") 1)
  ;; Bump allocator above the weights; mv_alloc grows memory when needed, returns 0 on failure.
  (global $heap (mut i32) (i32.const {HEAP_AT}))
  (func (export "mv_alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $size i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 15)) (i32.const -16)))
    (if (i32.lt_u (local.get $end) (local.get $p)) (then (return (i32.const 0))))
    (local.set $size (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $size))
      (then
        (if (i32.eq
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $size)) (i32.const 65535)) (i32.const 16)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func (export "mv_input_len") (result i32) (i32.const {INPUTS}))
  (func (export "mv_output_len") (result i32) (i32.const {CLASSES}))
  ;; Per-sample input shape [8, 8]: dim i, or 0 past the last.
  (func (export "mv_input_shape") (param $i i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $i) (i32.const 2)) (then (i32.const 8)) (else (i32.const 0))))
  ;; One sample: $x points at {INPUTS} f32, $o at {CLASSES} f32.
  (func $sample (param $x i32) (param $o i32)
    (local $j i32) (local $i i32) (local $acc f32)
    (local.set $j (i32.const 0))
    (block $hidden_done (loop $hidden
      (br_if $hidden_done (i32.ge_u (local.get $j) (i32.const {HIDDEN})))
      (local.set $acc (f32.load (i32.add (i32.const {B1_AT}) (i32.shl (local.get $j) (i32.const 2)))))
      (local.set $i (i32.const 0))
      (block $dot_done (loop $dot
        (br_if $dot_done (i32.ge_u (local.get $i) (i32.const {INPUTS})))
        (local.set $acc (f32.add (local.get $acc)
          (f32.mul
            (f32.load (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2))))
            (f32.load (i32.add (i32.const {W1_AT})
              (i32.shl (i32.add (i32.mul (local.get $j) (i32.const {INPUTS})) (local.get $i)) (i32.const 2)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $dot)))
      (f32.store (i32.add (i32.const {HIDDEN_AT}) (i32.shl (local.get $j) (i32.const 2)))
        (select (local.get $acc) (f32.const 0) (f32.gt (local.get $acc) (f32.const 0))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $hidden)))
    (local.set $j (i32.const 0))
    (block $out_done (loop $out
      (br_if $out_done (i32.ge_u (local.get $j) (i32.const {CLASSES})))
      (local.set $acc (f32.load (i32.add (i32.const {B2_AT}) (i32.shl (local.get $j) (i32.const 2)))))
      (local.set $i (i32.const 0))
      (block $dot_done (loop $dot
        (br_if $dot_done (i32.ge_u (local.get $i) (i32.const {HIDDEN})))
        (local.set $acc (f32.add (local.get $acc)
          (f32.mul
            (f32.load (i32.add (i32.const {HIDDEN_AT}) (i32.shl (local.get $i) (i32.const 2))))
            (f32.load (i32.add (i32.const {W2_AT})
              (i32.shl (i32.add (i32.mul (local.get $j) (i32.const {HIDDEN})) (local.get $i)) (i32.const 2)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $dot)))
      (f32.store (i32.add (local.get $o) (i32.shl (local.get $j) (i32.const 2))) (local.get $acc))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $out)))
  )
  (func (export "mv_infer") (param $in i32) (param $n i32) (param $out i32) (result i32)
    (local $s i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $s) (local.get $n)))
      (call $sample
        (i32.add (local.get $in) (i32.mul (local.get $s) (i32.const {in_stride})))
        (i32.add (local.get $out) (i32.mul (local.get $s) (i32.const {out_stride}))))
      (local.set $s (i32.add (local.get $s) (i32.const 1)))
      (br $next)))
    (i32.const 0))
  ;; W1 [{HIDDEN}][{INPUTS}] at {W1_AT}, b1 at {B1_AT}, W2 [{CLASSES}][{HIDDEN}] at {W2_AT}, b2 at {B2_AT}; f32 little endian.
  (data (i32.const {W1_AT}) "{data}")
)
"#,
        in_stride = INPUTS * 4,
        out_stride = CLASSES * 4,
    )
}

fn main() -> Result<(), String> {
    const _: () = assert!(WEIGHTS_END <= HIDDEN_AT && HIDDEN_AT + 4 * HIDDEN <= HEAP_AT);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let rows = load_digits(&root.join("../shared/datasets/digits.csv.gz"))?;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, row) in rows.iter().enumerate() {
        if i % TEST_EVERY == 0 {
            test.push(row)
        } else {
            train.push(row)
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut model = Mlp::new(&mut rng);
    let mut order: Vec<usize> = (0..train.len()).collect();
    for _ in 0..EPOCHS {
        for i in (1..order.len()).rev() {
            let j = rng.gen_range(0..=i);
            order.swap(i, j);
        }
        for &i in &order {
            model.step(&train[i].0, train[i].1);
        }
    }
    let correct = test.iter().filter(|(x, y)| model.predict(x) == *y).count();
    let train_correct = train.iter().filter(|(x, y)| model.predict(x) == *y).count();
    let accuracy = correct as f64 / test.len() as f64;

    let out_dir = root.join("examples/wasm");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    std::fs::write(
        out_dir.join("digits_model.wat"),
        wat(&model, accuracy, correct, test.len()),
    )
    .map_err(|e| e.to_string())?;
    let summary = serde_json::json!({
        "model": "digits_model.wat",
        "dataset": "../shared/datasets/digits.csv.gz",
        "scale": "pixel / 16",
        "test_rule": format!("row % {TEST_EVERY} == 0"),
        "test_count": test.len(),
        "correct": correct,
        "accuracy": accuracy,
        "train_accuracy": train_correct as f64 / train.len() as f64,
        "seed": SEED,
        "epochs": EPOCHS,
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n";
    std::fs::write(out_dir.join("digits_model.json"), text).map_err(|e| e.to_string())?;
    println!(
        "digits MLP: held-out accuracy {correct}/{} = {accuracy:.4}",
        test.len()
    );
    Ok(())
}
