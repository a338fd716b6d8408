//! A trained network as a trader: feature window in, target position out. The one decision
//! rule that backtests and the live server both call, so a served version decides exactly as
//! its backtest did.

use ratchet_env::{position_of_action, write_observation};

use crate::AgentError;
use crate::inference::{InferenceMlp, argmax};

/// The greedy policy of a trading agent (PPO's actor or DQN's Q-network): the action with
/// the largest output, read as a position by the trading environment's rule.
///
/// ```
/// use ratchet_agents::{InferenceMlp, TradingPolicy};
/// use ratchet_agents::state::NamedTensor;
/// // One linear layer over a 1-bar, 1-feature window plus position and unrealised return:
/// // output j = feature * (j - 1), so a positive feature picks "long".
/// let w = NamedTensor::new("layers.0.weight", vec![3, 3], vec![-1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
/// let b = NamedTensor::new("layers.0.bias", vec![3], vec![0.0; 3]);
/// let net = InferenceMlp::from_tensors(&[w, b], "", Default::default(), Default::default())?;
/// let policy = TradingPolicy::new(net, true)?;
/// let mut scratch = policy.scratch();
/// assert_eq!(policy.decide(&[0.5], 0.0, 0.0, &mut scratch), 1.0);
/// assert_eq!(policy.decide(&[-0.5], 0.0, 0.0, &mut scratch), -1.0);
/// # Ok::<(), ratchet_agents::AgentError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TradingPolicy {
    net: InferenceMlp,
    allow_short: bool,
}

/// Buffers for one decision at a time: the observation and the network's outputs.
#[derive(Clone, Debug)]
pub struct Scratch {
    obs: Vec<f32>,
    out: Vec<f32>,
}

impl TradingPolicy {
    /// Errors unless `net` has one output per action (3 with shorting, 2 without) and room
    /// for at least one feature besides the position and unrealised return.
    pub fn new(net: InferenceMlp, allow_short: bool) -> Result<Self, AgentError> {
        let actions = if allow_short { 3 } else { 2 };
        if net.output_size() != actions {
            return Err(AgentError::State(format!(
                "the network has {} outputs; a trading policy {} shorting has {actions} actions",
                net.output_size(),
                if allow_short { "with" } else { "without" }
            )));
        }
        if net.input_size() < 3 {
            return Err(AgentError::State(format!(
                "the network takes {} inputs; a trading observation has the feature window, \
                 the position and the unrealised return",
                net.input_size()
            )));
        }
        Ok(Self { net, allow_short })
    }

    /// Values of the feature window the network reads (`window * features`).
    pub fn window_values(&self) -> usize {
        self.net.input_size() - 2
    }

    pub fn network(&self) -> &InferenceMlp {
        &self.net
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            obs: vec![0.0; self.net.input_size()],
            out: vec![0.0; self.net.output_size()],
        }
    }

    /// The target position after a bar's close, given the window of feature rows ending at
    /// that bar (oldest first, [`window_values`](Self::window_values) long), the position
    /// held and its unrealised return. NaN when the network's outputs are not all finite
    /// (callers treat that as the model failing, never as a position).
    #[inline]
    pub fn decide(
        &self,
        window_rows: &[f32],
        position: f64,
        unrealised_return: f64,
        scratch: &mut Scratch,
    ) -> f64 {
        write_observation(window_rows, position, unrealised_return, &mut scratch.obs);
        self.net.forward(&scratch.obs, &mut scratch.out);
        if scratch.out.iter().all(|v| v.is_finite()) {
            position_of_action(argmax(&scratch.out), self.allow_short)
        } else {
            f64::NAN
        }
    }
}
