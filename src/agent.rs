//! The agent a run trains: PPO or DQN, on trading environments over the market data or on
//! CartPole, as the run configuration says.

use std::ops::Range;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ratchet_agents::{Agent, DeviceKind, Dqn, Ppo};
use ratchet_config::{Algo, Device, EnvKind, TrainConfig};
use ratchet_env::{CartPole, Env, EpisodeMode, MarketData, TradingEnv};

/// The rows trading environments train on: ranges of one [`MarketData`] (one range for an
/// instrument, one per instrument of a universe laid end to end).
pub struct TrainingRows {
    pub data: Arc<MarketData>,
    pub ranges: Vec<Range<usize>>,
}

/// A fresh agent for `config`: trading environments over `rows`, or CartPole.
pub fn build(config: &TrainConfig, rows: Option<TrainingRows>) -> Result<Box<dyn Agent>> {
    match (config.run.env, rows) {
        (EnvKind::Cartpole, _) => {
            let envs = (0..config.run.n_envs)
                .map(|_| CartPole::default())
                .collect();
            of_algorithm(config, envs)
        }
        (EnvKind::Trading, Some(rows)) => {
            let envs = (0..config.run.n_envs)
                .map(|i| {
                    TradingEnv::over_ranges(
                        rows.data.clone(),
                        rows.ranges.clone(),
                        config.trading.clone(),
                        EpisodeMode::RandomStarts,
                    )
                    .map(|env| env.starting_at_range(i))
                })
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| {
                    format!(
                        "building the training environment over rows {}",
                        describe(&rows.ranges)
                    )
                })?;
            of_algorithm(config, envs)
        }
        (EnvKind::Trading, None) => bail!("a trading agent needs market data"),
    }
}

/// `0..10` for one range (as before universes), `0..10, 40..90` for several.
fn describe(ranges: &[Range<usize>]) -> String {
    match ranges {
        [one] => format!("{one:?}"),
        many => many
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn of_algorithm<E: Env + 'static>(config: &TrainConfig, envs: Vec<E>) -> Result<Box<dyn Agent>> {
    let device = match config.run.device {
        Device::Cpu => DeviceKind::Cpu,
        Device::Wgpu => DeviceKind::Wgpu,
    };
    let seed = config.run.seed;
    Ok(match config.run.algo {
        Algo::Ppo => Box::new(Ppo::new(config.ppo.clone(), envs, device, seed)?),
        Algo::Dqn => Box::new(Dqn::new(config.dqn.clone(), envs, device, seed)?),
    })
}

/// Names on stderr the adapter `--device wgpu` runs on, and warns when this machine has no
/// GPU adapter: wgpu then runs on a software rasteriser (Mesa's llvmpipe, lavapipe), many times
/// slower than `--device cpu`. Burn's runtime prefers a GPU adapter whenever one exists.
pub fn report_wgpu_adapter() {
    use burn::tensor::wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let adapters: Vec<wgpu::AdapterInfo> = runtime
        .block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
        .iter()
        .map(wgpu::Adapter::get_info)
        .collect();
    let describe =
        |a: &wgpu::AdapterInfo| format!("{} ({:?}, {:?})", a.name, a.backend, a.device_type);
    match adapters
        .iter()
        .find(|a| a.device_type != wgpu::DeviceType::Cpu)
    {
        Some(gpu) => eprintln!("device wgpu: {}", describe(gpu)),
        None => {
            if let Some(software) = adapters.first() {
                eprintln!(
                    "warning: device wgpu: {} is a software rasteriser (this machine has no GPU \
                     adapter); training runs many times slower than with --device cpu",
                    describe(software)
                );
            }
        }
    }
}
