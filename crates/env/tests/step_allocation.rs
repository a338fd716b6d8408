//! `TradingEnv::step` and `VecEnv::step` are the hot loop of training: they must not touch
//! the allocator. A counting global allocator (per thread, so parallel tests don't mix)
//! checks it.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use ratchet_env::{
    Env, EpisodeMode, MarketData, RewardKind, Rng, TradingConfig, TradingEnv, VecEnv,
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting touches no memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's `layout` satisfies `alloc`'s contract; passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: `ptr` came from `System` with `layout`; the caller checked `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn data() -> Arc<MarketData> {
    let mut rng = Rng::seed_from(1);
    let mut close = vec![100.0f64];
    for _ in 1..2000 {
        close.push(close.last().unwrap() * (1.0 + 0.01 * rng.normal()));
    }
    let open = close
        .iter()
        .map(|c| c * (1.0 + 0.001 * rng.normal()))
        .collect();
    let features = close.iter().flat_map(|&c| [c as f32, 0.5]).collect();
    Arc::new(MarketData::new(features, 2, open, close).unwrap())
}

#[test]
fn stepping_and_resetting_do_not_allocate() {
    let data = data();
    for reward in [
        RewardKind::LogReturn,
        RewardKind::Pnl,
        RewardKind::DifferentialSharpe,
    ] {
        let config = TradingConfig {
            episode_length: 100,
            reward,
            ..TradingConfig::default()
        };
        let mut env = TradingEnv::new(
            data.clone(),
            0..2000,
            config.clone(),
            EpisodeMode::RandomStarts,
        )
        .unwrap();
        let mut obs = vec![0.0f32; env.observation_size()];
        let mut rng = Rng::seed_from(2);
        let before = allocations();
        for i in 0..10_000 {
            if env.step(i % 3, &mut obs).done() {
                env.reset(&mut rng, &mut obs);
            }
        }
        assert_eq!(allocations(), before, "{reward:?}");

        let envs = (0..8)
            .map(|_| {
                TradingEnv::new(
                    data.clone(),
                    0..2000,
                    config.clone(),
                    EpisodeMode::RandomStarts,
                )
                .unwrap()
            })
            .collect();
        let mut v = VecEnv::new(envs, 3);
        let actions = vec![2; 8];
        let before = allocations();
        let mut finished = 0;
        for _ in 0..1_000 {
            finished += v.step(&actions).finished.len();
        }
        assert_eq!(allocations(), before, "{reward:?}");
        assert_eq!(finished, 80, "episodes ended (and reset) during the loop");
    }
}
