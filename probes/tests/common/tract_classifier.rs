//! The fixture zoo's ONNX models as `Classifier`s run in-process by tract, shared by the zoo
//! detection test and `examples/detection_table.rs` (included there with `#[path]`).

use std::path::Path;
use std::sync::Arc;

use probes::classifier::{Classifier, ClassifierError};
use serde_json::Value;
use tract_onnx::prelude::{
    Datum, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable, Tensor,
    TractResult, TypedRunnableModel, tvec,
};

/// An ONNX model run by tract in-process, with one optimised plan per batch size: a plan for a
/// concrete batch runs the fixture CNNs several times faster than one over a symbolic batch,
/// and the searches use only a handful of batch sizes.
pub struct TractClassifier {
    model: InferenceModel,
    plans: Vec<(usize, Arc<TypedRunnableModel>)>,
    tail: Vec<usize>,
    classes: usize,
    input_len: usize,
}

/// Plans kept per model (batch sizes seen: sample, validation, noise, STRIP copies...).
const MAX_PLANS: usize = 16;

impl TractClassifier {
    pub fn load(models_dir: &Path, model: &Value) -> TractResult<TractClassifier> {
        let file = model["file"].as_str().unwrap_or_default();
        let inference = tract_onnx::onnx().model_for_path(models_dir.join(file))?;
        let tail: Vec<usize> = model["input_shape"]
            .as_array()
            .map(|a| {
                a[1..]
                    .iter()
                    .filter_map(|d| d.as_u64())
                    .map(|d| d as usize)
                    .collect()
            })
            .unwrap_or_default();
        Ok(TractClassifier {
            model: inference,
            plans: Vec::new(),
            input_len: tail.iter().product(),
            tail,
            classes: model["classes"].as_u64().unwrap_or(0) as usize,
        })
    }

    fn plan(&mut self, n: usize) -> TractResult<Arc<TypedRunnableModel>> {
        if let Some((_, p)) = self.plans.iter().find(|(k, _)| *k == n) {
            return Ok(p.clone());
        }
        let mut shape = vec![n];
        shape.extend_from_slice(&self.tail);
        let plan = self
            .model
            .clone()
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &shape))?
            .into_optimized()?
            .into_runnable()?;
        if self.plans.len() >= MAX_PLANS {
            self.plans.remove(0);
        }
        self.plans.push((n, plan.clone()));
        Ok(plan)
    }
}

impl Classifier for TractClassifier {
    fn classes(&self) -> usize {
        self.classes
    }
    fn input_len(&self) -> usize {
        self.input_len
    }
    fn predict(&mut self, batch: &[f32], n: usize) -> Result<Vec<f32>, ClassifierError> {
        let mut shape = vec![n];
        shape.extend_from_slice(&self.tail);
        let mut run = || -> TractResult<Vec<f32>> {
            let plan = self.plan(n)?;
            let t = Tensor::from_shape(&shape, batch)?;
            let out = plan.run(tvec!(t.into()))?;
            Ok(out[0]
                .to_plain_array_view::<f32>()?
                .iter()
                .copied()
                .collect())
        };
        run().map_err(|e| ClassifierError::Model(e.to_string()))
    }
}
