//! Adam with global gradient-norm clipping, its state keyed by parameter path.
//!
//! Why not `burn::optim::Adam`: PyTorch's (and so Stable-Baselines3's) `clip_grad_norm_` scales
//! all gradients by one factor computed from their joint norm, while Burn's norm clipping works
//! per parameter; Burn keys optimizer state by `ParamId`, which a checkpoint does not carry; and
//! `ModuleOptimizer::load_record` materialises state on `Device::default()`, which with the `wgpu`
//! feature compiled in is the GPU — so resuming a CPU run would need a graphics adapter. This one
//! keys state by the parameter's path in the module and follows `torch.optim.Adam` exactly:
//!
//! ```text
//! g    <- g * min(1, max_norm / (||all g||_2 + 1e-6))        (if max_grad_norm is set)
//! m    <- beta_1 m + (1 - beta_1) g
//! v    <- beta_2 v + (1 - beta_2) g^2
//! p    <- p - lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + eps)
//! ```
//!
//! The update itself runs as one fused loop over all parameters in host memory: gradients and
//! parameters come back from the device in a single read, new parameters go up in one write per
//! tensor. On the networks these agents use, an update done as a dozen tensor operations per
//! parameter cost several times more than this on the CPU backend (each operation is a separate
//! pass over memory plus dispatch), and on a GPU the one read per step is the only
//! synchronisation. The moments live in host memory, which also makes saving them free.
//!
//! ```
//! use burn::optim::GradientsParams;
//! use burn::tensor::Tensor;
//! use ratchet_agents::{Adam, AdamConfig, Mlp, MlpConfig, device, DeviceKind};
//! use ratchet_env::Rng;
//!
//! let dev = device(DeviceKind::Cpu).unwrap().autodiff();
//! let mut net = Mlp::new(&MlpConfig::new(3, vec![8], 1), &dev, &mut Rng::seed_from(0));
//! let mut adam = Adam::new(AdamConfig { max_grad_norm: Some(0.5), ..AdamConfig::default() });
//! let loss = net.forward(Tensor::<2>::ones([4, 3], &dev)).square().mean();
//! let grads = GradientsParams::from_grads(loss.backward(), &net);
//! net = adam.step(1e-3, net, grads).unwrap();
//! assert_eq!(adam.steps(), 1);
//! let saved = adam.tensors("optim", &net).unwrap(); // "optim.layers.0.weight.moment_1", ...
//! assert_eq!(saved.len(), 2 * 4);
//! ```

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::AgentError;
use crate::isa::{Arithmetic, Isa};
use crate::state::{NamedTensor, join, read_f32};

/// Adam's hyperparameters (the learning rate is passed to each [`Adam::step`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Default 0.9.
    pub beta_1: f64,
    /// Default 0.999.
    pub beta_2: f64,
    /// Default 1e-8 (PyTorch's). Burn's own Adam defaults to 1e-5; SB3's PPO policy uses 1e-5.
    pub epsilon: f64,
    /// Clip the global L2 norm of all gradients to this value (SB3's `max_grad_norm`).
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            max_grad_norm: None,
        }
    }
}

/// Each parameter's path and shape, in the order of the flat vectors.
pub(crate) type ParameterShapes = Vec<(String, Vec<usize>)>;

/// One parameter's place in the flat vectors.
#[derive(Clone, Debug, PartialEq)]
struct Slot {
    path: String,
    shape: Vec<usize>,
    offset: usize,
    len: usize,
}

/// Adam's state: the step count and the first and second moments of every parameter.
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamConfig,
    steps: u64,
    /// Ids of the module the layout was built for; a module with other ids (freshly built or
    /// restored) has its layout read again, and it must match the moments'.
    ids: Vec<ParamId>,
    /// Layout of the flat vectors, in the module's visiting order.
    slots: Vec<Slot>,
    /// First and second moments, flat; empty before the first step.
    moment_1: Vec<f32>,
    moment_2: Vec<f32>,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Self {
        Self {
            config,
            steps: 0,
            ids: Vec::new(),
            slots: Vec::new(),
            moment_1: Vec::new(),
            moment_2: Vec::new(),
        }
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Updates taken so far (PyTorch's per-parameter `step`, the same for all parameters here).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Applies one update with learning rate `lr` and returns the updated module.
    ///
    /// A parameter that received no gradient is treated as having a zero gradient. Fails if
    /// `module` is not the network these moments belong to (another shape), or the device
    /// cannot be read.
    pub fn step<M: Module>(
        &mut self,
        lr: f64,
        module: M,
        mut grads: GradientsParams,
    ) -> Result<M, AgentError> {
        self.sync_layout(&module)?;
        let total = self.total();
        if total == 0 {
            return Ok(module);
        }
        // Gradients, then parameters, flattened into one tensor: one read from the device.
        let mut gather = Gather {
            grads: Some(&mut grads),
            flat: Vec::with_capacity(2 * self.slots.len()),
            params: Vec::with_capacity(self.slots.len()),
        };
        module.visit(&mut gather);
        let Gather {
            mut flat, params, ..
        } = gather;
        flat.extend(params);
        let host = read_f32(Tensor::cat(flat, 0))?;
        let (g, p) = host.split_at(total);
        let mut p = p.to_vec();
        self.step_host(lr, g, &mut p);
        Ok(self.write_parameters(module, &p, true))
    }

    /// The parameters of `module`, flattened in visiting order (the order of [`Adam::step_host`]'s
    /// vectors), with their paths and shapes; `module` becomes the network these moments
    /// belong to. Fails like [`Adam::step`].
    pub(crate) fn parameters<M: Module>(
        &mut self,
        module: &M,
    ) -> Result<(Vec<f32>, ParameterShapes), AgentError> {
        self.sync_layout(module)?;
        let mut gather = Gather {
            grads: None,
            flat: Vec::new(),
            params: Vec::with_capacity(self.slots.len()),
        };
        module.visit(&mut gather);
        let values = match gather.params.is_empty() {
            true => Vec::new(),
            false => read_f32(Tensor::cat(gather.params, 0))?,
        };
        let layout = self.slots.iter().map(|s| (s.path.clone(), s.shape.clone()));
        Ok((values, layout.collect()))
    }

    /// One update of host-side parameters from their gradients, both flattened as
    /// [`Adam::parameters`] gives them.
    pub(crate) fn step_host(&mut self, lr: f64, grads: &[f32], params: &mut [f32]) {
        let (total, isa) = (self.total(), Isa::detect(Arithmetic::Exact));
        assert!(
            grads.len() == total && params.len() == total,
            "gradients and parameters in the optimizer's layout"
        );
        let scale = match self.config.max_grad_norm {
            // torch.nn.utils.clip_grad_norm_: one factor for all parameters.
            Some(max_norm) => (max_norm / (l2_norm(isa, grads) + 1e-6)).min(1.0) as f32,
            None => 1.0,
        };
        if self.moment_1.is_empty() {
            self.moment_1 = vec![0.0; total];
            self.moment_2 = vec![0.0; total];
        }
        self.steps += 1;
        let (b1, b2) = (self.config.beta_1, self.config.beta_2);
        let t = self.steps as i32;
        let update = Update {
            scale,
            b1: b1 as f32,
            b2: b2 as f32,
            eps: self.config.epsilon as f32,
            step_size: (lr / (1.0 - b1.powi(t))) as f32,
            inv_bias_2_sqrt: (1.0 / (1.0 - b2.powi(t)).sqrt()) as f32,
        };
        let (m, v) = (&mut self.moment_1[..total], &mut self.moment_2[..total]);
        update.run(isa, grads, m, v, params);
    }

    /// `module` with its parameters replaced by `params`, flattened as [`Adam::parameters`]
    /// gives them. With `autodiff`, a parameter that required a gradient still does; without,
    /// none does: for host training, which never runs Burn's backward pass. Each tensor that
    /// requires a gradient registers a root in Burn's autodiff graph that only a backward pass
    /// frees, so writing them after every host learning phase piled roots up (DQN on the
    /// default trading config: about 2 KB per environment step, 1.9 GB of RSS at a million).
    pub(crate) fn write_parameters<M: Module>(
        &self,
        module: M,
        params: &[f32],
        autodiff: bool,
    ) -> M {
        module.map(&mut Write {
            values: params,
            slots: &self.slots,
            next: 0,
            autodiff,
        })
    }

    /// The moments as tensors named `{prefix}.{parameter path}.moment_1` / `.moment_2`, for the
    /// parameters of `module` (the module being optimised). Empty before the first step. The step
    /// count is not a tensor: save [`Adam::steps`] with the other counters.
    pub fn tensors<M: Module>(
        &self,
        prefix: &str,
        module: &M,
    ) -> Result<Vec<NamedTensor<'static>>, AgentError> {
        if self.moment_1.is_empty() {
            return Ok(Vec::new());
        }
        self.clone().sync_layout(module)?;
        let mut out = Vec::with_capacity(2 * self.slots.len());
        for s in &self.slots {
            for (leaf, data) in [("moment_1", &self.moment_1), ("moment_2", &self.moment_2)] {
                out.push(NamedTensor::new(
                    join(prefix, &format!("{}.{leaf}", s.path)),
                    s.shape.clone(),
                    data[s.offset..s.offset + s.len].to_vec(),
                ));
            }
        }
        Ok(out)
    }

    /// Restores moments saved by [`Adam::tensors`] and the step count, for the parameters of
    /// `module`.
    ///
    /// Fails, naming the tensor, if any parameter lacks a moment (when `steps > 0`), a shape
    /// differs, or a saved moment belongs to no parameter of `module`.
    pub fn restore<M: Module>(
        &mut self,
        tensors: &[NamedTensor],
        prefix: &str,
        steps: u64,
        module: &M,
    ) -> Result<(), AgentError> {
        let mut layout = Layout::default();
        module.visit(&mut layout);
        let saved: Vec<&NamedTensor> = tensors
            .iter()
            .filter(|t| t.name.starts_with(&join(prefix, "")))
            .filter(|t| t.name.ends_with(".moment_1") || t.name.ends_with(".moment_2"))
            .collect();
        let (mut m, mut v) = (Vec::new(), Vec::new());
        if steps == 0 {
            if let Some(t) = saved.first() {
                return Err(AgentError::State(format!(
                    "optimizer tensor '{}' present but the step count is 0",
                    t.name
                )));
            }
        } else {
            (m, v) = (vec![0.0f32; layout.offset], vec![0.0f32; layout.offset]);
            for s in &layout.slots {
                for (leaf, buf) in [("moment_1", &mut m), ("moment_2", &mut v)] {
                    let name = join(prefix, &format!("{}.{leaf}", s.path));
                    let t = saved.iter().find(|t| t.name == name).ok_or_else(|| {
                        AgentError::State(format!("optimizer state has no tensor '{name}'"))
                    })?;
                    t.check_shape(&s.shape)?;
                    buf[s.offset..s.offset + s.len].copy_from_slice(&t.data);
                }
            }
            if saved.len() != 2 * layout.slots.len() {
                let known = |name: &str| {
                    layout.slots.iter().any(|s| {
                        name == join(prefix, &format!("{}.moment_1", s.path))
                            || name == join(prefix, &format!("{}.moment_2", s.path))
                    })
                };
                let extra = saved
                    .iter()
                    .find(|t| !known(&t.name))
                    .map_or("?", |t| &t.name);
                return Err(AgentError::State(format!(
                    "optimizer tensor '{extra}' matches no parameter of the network"
                )));
            }
        }
        self.steps = steps;
        self.ids = layout.ids;
        self.slots = layout.slots;
        self.moment_1 = m;
        self.moment_2 = v;
        Ok(())
    }

    fn total(&self) -> usize {
        self.slots.iter().map(|s| s.len).sum()
    }

    /// Adopts `module`'s parameters if they are not the ones the layout was built for, checking
    /// that existing moments fit them.
    fn sync_layout<M: Module>(&mut self, module: &M) -> Result<(), AgentError> {
        let mut ids = IdList(Vec::with_capacity(self.ids.len()));
        module.visit(&mut ids);
        if ids.0 == self.ids {
            return Ok(());
        }
        let mut layout = Layout::default();
        module.visit(&mut layout);
        if !self.moment_1.is_empty() && layout.slots != self.slots {
            return Err(AgentError::State(
                "the optimizer's moments belong to a network of another shape".into(),
            ));
        }
        self.ids = layout.ids;
        self.slots = layout.slots;
        Ok(())
    }
}

/// The element-wise part of one Adam step, PyTorch's formula, with every constant that does
/// not depend on the element computed once.
#[derive(Clone, Copy)]
struct Update {
    /// Gradient-clipping factor.
    scale: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    /// `lr / (1 - beta_1^t)`.
    step_size: f32,
    /// `1 / sqrt(1 - beta_2^t)`.
    inv_bias_2_sqrt: f32,
}

impl Update {
    /// Updates moments `m`, `v` and parameters `p` from gradients `g`. Element-wise with the
    /// same operations in the same order for every instruction set (no fused multiply-add),
    /// so the vectorised copies below give the same bits.
    #[inline(always)]
    fn apply(&self, g: &[f32], m: &mut [f32], v: &mut [f32], p: &mut [f32]) {
        let Update {
            scale,
            b1,
            b2,
            eps,
            step_size,
            inv_bias_2_sqrt,
        } = *self;
        for (((g, m), v), p) in g.iter().zip(m).zip(v).zip(p) {
            let g = g * scale;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= step_size * *m / (v.sqrt() * inv_bias_2_sqrt + eps);
        }
    }

    /// [`Update::apply`] compiled for `isa`.
    fn run(&self, isa: Isa, g: &[f32], m: &mut [f32], v: &mut [f32], p: &mut [f32]) {
        isa.run(
            #[inline(always)]
            || self.apply(g, m, v, p),
        )
    }
}

/// `sqrt(sum x^2)`, accumulated in f64 over eight interleaved partial sums (in a fixed order,
/// so the result does not depend on anything but `xs`), compiled for `isa`: one AVX-512
/// register of sums (plain x86-64 took four, ~2% of a DQN gradient step).
fn l2_norm(isa: Isa, xs: &[f32]) -> f64 {
    isa.run(
        #[inline(always)]
        || {
            let mut acc = [0.0f64; 8];
            let chunks = xs.chunks_exact(8);
            let tail = chunks.remainder();
            for c in chunks {
                for (a, &x) in acc.iter_mut().zip(c) {
                    *a += x as f64 * x as f64;
                }
            }
            let tail: f64 = tail.iter().map(|&x| x as f64 * x as f64).sum();
            (acc.iter().sum::<f64>() + tail).sqrt()
        },
    )
}

struct IdList(Vec<ParamId>);

impl ModuleVisitor for IdList {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id);
    }
}

#[derive(Default)]
struct Layout {
    path: Vec<String>,
    ids: Vec<ParamId>,
    slots: Vec<Slot>,
    offset: usize,
}

impl ModuleVisitor for Layout {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.lazy_shape().to_vec();
        let len = shape.iter().product();
        self.ids.push(param.id);
        self.slots.push(Slot {
            path: self.path.join("."),
            shape,
            offset: self.offset,
            len,
        });
        self.offset += len;
    }
}

/// Every parameter's gradient (when `grads` is given) and value, flattened, in visiting order.
struct Gather<'a> {
    grads: Option<&'a mut GradientsParams>,
    flat: Vec<Tensor<1>>,
    params: Vec<Tensor<1>>,
}

impl ModuleVisitor for Gather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().inner();
        let n = value.shape().num_elements();
        if let Some(grads) = self.grads.as_deref_mut() {
            let g = match grads.remove::<D>(param.id) {
                Some(g) => g.reshape([n]),
                None => Tensor::zeros([n], &value.device()),
            };
            self.flat.push(g);
        }
        self.params.push(value.reshape([n]));
    }
}

/// Replaces each parameter's value, keeping its id and device, and its autodiff settings
/// where `autodiff` is set.
struct Write<'a> {
    values: &'a [f32],
    slots: &'a [Slot],
    next: usize,
    autodiff: bool,
}

impl ModuleMapper for Write<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let slot = &self.slots[self.next];
        self.next += 1;
        let (id, tensor, mapper) = param.consume();
        let data = TensorData::new(
            self.values[slot.offset..slot.offset + slot.len].to_vec(),
            slot.shape.clone(),
        );
        let mut updated = Tensor::<D>::from_data(data, &tensor.device());
        if let Some(strategy) = tensor.gradient_checkpointing_strategy() {
            updated = updated.with_gradient_checkpointing_strategy(strategy);
        }
        if self.autodiff && tensor.is_require_grad() {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_env::Rng;

    #[test]
    fn every_instruction_set_takes_the_same_step() {
        let mut rng = Rng::seed_from(9);
        let n = 1000; // not a multiple of any vector width
        let mut draw = || -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let (g, m0, v0, p0) = (
            draw(),
            draw(),
            draw().iter().map(|x| x * x).collect::<Vec<_>>(),
            draw(),
        );
        let update = Update {
            scale: 0.7,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            step_size: 3e-3,
            inv_bias_2_sqrt: 1.3,
        };
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let run = |isa: Isa| {
            let (mut m, mut v, mut p) = (m0.clone(), v0.clone(), p0.clone());
            update.run(isa, &g, &mut m, &mut v, &mut p);
            [bits(&m), bits(&v), bits(&p)]
        };
        let want = run(Isa::portable());
        assert_ne!(want[2], bits(&p0), "the step moved the parameters");
        let norm = l2_norm(Isa::portable(), &g);
        let sum: f64 = g.iter().map(|&x| x as f64 * x as f64).sum();
        assert!(
            (norm - sum.sqrt()).abs() < 1e-12 * norm,
            "the norm is the norm"
        );
        for isa in Isa::available(Arithmetic::Exact) {
            assert_eq!(run(isa), want, "{isa:?}");
            assert_eq!(l2_norm(isa, &g).to_bits(), norm.to_bits(), "{isa:?} norm");
        }
    }
}
