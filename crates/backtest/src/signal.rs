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
    let mut positions = Vec::new();
    sma_crossover_into(close, fast, slow, &mut positions)?;
    Ok(positions)
}

/// [`sma_crossover`] into a vector whose memory is reused, for sweeps over many windows.
pub fn sma_crossover_into(
    close: &[f64],
    fast: usize,
    slow: usize,
    positions: &mut Vec<f64>,
) -> Result<(), BacktestError> {
    if fast == 0 || fast >= slow {
        return input(format!(
            "SMA crossover needs 0 < fast < slow windows; got fast {fast}, slow {slow}"
        ));
    }
    let n = close.len();
    positions.clear();
    positions.resize(n, 0.0);
    if n < slow {
        return Ok(());
    }
    // Rolling sums; compare fast_sum * slow > slow_sum * fast to avoid two divisions.
    let (fw, sw) = (fast as f64, slow as f64);
    let long = |fast_sum: f64, slow_sum: f64| f64::from(u8::from(fast_sum * sw > slow_sum * fw));
    let mut fast_sum: f64 = close[slow - fast..slow].iter().sum();
    let mut slow_sum: f64 = close[..slow].iter().sum();
    positions[slow - 1] = long(fast_sum, slow_sum);
    for (((p, &new), &leaving_fast), &leaving_slow) in positions[slow..]
        .iter_mut()
        .zip(&close[slow..])
        .zip(&close[slow - fast..n - fast])
        .zip(&close[..n - slow])
    {
        fast_sum += new - leaving_fast;
        slow_sum += new - leaving_slow;
        *p = long(fast_sum, slow_sum);
    }
    Ok(())
}
