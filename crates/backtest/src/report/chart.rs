//! Inline SVG charts: value axes on round gridlines (shared with the other pages in the
//! report's style), time-series panels, and the downsampling that keeps a million-bar
//! report small.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use maud::{Markup, html};

use crate::prices::to_datetime;

/// Points kept per line: two per bucket (its minimum and maximum), so a line drawn from
/// millions of bars keeps every spike and dip at the resolution of the chart.
pub(super) const MAX_POINTS: usize = 2_000;

/// Indices of the points to draw of `ys`: all of them when there are at most
/// [`MAX_POINTS`], otherwise the first, the last, and the minimum and maximum of each of
/// `MAX_POINTS / 2` equal buckets, in order.
pub(super) fn downsample(ys: &[f64]) -> Vec<usize> {
    let n = ys.len();
    if n <= MAX_POINTS {
        return (0..n).collect();
    }
    let buckets = MAX_POINTS / 2 - 1;
    let mut keep = Vec::with_capacity(MAX_POINTS);
    keep.push(0);
    for b in 0..buckets {
        let (lo, hi) = (1 + b * (n - 2) / buckets, 1 + (b + 1) * (n - 2) / buckets);
        let (mut min, mut max) = (lo, lo);
        for i in lo..hi {
            if ys[i] < ys[min] {
                min = i;
            }
            if ys[i] > ys[max] {
                max = i;
            }
        }
        keep.push(min.min(max));
        if min != max {
            keep.push(min.max(max));
        }
    }
    keep.push(n - 1);
    keep
}

/// A value axis widened to round gridlines: `start..=end` in steps of `step`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axis {
    pub start: f64,
    pub end: f64,
    pub step: f64,
}

impl Axis {
    /// An axis over the values `lo..=hi` with about five gridlines on multiples of a round
    /// step; a single value gets a range of 1 around it.
    ///
    /// ```
    /// use ratchet_backtest::report::Axis;
    /// assert_eq!(Axis::new(-0.25, 1.5), Axis { start: -0.5, end: 1.5, step: 0.5 });
    /// ```
    pub fn new(lo: f64, hi: f64) -> Self {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        };
        let step = nice_step((hi - lo) / 5.0);
        Self {
            start: (lo / step).floor() * step,
            end: (hi / step).ceil() * step,
            step,
        }
    }

    /// The values of the gridlines, from `start` to `end`.
    pub fn ticks(&self) -> impl Iterator<Item = f64> {
        let Self { start, end, step } = *self;
        let lines = ((end - start) / step).round() as usize;
        (0..=lines).map(move |k| start + k as f64 * step)
    }

    /// Where `v` falls between `start` (0) and `end` (1).
    pub fn fraction(&self, v: f64) -> f64 {
        (v - self.start) / (self.end - self.start)
    }
}

/// Decimals that tell gridlines `step` apart.
pub fn decimals(step: f64) -> usize {
    (-step.log10().floor()).clamp(0.0, 6.0) as usize
}

/// An SVG coordinate or length, printed with one decimal.
pub struct Coord(pub f64);

impl fmt::Display for Coord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

/// Geometry of a time-series panel: time on x, a value axis on y.
pub(super) struct Panel {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    t0: f64,
    t1: f64,
    axis: Axis,
}

impl Panel {
    /// A panel over times `t0..=t1` (epoch ms) and values `y0..=y1`, widened to round ticks.
    pub fn new(width: f64, height: f64, t0: i64, t1: i64, y0: f64, y1: f64) -> Self {
        Self {
            width,
            height,
            left: 64.0,
            right: width - 16.0,
            top: 12.0,
            bottom: height - 28.0,
            t0: t0 as f64,
            t1: (t1 as f64).max(t0 as f64 + 1.0),
            axis: Axis::new(y0, y1),
        }
    }

    pub fn x(&self, t: i64) -> f64 {
        self.left + (t as f64 - self.t0) / (self.t1 - self.t0) * (self.right - self.left)
    }

    pub fn y(&self, v: f64) -> f64 {
        self.bottom - self.axis.fraction(v) * (self.bottom - self.top)
    }

    /// The `<svg>`: the grid, the axes and their labels (`y_label` formats a value given the
    /// gridline spacing), then `content` drawn over them.
    pub fn svg(
        &self,
        label: &str,
        y_label: impl Fn(f64, f64) -> String,
        content: Markup,
    ) -> Markup {
        let (l, r, t, b) = (self.left, self.right, self.top, self.bottom);
        html! {
            svg viewBox={ "0 0 " (self.width) " " (self.height) } width="100%" role="img"
                aria-label=(label) {
                title { (label) }
                @for v in self.axis.ticks() {
                    @let y = self.y(v);
                    line class="grid" x1=(Coord(l)) x2=(Coord(r)) y1=(Coord(y)) y2=(Coord(y)) {}
                    text class="ylab" x=(Coord(l - 6.0)) y=(Coord(y + 4.0)) {
                        (y_label(v, self.axis.step))
                    }
                }
                @for (time, text) in time_ticks(self.t0 as i64, self.t1 as i64) {
                    @let x = Coord(self.x(time));
                    line class="grid" x1=(x) x2=(x) y1=(Coord(t)) y2=(Coord(b)) {}
                    text class="xlab" x=(x) y=(Coord(b + 18.0)) { (text) }
                }
                rect class="frame" x=(Coord(l)) y=(Coord(t)) width=(Coord(r - l))
                    height=(Coord(b - t)) {}
                (content)
            }
        }
    }

    /// `d` of a line through `(ts[i], ys[i])` for the downsampled indices.
    pub fn line(&self, ts: &[i64], ys: &[f64], keep: &[usize]) -> String {
        keep.iter()
            .enumerate()
            .map(|(k, &i)| {
                let command = if k == 0 { 'M' } else { 'L' };
                format!("{command}{},{}", Coord(self.x(ts[i])), Coord(self.y(ys[i])))
            })
            .collect()
    }

    /// `d` of the area between a step line (each value held until the next point) and 0.
    pub fn step_area(&self, ts: &[i64], ys: &[f64], keep: &[usize]) -> String {
        let zero = Coord(self.y(0.0));
        let first = Coord(self.x(ts[keep[0]]));
        let steps: String = keep
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let across = match k {
                    0 => String::new(),
                    _ => format!("H{}", Coord(self.x(ts[i]))),
                };
                format!("{across}V{}", Coord(self.y(ys[i])))
            })
            .collect();
        let last = Coord(self.x(ts[*keep.last().expect("a series has points")]));
        format!("M{first},{zero}{steps}H{last}V{zero}Z")
    }

    /// Invisible vertical bands across the panel, each with a tooltip for the bar at its
    /// centre: hovering anywhere over the chart names the date and the values there.
    pub fn hover_bands(&self, ts: &[i64], tooltip: impl Fn(usize) -> String) -> Markup {
        const BANDS: usize = 80;
        let width = (self.right - self.left) / BANDS as f64;
        html! {
            @for b in 0..BANDS {
                @let centre = self.t0 + (b as f64 + 0.5) / BANDS as f64 * (self.t1 - self.t0);
                @let i = ts.partition_point(|&t| (t as f64) < centre).min(ts.len() - 1);
                rect class="hover" x=(Coord(self.left + b as f64 * width)) y=(Coord(self.top))
                    width=(Coord(width)) height=(Coord(self.bottom - self.top)) {
                    title { (tooltip(i)) }
                }
            }
        }
    }
}

/// A round step (1, 2, 2.5 or 5 times a power of ten) near `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let unit = raw / magnitude;
    let nice = if unit <= 1.0 {
        1.0
    } else if unit <= 2.0 {
        2.0
    } else if unit <= 2.5 {
        2.5
    } else if unit <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// At most about eight labelled ticks on calendar boundaries between `t0` and `t1`.
fn time_ticks(t0: i64, t1: i64) -> Vec<(i64, String)> {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let span = t1 - t0;
    let months = span as f64 / (30.44 * DAY as f64);
    if months >= 3.0 {
        let step = [1, 2, 3, 6, 12, 24, 60, 120, 240, 600, 1200, 6000]
            .into_iter()
            .find(|&s| months / s as f64 <= 8.0)
            .unwrap_or(12_000);
        let start = to_datetime(t0);
        let mut index = start.year() as i64 * 12 + start.month0() as i64 + 1;
        let mut ticks = Vec::new();
        loop {
            if index % step == 0 {
                let (year, month0) = (index.div_euclid(12), index.rem_euclid(12));
                let Some(t) = month_start(year, month0 as u32 + 1) else {
                    break;
                };
                if t > t1 {
                    break;
                }
                let label = if step >= 12 {
                    format!("{year}")
                } else {
                    format!("{year}-{:02}", month0 + 1)
                };
                ticks.push((t, label));
            }
            index += 1;
        }
        ticks
    } else {
        let step = [
            HOUR,
            3 * HOUR,
            6 * HOUR,
            12 * HOUR,
            DAY,
            2 * DAY,
            7 * DAY,
            14 * DAY,
            28 * DAY,
        ]
        .into_iter()
        .find(|&s| span / s <= 8)
        .unwrap_or(28 * DAY);
        let fmt = if step >= DAY {
            "%Y-%m-%d"
        } else {
            "%m-%d %H:%M"
        };
        let first = (t0.div_euclid(step) + 1) * step;
        (0..)
            .map(|k| first + k * step)
            .take_while(|&t| t <= t1)
            .map(|t| (t, to_datetime(t).format(fmt).to_string()))
            .collect()
    }
}

fn month_start(year: i64, month: u32) -> Option<i64> {
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?;
    Some(
        DateTime::<Utc>::from_naive_utc_and_offset(date.and_time(chrono::NaiveTime::MIN), Utc)
            .timestamp_millis(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_extremes_in_order() {
        let n = 1_000_003;
        let mut ys: Vec<f64> = (0..n).map(|i| (i as f64 / 5_000.0).sin()).collect();
        ys[123_457] = 9.0;
        ys[765_433] = -9.0;
        let keep = downsample(&ys);
        assert!(keep.len() <= MAX_POINTS);
        assert!(keep.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((keep[0], keep[keep.len() - 1]), (0, n - 1));
        assert!(keep.contains(&123_457) && keep.contains(&765_433));
        assert_eq!(downsample(&ys[..500]), (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(0.37), 0.5);
        assert_eq!(nice_step(0.012), 0.02);
        assert_eq!(nice_step(230.0), 250.0);
        assert_eq!(
            Axis::new(1.0, 1.0),
            Axis {
                start: 0.4,
                end: 1.6,
                step: 0.2
            }
        );
        assert_eq!(
            Axis::new(-0.25, 1.5).ticks().collect::<Vec<_>>(),
            [-0.5, 0.0, 0.5, 1.0, 1.5]
        );
        let day = 86_400_000;
        let years = time_ticks(1_230_768_000_000, 1_230_768_000_000 + 3650 * day);
        assert!(years.len() <= 8 && years.len() >= 4, "{years:?}");
        assert!(years.iter().all(|(_, label)| label.len() == 4));
    }
}
