//! `ratchet features export`: the features of a version's (or a config's) bars as a Feast
//! repository.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ratchet_config::{EnvKind, TrainConfig};
use ratchet_data::{FeastTarget, FeatureFrame};

use crate::checkpoint;
use crate::cli::{ExportArgs, FeaturesCommand};
use crate::output::print_json;
use crate::universe::TrainingData;

pub fn run(tracking_uri: &str, cmd: FeaturesCommand) -> Result<()> {
    match cmd {
        FeaturesCommand::Export(args) => export(tracking_uri, args),
    }
}

fn export(tracking_uri: &str, args: ExportArgs) -> Result<()> {
    let target = FeastTarget::new(&args.feast)?;
    let (config, what) = if args.source.starts_with("models:/") {
        let registry = ratchet_registry::Registry::open(tracking_uri)?;
        let (version, _) = checkpoint::load_weights(&registry, &args.source)?;
        (version.config, version.uri)
    } else {
        let path = Path::new(&args.source);
        let config = TrainConfig::load(path)
            .with_context(|| format!("reading the config {}", path.display()))?;
        (config, path.display().to_string())
    };
    if config.run.env != EnvKind::Trading {
        bail!("{what} is for CartPole and has no market features to export");
    }
    let data = TrainingData::prepare(&config)?;
    let frames: Vec<(String, &FeatureFrame)> = data
        .instruments()
        .into_iter()
        .map(|(symbol, market)| (symbol, &market.frame))
        .collect();
    let repo = target.write(
        &config.features,
        &frames,
        &ratchet_mlflow::absolute_tracking_uri(tracking_uri)?,
    )?;
    if args.json {
        return print_json(&repo);
    }
    println!(
        "wrote Feast repository {} for {what}: {} rows of {} symbol(s) ({}), features {}",
        repo.dir.display(),
        repo.rows,
        repo.symbols.len(),
        repo.symbols.join(", "),
        config.features.short_hash(),
    );
    println!(
        "  feature service {} (view {}), offline source {}",
        repo.feature_service,
        repo.feature_view,
        repo.source.display()
    );
    println!("  next: cd {} && feast apply", repo.dir.display());
    Ok(())
}
