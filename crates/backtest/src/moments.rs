//! The moments of a run of returns in one vectorised pass: what the Sharpe ratio, its
//! standard error (skewness and kurtosis) and the Sortino ratio are computed from.

/// Sums of the `K` values `f(x)` over `xs`, with four independent accumulators each, so
/// that the additions pipeline and vectorise (a single running sum is one long dependency
/// chain).
#[inline]
fn sums<const K: usize>(xs: &[f64], f: impl Fn(f64) -> [f64; K]) -> [f64; K] {
    let mut acc = [[0.0; K]; 4];
    let chunks = xs.chunks_exact(4);
    let mut rest = [0.0; K];
    for &x in chunks.remainder() {
        for (r, v) in rest.iter_mut().zip(f(x)) {
            *r += v;
        }
    }
    for c in chunks {
        for k in 0..4 {
            for (a, v) in acc[k].iter_mut().zip(f(c[k])) {
                *a += v;
            }
        }
    }
    std::array::from_fn(|i| (acc[0][i] + acc[1][i]) + (acc[2][i] + acc[3][i]) + rest[i])
}

/// Count, mean, sums of the 2nd, 3rd and 4th powers of the deviations from the mean, and
/// the sum of squared losses of a run of returns.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Moments {
    pub count: f64,
    pub mean: f64,
    pub m2: f64,
    pub m3: f64,
    pub m4: f64,
    pub downside: f64,
}

impl Moments {
    /// Two passes over each cache-sized block (its mean, then the deviations from it),
    /// blocks merged with [`Moments::merge`]: the accuracy of a two-pass computation at the
    /// memory traffic of one pass.
    pub fn of(returns: &[f64]) -> Self {
        const BLOCK: usize = 2048;
        returns
            .chunks(BLOCK)
            .map(Self::of_block)
            .fold(Self::default(), Self::merge)
    }

    fn of_block(block: &[f64]) -> Self {
        let count = block.len() as f64;
        let [total] = sums(block, |r| [r]);
        let mean = total / count;
        let [m2, m3, m4, downside] = sums(block, |r| {
            let (d, loss) = (r - mean, r.min(0.0));
            let d2 = d * d;
            [d2, d2 * d, d2 * d2, loss * loss]
        });
        Self {
            count,
            mean,
            m2,
            m3,
            m4,
            downside,
        }
    }

    /// The moments of two runs together: Chan et al.'s pairwise update, extended to the
    /// third and fourth moments by Pébay (2008, Sandia report SAND2008-6212, eqs. 2.1-2.3).
    pub fn merge(self, other: Self) -> Self {
        let (a, b) = (self, other);
        let count = a.count + b.count;
        if a.count == 0.0 || b.count == 0.0 {
            return if a.count == 0.0 { b } else { a };
        }
        let (na, nb) = (a.count, b.count);
        let delta = b.mean - a.mean;
        let d_n = delta / count;
        let m2 = a.m2 + b.m2 + delta * d_n * na * nb;
        let m3 = a.m3
            + b.m3
            + delta * d_n * d_n * na * nb * (na - nb)
            + 3.0 * d_n * (na * b.m2 - nb * a.m2);
        let m4 = a.m4
            + b.m4
            + delta * d_n * d_n * d_n * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * d_n * d_n * (na * na * b.m2 + nb * nb * a.m2)
            + 4.0 * d_n * (na * b.m3 - nb * a.m3);
        Self {
            count,
            mean: a.mean + d_n * nb,
            m2,
            m3,
            m4,
            downside: a.downside + b.downside,
        }
    }
}
