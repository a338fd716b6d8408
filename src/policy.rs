//! A trained network as a backtest [`Policy`]: the observation is built by the trading
//! environment's own rule ([`MarketData::write_observation`]), so a backtest sees exactly
//! what training saw.

use ratchet_agents::{InferenceMlp, argmax};
use ratchet_backtest::Policy;
use ratchet_env::MarketData;

pub struct NetworkPolicy<'a> {
    net: InferenceMlp,
    data: &'a MarketData,
    /// Data row of the backtest's bar 0.
    first_row: usize,
    window: usize,
    /// Action `a` means position `a - action_offset` (1 with shorting, 0 without).
    action_offset: f64,
    obs: Vec<f32>,
    out: Vec<f32>,
}

impl<'a> NetworkPolicy<'a> {
    pub fn new(
        net: InferenceMlp,
        data: &'a MarketData,
        first_row: usize,
        window: usize,
        allow_short: bool,
    ) -> Self {
        let obs = vec![0.0; net.input_size()];
        let out = vec![0.0; net.output_size()];
        Self {
            net,
            data,
            first_row,
            window,
            action_offset: if allow_short { 1.0 } else { 0.0 },
            obs,
            out,
        }
    }
}

impl Policy for NetworkPolicy<'_> {
    fn decide(&mut self, bar: usize, position: f64, unrealised_return: f64) -> f64 {
        self.data.write_observation(
            self.first_row + bar,
            self.window,
            position,
            unrealised_return,
            &mut self.obs,
        );
        self.net.forward(&self.obs, &mut self.out);
        argmax(&self.out) as f64 - self.action_offset
    }
}
