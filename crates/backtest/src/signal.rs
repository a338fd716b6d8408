//! Plain signal strategies, for baselines and benchmarks.

use crate::error::{BacktestError, input};

/// Long (`1`) at each bar whose `fast`-bar simple moving average of `close` is above its
/// `slow`-bar one, flat (`0`) otherwise and while the slow average is still warming up
/// (the first `slow - 1` bars). Each position is decided at that bar's close, ready for
/// [`crate::simulate_positions`].
///
/// ```
/// let close = [1.0, 2.0, 3.0, 2.0, 1.0, 1.0];
/// let positions = ratchet_backtest::sma_crossover(&close, 1, 3)?;
/// // SMA(3) from bar 2: 2, 2.33, 2, 1.33 against the close 3, 2, 1, 1.
/// assert_eq!(positions, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
/// # Ok::<(), ratchet_backtest::BacktestError>(())
/// ```
pub fn sma_crossover(close: &[f64], fast: usize, slow: usize) -> Result<Vec<f64>, BacktestError> {
    if fast == 0 || fast >= slow {
        return input(format!(
            "SMA crossover needs 0 < fast < slow windows; got fast {fast}, slow {slow}"
        ));
    }
    let mut positions = vec![0.0; close.len()];
    if close.len() < slow {
        return Ok(positions);
    }
    // Rolling sums; compare fast_sum * slow > slow_sum * fast to avoid two divisions.
    let (fw, sw) = (fast as f64, slow as f64);
    let mut fast_sum: f64 = close[slow - fast..slow].iter().sum();
    let mut slow_sum: f64 = close[..slow].iter().sum();
    positions[slow - 1] = f64::from(u8::from(fast_sum * sw > slow_sum * fw));
    for t in slow..close.len() {
        fast_sum += close[t] - close[t - fast];
        slow_sum += close[t] - close[t - slow];
        positions[t] = f64::from(u8::from(fast_sum * sw > slow_sum * fw));
    }
    Ok(positions)
}
