//! A trained policy deciding over market data: the feature window comes from the rows of a
//! [`MarketData`], the decision from [`TradingPolicy`] (the rule `ratchet serve` also calls),
//! so a backtest sees exactly what training saw and decides exactly as the server does.

use ratchet_agents::TradingPolicy;
use ratchet_agents::trading_policy::Scratch;
use ratchet_env::MarketData;

use crate::{BacktestError, Policy};

pub struct MarketPolicy<'a> {
    policy: TradingPolicy,
    data: &'a MarketData,
    /// Data row of the backtest's bar 0.
    first_row: usize,
    scratch: Scratch,
}

impl<'a> MarketPolicy<'a> {
    /// `policy` deciding at bar `i` of a backtest from the `window` feature rows of `data`
    /// that end at row `first_row + i`. Errors if the policy does not read `window` rows of
    /// the data's features.
    pub fn new(
        policy: TradingPolicy,
        data: &'a MarketData,
        first_row: usize,
        window: usize,
    ) -> Result<Self, BacktestError> {
        if policy.window_values() != window * data.width {
            return Err(BacktestError::Input(format!(
                "the network reads {} feature values; {window} bars of {} features are {}",
                policy.window_values(),
                data.width,
                window * data.width
            )));
        }
        let scratch = policy.scratch();
        Ok(Self {
            policy,
            data,
            first_row,
            scratch,
        })
    }
}

impl Policy for MarketPolicy<'_> {
    fn decide(&mut self, bar: usize, position: f64, unrealised_return: f64) -> f64 {
        let width = self.data.width;
        let end = (self.first_row + bar + 1) * width;
        let rows = &self.data.features[end - self.policy.window_values()..end];
        self.policy
            .decide(rows, position, unrealised_return, &mut self.scratch)
    }
}
