//! A trained network as a backtest [`Policy`]: the feature window comes from the market
//! data the backtest runs over, the decision from [`TradingPolicy`] (the rule `ratchet
//! serve` also calls), so a backtest sees exactly what training saw and decides exactly as
//! the server does.

use ratchet_agents::trading_policy::Scratch;
use ratchet_agents::{InferenceMlp, TradingPolicy};
use ratchet_backtest::Policy;
use ratchet_env::MarketData;

pub struct NetworkPolicy<'a> {
    policy: TradingPolicy,
    data: &'a MarketData,
    /// Data row of the backtest's bar 0.
    first_row: usize,
    scratch: Scratch,
}

impl<'a> NetworkPolicy<'a> {
    /// Errors if the network does not fit the data's features, `window` and the action set.
    pub fn new(
        net: InferenceMlp,
        data: &'a MarketData,
        first_row: usize,
        window: usize,
        allow_short: bool,
    ) -> anyhow::Result<Self> {
        let policy = TradingPolicy::new(net, allow_short)?;
        anyhow::ensure!(
            policy.window_values() == window * data.width,
            "the network reads {} feature values; {window} bars of {} features are {}",
            policy.window_values(),
            data.width,
            window * data.width
        );
        let scratch = policy.scratch();
        Ok(Self {
            policy,
            data,
            first_row,
            scratch,
        })
    }
}

impl Policy for NetworkPolicy<'_> {
    fn decide(&mut self, bar: usize, position: f64, unrealised_return: f64) -> f64 {
        let width = self.data.width;
        let end = (self.first_row + bar + 1) * width;
        let rows = &self.data.features[end - self.policy.window_values()..end];
        self.policy
            .decide(rows, position, unrealised_return, &mut self.scratch)
    }
}
