//! report.html rendered by a real headless Chromium (Debian's `chromium`; `CHROMIUM`
//! overrides the path): a screenshot is taken and the rendered DOM holds the charts.
//!
//! Set `RATCHET_KEEP_SCREENSHOT=FILE` to keep a copy of the screenshot for a look.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ratchet_backtest::{
    Backtest, Frequency, ReportInput, ReportMetadata, TimeRange, simulate_positions, sma_crossover,
    write_reports,
};
use ratchet_env::execution::Costs;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;

fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.is_file(),
        "Chromium not found at {}: install Debian's `chromium` package (apt-get install chromium) \
         or point CHROMIUM at a Chromium binary; this test needs a real browser",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `args` and returns what it printed to stdout,
/// failing the test after two minutes. Output goes to files, not pipes: Chromium logs a
/// lot to stderr and would block on a full pipe nobody reads while we wait.
fn run_chromium(profile: &Path, page: &Path, args: &[String]) -> String {
    let stdout_path = profile.with_extension("stdout");
    let stderr_path = profile.with_extension("stderr");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .expect("cannot start Chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Chromium did not finish within 2 minutes; its stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "Chromium failed ({status}): {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    std::fs::read_to_string(&stdout_path).expect("Chromium printed UTF-8")
}

#[test]
fn report_renders_in_headless_chromium() {
    let prices = common::googl();
    let positions = sma_crossover(prices.close(), 10, 50).unwrap();
    let sim = simulate_positions(&prices, &positions, Costs::default()).unwrap();
    let backtest = Backtest::new(&prices, sim, Frequency::infer(prices.timestamps())).unwrap();
    let meta = ReportMetadata {
        title: "GOOGL SMA(10/50) crossover".into(),
        data_file: Some("data/STOCKS_GOOGL.csv".into()),
        ..ReportMetadata::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let input = ReportInput {
        prices: &prices,
        backtest: &backtest,
        metadata: &meta,
        training_range: Some(TimeRange {
            start: common::date("2009-05-22"),
            end: common::date("2015-12-31"),
        }),
    };
    let paths = write_reports(&dir.path().join("report"), &input).unwrap();
    let page = paths.html.canonicalize().unwrap();

    let png = dir.path().join("report.png");
    run_chromium(
        &dir.path().join("profile-shot"),
        &page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={WIDTH},{HEIGHT}"),
        ],
    );
    let bytes =
        std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    if let Ok(keep) = std::env::var("RATCHET_KEEP_SCREENSHOT") {
        std::fs::copy(&png, &keep).unwrap();
    }
    // PNG signature, then the IHDR chunk: width and height as big-endian u32.
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (WIDTH, HEIGHT));
    // A blank 1280x2000 page compresses to a few kilobytes; charts and tables do not.
    assert!(
        bytes.len() > 60_000,
        "screenshot is only {} bytes: nothing drawn?",
        bytes.len()
    );

    let dom = run_chromium(
        &dir.path().join("profile-dom"),
        &page,
        &["--dump-dom".to_string()],
    );
    for id in [
        "chart-equity",
        "chart-drawdown",
        "chart-monthly",
        "chart-position",
    ] {
        let start = dom
            .find(&format!("<section id=\"{id}\">"))
            .unwrap_or_else(|| panic!("{id} not rendered"));
        let section = dom
            .get(start..)
            .unwrap()
            .split("</section>")
            .next()
            .unwrap();
        assert!(
            section.contains("<svg "),
            "{id} has no SVG in the rendered DOM"
        );
        assert!(
            section.contains("<path ") || section.contains("<rect "),
            "{id} draws nothing"
        );
    }
    // Every month of 2009-05 .. 2018-08 is a heatmap cell with a tooltip.
    assert_eq!(dom.matches("<g class=\"cell\"><title>").count(), 112 + 10);
    assert!(dom.contains("id=\"leakage-warning\""));
}
