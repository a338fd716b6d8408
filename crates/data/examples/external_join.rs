//! The point-in-time join of an outside source onto bar files, timed, for
//! `scripts/compare_external_join.sh` (which runs it under `/usr/bin/time -v` beside polars'
//! `join_asof` and pandas' `merge_asof` on the same files).
//!
//! `external_join BARS SOURCE [--by-symbol]`: BARS is a bars file (long format with a
//! `symbol` column, or one instrument), SOURCE a file with an `event_timestamp` column, value
//! columns `c0` … `c9` and, with `--by-symbol`, a `symbol` column. Values older than 5 days
//! count as missing and drop the bar. Prints the read and join times, the bars kept and the sum
//! of the joined values (to check that every tool joined the same values).

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ratchet_data::{
    ExternalFeature, ExternalSource, LoadOptions, MissingRule, Transform, Universe,
};
use rayon::prelude::*;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bars, source, by_symbol) = match args.as_slice() {
        [bars, source] => (bars, source, false),
        [bars, source, flag] if flag == "--by-symbol" => (bars, source, true),
        _ => return Err("usage: external_join BARS SOURCE [--by-symbol]".into()),
    };
    let feature = ExternalFeature {
        name: "x".into(),
        source: PathBuf::from(source),
        timestamp: "event_timestamp".into(),
        symbol: by_symbol.then(|| "symbol".into()),
        created: None,
        timestamp_format: None,
        columns: (0..10).map(|i| format!("c{i}")).collect(),
        max_staleness: Duration::from_secs(5 * 86_400),
        missing: MissingRule::Drop,
        transform: Transform::Raw,
        window: None,
        feast: None,
    };
    feature.validate()?;

    let start = Instant::now();
    let universe = Universe::load(&[PathBuf::from(bars)], &LoadOptions::default())?;
    let bars_read = start.elapsed();
    let start = Instant::now();
    let source = ExternalSource::load(&feature)?;
    let source_read = start.elapsed();
    // As a universe's features are computed: every instrument in parallel.
    let start = Instant::now();
    let joined = universe
        .members
        .par_iter()
        .map(|m| source.join(&m.symbol, &m.loaded.bars.timestamps))
        .collect::<Result<Vec<_>, _>>()?;
    let join = start.elapsed();

    let bars: usize = joined.iter().map(|j| j.kept.len()).sum();
    let kept: usize = joined.iter().map(|j| j.kept.len() - j.dropped).sum();
    let sum: f64 = joined
        .iter()
        .flat_map(|j| j.values.iter())
        .filter(|v| !v.is_nan())
        .sum();
    println!(
        "read bars {:.3} s + source {:.3} s ({} rows), join {:.3} s; {bars} bars, {kept} kept, sum {sum:.6e}",
        bars_read.as_secs_f64(),
        source_read.as_secs_f64(),
        source.rows,
        join.as_secs_f64(),
    );
    Ok(())
}
