//! Named `f32` tensors: what a training state is made of.
//!
//! The agents crate produces and consumes them (and names them: it alone knows which tensors
//! are weights, optimizer moments or other state, see [`TensorGroup`]); the registry writes
//! them to safetensors files and reads them back. Neither depends on the other, and no
//! tensor is copied between them.
//!
//! A tensor either owns its values or borrows them from a live structure (a replay buffer
//! of a gigabyte is written to a checkpoint straight from where it lives).
//!
//! ```
//! use ratchet_tensors::NamedTensor;
//!
//! let live = vec![0.5f32; 6];
//! let borrowed = NamedTensor::new("replay.rewards", vec![2, 3], &live[..]);
//! assert_eq!(borrowed.bytes().len(), 24);
//! let owned = NamedTensor::new("actor.layers.0.bias", vec![6], live.clone());
//! assert_eq!(borrowed.data, owned.data);
//! assert!(owned.check_shape(&[6]).is_ok());
//! assert_eq!(
//!     owned.check_shape(&[3]).unwrap_err().to_string(),
//!     "tensor 'actor.layers.0.bias' has shape [6], expected [3]"
//! );
//! ```

use std::borrow::Cow;

// Checkpoints store floats little-endian and `NamedTensor::bytes` hands out memory as it is.
#[cfg(not(target_endian = "little"))]
compile_error!(
    "ratchet stores tensors as little-endian f32 and supports little-endian targets only"
);

/// One named tensor of `f32` values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Cow<'a, [f32]>,
}

/// A tensor whose shape is not the one expected, or whose values do not fill its shape.
#[derive(Debug, thiserror::Error)]
#[error("tensor '{name}' {problem}")]
pub struct ShapeError {
    name: String,
    problem: String,
}

/// Which file of a checkpoint a tensor belongs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorGroup {
    /// Network weights: all a policy needs to act (`model.safetensors`).
    Weights,
    /// Optimizer state (`optimizer.safetensors`).
    Optimizer,
    /// Everything else training needs to continue: replay buffer, rollout, environment
    /// observations (`state.safetensors`).
    State,
}

impl<'a> NamedTensor<'a> {
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: impl Into<Cow<'a, [f32]>>,
    ) -> Self {
        Self {
            name: name.into(),
            shape,
            data: data.into(),
        }
    }

    /// Number of values the shape describes.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values' memory as bytes: little-endian `f32`s, as safetensors stores them.
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.data)
    }

    /// A tensor that owns its values (copying them only if they are borrowed).
    pub fn into_owned(self) -> NamedTensor<'static> {
        NamedTensor {
            name: self.name,
            shape: self.shape,
            data: Cow::Owned(self.data.into_owned()),
        }
    }

    /// An error naming this tensor unless its shape is `expected` and its values fill it.
    pub fn check_shape(&self, expected: &[usize]) -> Result<(), ShapeError> {
        let problem = if self.shape != expected {
            format!("has shape {:?}, expected {expected:?}", self.shape)
        } else if self.data.len() != self.numel() {
            format!(
                "holds {} values for shape {:?}",
                self.data.len(),
                self.shape
            )
        } else {
            return Ok(());
        };
        Err(ShapeError {
            name: self.name.clone(),
            problem,
        })
    }
}
