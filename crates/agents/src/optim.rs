//! Adam with global gradient-norm clipping, its state keyed by parameter path.
//!
//! Why not `burn::optim::Adam`: PyTorch's (and so Stable-Baselines3's) `clip_grad_norm_` scales
//! all gradients by one factor computed from their joint norm, while Burn's norm clipping works
//! per parameter; Burn keys optimizer state by `ParamId`, which a checkpoint does not carry; and
//! `ModuleOptimizer::load_record` materialises state on `Device::default()`, which with the `wgpu`
//! feature compiled in is the GPU — so resuming a CPU run would need a graphics adapter. This one
//! keys state by the parameter's path in the module, keeps it on the parameters' device, and
//! follows `torch.optim.Adam` exactly:
//!
//! ```text
//! g    <- g * min(1, max_norm / (||all g||_2 + 1e-6))        (if max_grad_norm is set)
//! m    <- beta_1 m + (1 - beta_1) g
//! v    <- beta_2 v + (1 - beta_2) g^2
//! p    <- p - lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + eps)
//! ```
//!
//! All parameters are updated as one flat vector (one concatenation, a dozen element-wise
//! operations, one slice per parameter), because on small networks the cost of an update is
//! the number of tensor operations, not their size. Nothing is read back to the host.
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
//! net = adam.step(1e-3, net, grads);
//! assert_eq!(adam.steps(), 1);
//! let saved = adam.tensors("optim", &net).unwrap(); // "optim.layers.0.weight.moment_1", ...
//! assert_eq!(saved.len(), 2 * 4);
//! ```

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::AgentError;
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

/// One parameter's place in the flat vector.
#[derive(Clone, Debug)]
struct Slot {
    id: ParamId,
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
    /// Layout of the flat vectors, in the module's visiting order; rebuilt when the module's
    /// parameter ids change (a freshly built or restored module).
    slots: Vec<Slot>,
    /// `(moment_1, moment_2)`, flat, on the parameters' device without autodiff; `None` before
    /// the first step.
    moments: Option<(Tensor<1>, Tensor<1>)>,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Self {
        Self {
            config,
            steps: 0,
            slots: Vec::new(),
            moments: None,
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
    /// A parameter that received no gradient is treated as having a zero gradient.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        self.sync_layout(&module);
        let total: usize = self.slots.iter().map(|s| s.len).sum();
        if total == 0 {
            return module;
        }
        let mut gather = GradGather {
            grads: &mut grads,
            flat: Vec::with_capacity(self.slots.len()),
            device: None,
        };
        module.visit(&mut gather);
        let device = gather
            .device
            .expect("a module with parameters has a device");
        let mut g = Tensor::cat(gather.flat, 0);

        if let Some(max_norm) = self.config.max_grad_norm {
            // torch.nn.utils.clip_grad_norm_: one factor for all parameters, kept on the device.
            let norm = g.clone().square().sum().sqrt();
            let coef = norm
                .add_scalar(1e-6)
                .recip()
                .mul_scalar(max_norm)
                .clamp_max(1.0);
            g = g * coef;
        }

        let (b1, b2) = (self.config.beta_1, self.config.beta_2);
        let (m, v) = match self.moments.take() {
            Some((m, v)) => (
                m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                v.mul_scalar(b2) + g.square().mul_scalar(1.0 - b2),
            ),
            None => (
                g.clone().mul_scalar(1.0 - b1),
                g.square().mul_scalar(1.0 - b2),
            ),
        };
        self.steps += 1;
        let t = self.steps as i32;
        let bias_1 = 1.0 - b1.powi(t);
        let bias_2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let delta = m.clone().mul_scalar(lr / bias_1)
            / v.clone()
                .sqrt()
                .div_scalar(bias_2_sqrt)
                .add_scalar(self.config.epsilon);
        self.moments = Some((m, v));
        debug_assert_eq!(delta.device().without_autodiff(), device);

        module.map(&mut Apply {
            delta,
            slots: &self.slots,
            next: 0,
        })
    }

    /// The moments as tensors named `{prefix}.{parameter path}.moment_1` / `.moment_2`, for the
    /// parameters of `module` (the module being optimised). Empty before the first step. The step
    /// count is not a tensor: save [`Adam::steps`] with the other counters.
    pub fn tensors<M: Module>(
        &self,
        prefix: &str,
        module: &M,
    ) -> Result<Vec<NamedTensor>, AgentError> {
        let Some((m, v)) = &self.moments else {
            return Ok(Vec::new());
        };
        let mut me = self.clone();
        me.sync_layout(module);
        let (m, v) = (read_f32(m.clone())?, read_f32(v.clone())?);
        let mut out = Vec::with_capacity(2 * me.slots.len());
        for s in &me.slots {
            for (leaf, data) in [("moment_1", &m), ("moment_2", &v)] {
                out.push(NamedTensor {
                    name: join(prefix, &format!("{}.{leaf}", s.path)),
                    shape: s.shape.clone(),
                    data: data[s.offset..s.offset + s.len].to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// Restores moments saved by [`Adam::tensors`] and the step count, for the parameters of
    /// `module`, whose device they are placed on.
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
        self.slots.clear();
        self.sync_layout(module);
        let saved: Vec<&NamedTensor> = tensors
            .iter()
            .filter(|t| t.name.starts_with(&join(prefix, "")))
            .filter(|t| t.name.ends_with(".moment_1") || t.name.ends_with(".moment_2"))
            .collect();
        if steps == 0 {
            if let Some(t) = saved.first() {
                return Err(AgentError::State(format!(
                    "optimizer tensor '{}' present but the step count is 0",
                    t.name
                )));
            }
            self.steps = 0;
            self.moments = None;
            return Ok(());
        }
        let total: usize = self.slots.iter().map(|s| s.len).sum();
        let (mut m, mut v) = (vec![0.0f32; total], vec![0.0f32; total]);
        let mut used = 0;
        for s in &self.slots {
            for (leaf, buf) in [("moment_1", &mut m), ("moment_2", &mut v)] {
                let name = join(prefix, &format!("{}.{leaf}", s.path));
                let t = saved.iter().find(|t| t.name == name).ok_or_else(|| {
                    AgentError::State(format!("optimizer state has no tensor '{name}'"))
                })?;
                t.check_shape(&s.shape)?;
                buf[s.offset..s.offset + s.len].copy_from_slice(&t.data);
                used += 1;
            }
        }
        if used != saved.len() {
            let extra = saved
                .iter()
                .find(|t| {
                    !self.slots.iter().any(|s| {
                        t.name == join(prefix, &format!("{}.moment_1", s.path))
                            || t.name == join(prefix, &format!("{}.moment_2", s.path))
                    })
                })
                .map(|t| t.name.clone())
                .unwrap_or_default();
            return Err(AgentError::State(format!(
                "optimizer tensor '{extra}' matches no parameter of the network"
            )));
        }
        let device = param_device(module)
            .ok_or_else(|| AgentError::State("the network has no parameters".into()))?;
        self.moments = Some((
            Tensor::from_data(TensorData::new(m, [total]), &device),
            Tensor::from_data(TensorData::new(v, [total]), &device),
        ));
        self.steps = steps;
        Ok(())
    }

    /// Recomputes the flat layout if `module`'s parameters are not the ones it was built for.
    fn sync_layout<M: Module>(&mut self, module: &M) {
        let mut ids = IdList(Vec::with_capacity(self.slots.len()));
        module.visit(&mut ids);
        if ids.0.len() == self.slots.len() && ids.0.iter().zip(&self.slots).all(|(a, s)| *a == s.id)
        {
            return;
        }
        let mut layout = Layout::default();
        module.visit(&mut layout);
        self.slots = layout.slots;
    }
}

/// The device (without autodiff) of a module's first parameter.
fn param_device<M: Module>(module: &M) -> Option<Device> {
    struct First(Option<Device>);
    impl ModuleVisitor for First {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.0.is_none() {
                self.0 = Some(param.lazy_device().without_autodiff());
            }
        }
    }
    let mut first = First(None);
    module.visit(&mut first);
    first.0
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
        self.slots.push(Slot {
            id: param.id,
            path: self.path.join("."),
            shape,
            offset: self.offset,
            len,
        });
        self.offset += len;
    }
}

/// Collects every parameter's gradient, flattened, in visiting order.
struct GradGather<'a> {
    grads: &'a mut GradientsParams,
    flat: Vec<Tensor<1>>,
    device: Option<Device>,
}

impl ModuleVisitor for GradGather<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let device = param.lazy_device().without_autodiff();
        let shape = param.lazy_shape();
        let n = shape.num_elements();
        let g = match self.grads.remove::<D>(param.id) {
            Some(g) => g.reshape([n]),
            None => Tensor::zeros([n], &device),
        };
        self.device.get_or_insert(device);
        self.flat.push(g);
    }
}

/// Subtracts each parameter's slice of `delta`, keeping its id and autodiff settings.
struct Apply<'a> {
    delta: Tensor<1>,
    slots: &'a [Slot],
    next: usize,
}

impl ModuleMapper for Apply<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let slot = &self.slots[self.next];
        self.next += 1;
        let (id, tensor, mapper) = param.consume();
        let autodiff = tensor.is_autodiff();
        let require_grad = tensor.is_require_grad();
        let strategy = tensor.gradient_checkpointing_strategy();
        let shape: [usize; D] = slot.shape.clone().try_into().expect("rank matches layout");
        let step = self
            .delta
            .clone()
            .narrow(0, slot.offset, slot.len)
            .reshape(shape);
        let mut updated = tensor.inner() - step;
        if autodiff {
            updated = updated.autodiff();
            if let Some(strategy) = strategy {
                updated = updated.with_gradient_checkpointing_strategy(strategy);
            }
            if require_grad {
                updated = updated.require_grad();
            }
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}
