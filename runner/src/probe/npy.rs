//! Reading `--inputs`, `--labels` and `--check`: float32 (float64 converted) inputs and integer
//! labels from .npy files. Anything unreadable is a usage error naming the file.

use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;

use crate::error::CliError;

/// Samples as one row-major buffer with the file's shape.
#[derive(Debug, Clone)]
pub struct Samples {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

impl Samples {
    pub fn count(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Values per sample (everything after the first axis).
    pub fn per_sample(&self) -> usize {
        self.shape
            .iter()
            .skip(1)
            .product::<usize>()
            .max(usize::from(self.shape.len() == 1))
    }

    /// Checks that each sample has `input_len` values: a sample whose element count matches is
    /// reshaped (e.g. [N,1,28,28] into [N,784]); anything else is a usage error naming both shapes.
    pub fn fit(&self, what: &str, input_len: usize, model_shape: &str) -> Result<(), CliError> {
        if self.shape.len() < 2 || self.per_sample() != input_len {
            return Err(CliError::Input(format!(
                "{what} has shape {:?} ({} values per sample) but the model takes {model_shape} ({input_len} values per sample)",
                self.shape,
                if self.shape.len() < 2 {
                    0
                } else {
                    self.per_sample()
                }
            )));
        }
        Ok(())
    }
}

fn open(path: &Path, what: &str) -> Result<std::fs::File, CliError> {
    std::fs::File::open(path)
        .map_err(|e| CliError::Input(format!("{what} {}: {e}", path.display())))
}

pub fn read_samples(path: &Path, what: &str) -> Result<Samples, CliError> {
    let arr: ArrayD<f32> = match ArrayD::<f32>::read_npy(open(path, what)?) {
        Ok(a) => a,
        Err(_) => match ArrayD::<f64>::read_npy(open(path, what)?) {
            Ok(a) => a.mapv(|v| v as f32),
            Err(e) => {
                return Err(CliError::Input(format!(
                    "{what} {}: not a float32 or float64 .npy array ({e})",
                    path.display()
                )));
            }
        },
    };
    let shape = arr.shape().to_vec();
    let data = arr.as_standard_layout().iter().copied().collect();
    if shape.is_empty() {
        return Err(CliError::Input(format!(
            "{what} {}: a scalar, not a set of samples",
            path.display()
        )));
    }
    Ok(Samples { data, shape })
}

pub fn read_labels(path: &Path) -> Result<Vec<i64>, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::Input(format!("labels {}: {e}", path.display())))?;
    if let Ok(a) = ArrayD::<i64>::read_npy(&bytes[..]) {
        return Ok(a.iter().copied().collect());
    }
    if let Ok(a) = ArrayD::<i32>::read_npy(&bytes[..]) {
        return Ok(a.iter().map(|&v| i64::from(v)).collect());
    }
    match ArrayD::<u8>::read_npy(&bytes[..]) {
        Ok(a) => Ok(a.iter().map(|&v| i64::from(v)).collect()),
        Err(e) => Err(CliError::Input(format!(
            "labels {}: not an int64, int32 or uint8 .npy array ({e})",
            path.display()
        ))),
    }
}
