//! Training state as plain data: named `f32` tensors plus JSON.
//!
//! This is the bridge between Burn and the Burn-free registry, which writes the tensors to
//! safetensors and the JSON next to them. Tensors are named by **parameter path**
//! (`actor.layers.0.weight`, `optim.actor.layers.0.weight.moment_1`), never by Burn's `ParamId`,
//! so a state loads into any freshly built network of the same shape.
//!
//! ```
//! use ratchet_agents::{Mlp, MlpConfig, device, DeviceKind};
//! use ratchet_agents::state::{module_tensors, load_module_tensors};
//! use ratchet_env::Rng;
//!
//! let dev = device(DeviceKind::Cpu).unwrap();
//! let config = MlpConfig::new(4, vec![8], 2);
//! let a = Mlp::new(&config, &dev, &mut Rng::seed_from(1));
//! let saved = module_tensors(&a, "actor").unwrap();
//! assert_eq!(saved[0].name, "actor.layers.0.weight");
//! let b = load_module_tensors(Mlp::new(&config, &dev, &mut Rng::seed_from(2)), &saved, "actor").unwrap();
//! assert_eq!(module_tensors(&b, "actor").unwrap(), saved);
//! ```

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use ratchet_env::{Env, RngState, VecEnv, VecEnvState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AgentError;

pub use ratchet_tensors::{NamedTensor, ShapeError, TensorGroup};

impl From<ShapeError> for AgentError {
    fn from(e: ShapeError) -> Self {
        AgentError::State(e.to_string())
    }
}

/// What restoring a [`TrainingState`] does with its environments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environments {
    /// Continue the saved episodes where they stood: training continues bit for bit.
    Restore,
    /// Keep the agent's own new episodes (and, for PPO, drop a partial rollout): for data laid
    /// out differently from the data the state was saved on, where the saved episodes'
    /// positions would point at other bars. Everything else (weights, optimizer, counters,
    /// schedules, the agent's RNG, a replay buffer) is restored.
    Fresh,
}

/// Everything needed to continue training exactly where it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingState<'a> {
    /// `"ppo"` or `"dqn"`.
    pub algorithm: String,
    /// Weights, optimizer moments and (DQN) the replay buffer, owned or borrowed from the
    /// agent.
    pub tensors: Vec<NamedTensor<'a>>,
    /// Counters, schedule positions, RNG states, environment state, episode statistics and the
    /// configuration, as JSON whose numbers round-trip exactly.
    pub meta: serde_json::Value,
}

impl<'a> TrainingState<'a> {
    /// A state of `algorithm` with `meta` serialised to JSON.
    pub(crate) fn new(
        algorithm: &str,
        tensors: Vec<NamedTensor<'a>>,
        meta: &impl Serialize,
    ) -> Result<Self, AgentError> {
        Ok(Self {
            algorithm: algorithm.into(),
            tensors,
            meta: serde_json::to_value(meta).map_err(|e| {
                AgentError::State(format!("serialising the {algorithm} state: {e}"))
            })?,
        })
    }

    /// The metadata, if this is a state of `algorithm`.
    pub(crate) fn meta_of<T: DeserializeOwned>(&self, algorithm: &str) -> Result<T, AgentError> {
        if self.algorithm != algorithm {
            return Err(AgentError::State(format!(
                "the state is for '{}', not {}",
                self.algorithm,
                algorithm.to_uppercase()
            )));
        }
        serde_json::from_value(self.meta.clone())
            .map_err(|e| AgentError::State(format!("{} metadata: {e}", algorithm.to_uppercase())))
    }

    pub fn tensor(&self, name: &str) -> Option<&NamedTensor<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The checkpoint file a tensor of an agent's state belongs in, by the name the agents
    /// give it: the networks (`actor.*`, `critic.*`, `q_network.*`, `target_network.*`) are
    /// weights, `optim.*` the optimizer's moments, everything else (replay buffer, rollout,
    /// environment observations) state.
    pub fn group(name: &str) -> TensorGroup {
        let prefix = name.split('.').next().unwrap_or_default();
        match prefix {
            "actor" | "critic" | "q_network" | "target_network" => TensorGroup::Weights,
            "optim" => TensorGroup::Optimizer,
            _ => TensorGroup::State,
        }
    }

    /// A state that owns all its tensors (copying those borrowed from an agent).
    pub fn into_owned(self) -> TrainingState<'static> {
        TrainingState {
            algorithm: self.algorithm,
            tensors: self
                .tensors
                .into_iter()
                .map(NamedTensor::into_owned)
                .collect(),
            meta: self.meta,
        }
    }

    /// The data of tensor `name`, which must have `shape`.
    pub(crate) fn tensor_data(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, AgentError> {
        let t = self
            .tensor(name)
            .ok_or_else(|| AgentError::State(format!("missing tensor '{name}'")))?;
        t.check_shape(shape)?;
        Ok(t.data.to_vec())
    }
}

/// The environments' part of a training state's metadata (their observations are the tensor
/// `envs.observations`). Floats are kept as bit patterns so that they survive any JSON writer
/// and reader exactly.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedEnvs {
    observation_size: usize,
    action_count: usize,
    n_envs: usize,
    env_rng: RngState,
    env_states_f64_bits: Vec<Vec<u64>>,
    episode_returns_f64_bits: Vec<u64>,
    episode_lengths: Vec<u64>,
}

impl SavedEnvs {
    /// Captures `envs`, adding their observations to `tensors`.
    pub(crate) fn capture<E: Env>(envs: &VecEnv<E>, tensors: &mut Vec<NamedTensor<'_>>) -> Self {
        let (n, k) = (envs.len(), envs.observation_size());
        let state = envs.state();
        tensors.push(NamedTensor::new(
            "envs.observations",
            vec![n, k],
            state.observations,
        ));
        Self {
            observation_size: k,
            action_count: envs.action_count(),
            n_envs: n,
            env_rng: state.rng,
            env_states_f64_bits: state
                .envs
                .iter()
                .map(|s| s.iter().map(|x| x.to_bits()).collect())
                .collect(),
            episode_returns_f64_bits: state.episode_returns.iter().map(|x| x.to_bits()).collect(),
            episode_lengths: state.episode_lengths,
        }
    }

    /// The saved environment state, once its shape is checked against `envs` (not applied:
    /// the caller restores it when everything else has loaded).
    pub(crate) fn check<E: Env>(
        &self,
        envs: &VecEnv<E>,
        state: &TrainingState,
    ) -> Result<VecEnvState, AgentError> {
        let (n, k, a) = (envs.len(), envs.observation_size(), envs.action_count());
        if self.n_envs != n || self.observation_size != k || self.action_count != a {
            return Err(AgentError::State(format!(
                "the state is for {} environments with {} observations and {} actions; this agent has {n} x {k} and {a}",
                self.n_envs, self.observation_size, self.action_count
            )));
        }
        Ok(VecEnvState {
            rng: self.env_rng,
            envs: self
                .env_states_f64_bits
                .iter()
                .map(|s| s.iter().map(|&b| f64::from_bits(b)).collect())
                .collect(),
            observations: state.tensor_data("envs.observations", &[n, k])?,
            episode_returns: self
                .episode_returns_f64_bits
                .iter()
                .map(|&b| f64::from_bits(b))
                .collect(),
            episode_lengths: self.episode_lengths.clone(),
        })
    }
}

/// `prefix.name`, or `name` when the prefix is empty.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Reads a float tensor back to the host.
pub(crate) fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, AgentError> {
    tensor
        .try_into_data()
        .map_err(|e| AgentError::Backend(format!("reading a tensor back from the device: {e}")))?
        .try_into_vec::<f32>()
        .map_err(|e| AgentError::Backend(format!("tensor is not f32: {e:?}")))
}

/// Every float parameter of `module`, named `{prefix}.{path}` in the module's visiting order.
pub fn module_tensors<M: Module>(
    module: &M,
    prefix: &str,
) -> Result<Vec<NamedTensor<'static>>, AgentError> {
    struct Collect {
        path: Vec<String>,
        prefix: String,
        out: Vec<Result<NamedTensor<'static>, AgentError>>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let shape = value.dims().to_vec();
            let name = join(&self.prefix, &self.path.join("."));
            self.out
                .push(read_f32(value).map(|data| NamedTensor::new(name, shape, data)));
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        prefix: prefix.to_string(),
        out: Vec::new(),
    };
    module.visit(&mut collect);
    collect.out.into_iter().collect()
}

/// Loads `{prefix}.{path}` tensors into `module`'s parameters (keeping their ids, devices and
/// autodiff settings).
///
/// Fails, naming the tensor, when a parameter has no tensor, a shape differs, or a tensor under
/// `prefix` matches no parameter (a network of another shape).
pub fn load_module_tensors<M: Module>(
    module: M,
    tensors: &[NamedTensor],
    prefix: &str,
) -> Result<M, AgentError> {
    struct Load<'a> {
        path: Vec<String>,
        prefix: &'a str,
        by_name: HashMap<&'a str, &'a NamedTensor<'a>>,
        used: usize,
        error: Option<AgentError>,
    }
    impl ModuleMapper for Load<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if self.error.is_some() {
                return param;
            }
            let name = join(self.prefix, &self.path.join("."));
            let shape = param.lazy_shape().to_vec();
            let found = match self.by_name.get(name.as_str()) {
                Some(t) => t.check_shape(&shape).map(|_| *t).map_err(AgentError::from),
                None => Err(AgentError::State(format!(
                    "saved state has no tensor '{name}' (shape {shape:?})"
                ))),
            };
            match found {
                Ok(t) => {
                    self.used += 1;
                    // Created on the parameter's own device (autodiff included), so that
                    // `transform_for_load` can restore its gradient setting.
                    let value = Tensor::<D>::from_data(
                        TensorData::new(t.data.to_vec(), shape.clone()),
                        &param.lazy_device(),
                    );
                    let id = param.id;
                    param.transform_for_load(value, id)
                }
                Err(e) => {
                    self.error = Some(e);
                    param
                }
            }
        }
    }
    let mine: Vec<&NamedTensor> = tensors
        .iter()
        .filter(|t| prefix.is_empty() || t.name.starts_with(&join(prefix, "")))
        .collect();
    let mut load = Load {
        path: Vec::new(),
        prefix,
        by_name: mine.iter().map(|t| (t.name.as_str(), *t)).collect(),
        used: 0,
        error: None,
    };
    let module = module.map(&mut load);
    if let Some(e) = load.error {
        return Err(e);
    }
    if load.used != load.by_name.len() {
        let params: Vec<String> = module_paths(&module)
            .into_iter()
            .map(|p| join(prefix, &p))
            .collect();
        let extra = mine
            .iter()
            .find(|t| !params.contains(&t.name))
            .map(|t| t.name.as_str())
            .unwrap_or("?");
        return Err(AgentError::State(format!(
            "saved tensor '{extra}' matches no parameter of the network (a network of another shape?)"
        )));
    }
    Ok(module)
}

/// Paths of a module's float parameters, in visiting order.
pub fn module_paths<M: Module>(module: &M) -> Vec<String> {
    struct Paths {
        path: Vec<String>,
        out: Vec<String>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
            self.out.push(self.path.join("."));
        }
    }
    let mut paths = Paths {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut paths);
    paths.out
}
