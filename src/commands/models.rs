//! `ratchet models …`: listing, inspecting and managing registered versions.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde_json::json;

use ratchet_registry::{
    MetricFilter, ModelRef, Registry, RetentionPolicy, VersionFilter, VersionStatus, VersionSummary,
};

use crate::cli::{
    CleanupArgs, CompareArgs, ListArgs, ModelsCommand, PromoteArgs, RollbackArgs, VersionArgs,
};
use crate::output::{Table, figure, number, print_json};

pub fn run(tracking_uri: &str, cmd: ModelsCommand) -> Result<()> {
    // Every subcommand works on versions that exist: none creates a store.
    let registry = Registry::open_existing(tracking_uri)?;
    match cmd {
        ModelsCommand::List(args) => list(&registry, args),
        ModelsCommand::Show(args) => show(&registry, args),
        ModelsCommand::Promote(args) => promote(&registry, args),
        ModelsCommand::Rollback(args) => rollback(&registry, args),
        ModelsCommand::Compare(args) => compare(&registry, args),
        ModelsCommand::Lineage(args) => lineage(&registry, args),
        ModelsCommand::Validate(args) => validate(&registry, args),
        ModelsCommand::Features(args) => features(&registry, args),
        ModelsCommand::Cleanup(args) => cleanup(&registry, args),
    }
}

fn parse(uri: &str) -> Result<ModelRef> {
    Ok(ModelRef::parse(uri)?)
}

fn list(registry: &Registry, args: ListArgs) -> Result<()> {
    let Some(name) = args.name else {
        let models = registry.models()?;
        if args.json {
            return print_json(&models);
        }
        let mut table = Table::new(&["MODEL", "VERSIONS", "LATEST", "PRODUCTION"]);
        for m in &models {
            let versions = registry.list(m, &VersionFilter::default())?;
            let latest = versions.iter().map(|v| v.version).max();
            let production = versions
                .iter()
                .find(|v| v.aliases.iter().any(|a| a == "production"))
                .map(|v| v.version.to_string());
            table.row(vec![
                m.clone(),
                versions.len().to_string(),
                latest.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                production.unwrap_or_else(|| "-".into()),
            ]);
        }
        print!("{}", table.render());
        return Ok(());
    };
    let filter = VersionFilter {
        status: args
            .status
            .as_deref()
            .map(|s| s.parse::<VersionStatus>())
            .transpose()?,
        metrics: args
            .metrics
            .iter()
            .map(|m| metric_filter(m))
            .collect::<Result<_>>()?,
        created_after: args.since.as_deref().map(|d| date(d, false)).transpose()?,
        created_before: args.until.as_deref().map(|d| date(d, true)).transpose()?,
        feature_hash: args.feature_hash,
        algorithm: None,
        symbol: args.symbol,
    };
    let versions = registry.list(&name, &filter)?;
    if args.json {
        return print_json(&versions);
    }
    let mut table = Table::new(&[
        "VERSION", "ID", "SEMVER", "STATUS", "ALGO", "FEATURES", "SHARPE", "RETURN", "MAX DD",
        "PARENT",
    ]);
    for v in &versions {
        let status = match (&v.status, v.aliases.is_empty()) {
            (Some(s), true) => s.to_string(),
            (Some(s), false) => format!("{s} @{}", v.aliases.join(",@")),
            (None, _) => "-".into(),
        };
        table.row(vec![
            v.version.to_string(),
            v.version_id.clone().unwrap_or_else(|| "-".into()),
            v.semver
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            status,
            v.algorithm.clone().unwrap_or_else(|| "-".into()),
            v.feature_hash
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(|h| h.chars().take(12).collect())
                .unwrap_or_else(|| "-".into()),
            number(v.metrics.get("sharpe").copied()),
            // CartPole versions have an episode return, not a return on capital.
            match v.metrics.get("mean_return") {
                Some(r) => format!("{r:.1}/episode"),
                None => figure("total_return", v.metrics.get("total_return").copied()),
            },
            figure("max_drawdown", v.metrics.get("max_drawdown").copied()),
            v.parent
                .as_ref()
                .map(|p| p.uri())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    if table.is_empty() {
        println!("no versions of {name} match");
    } else {
        print!("{}", table.render());
    }
    Ok(())
}

/// A `--metric` filter on a figure versions record, named as the run logged it
/// (`val/sharpe`) or as the version records it (`sharpe`); an unknown name is an error that
/// lists the known ones, not a filter that silently matches nothing.
fn metric_filter(text: &str) -> Result<MetricFilter> {
    let mut filter = MetricFilter::parse(text)?;
    let figure = filter
        .metric
        .strip_prefix("val/")
        .unwrap_or(&filter.metric)
        .to_string();
    let figures = || {
        crate::judge::TRADING_METRICS
            .iter()
            .chain(&crate::judge::CARTPOLE_METRICS)
    };
    if !figures().any(|f| *f == figure) {
        let mut known: Vec<String> = figures().map(|f| format!("val/{f}")).collect();
        known.sort();
        let suggestion = crate::output::did_you_mean(&format!("val/{figure}"), &known);
        anyhow::bail!(
            "--metric {text:?}: versions record no metric `{}`{suggestion}; they record {}",
            filter.metric,
            known.join(", ")
        );
    }
    filter.metric = figure;
    Ok(filter)
}

/// A `--since`/`--until` date ([`ratchet_data::parse_date`]).
fn date(text: &str, end_of_range: bool) -> Result<DateTime<Utc>> {
    let ms = ratchet_data::parse_date(text, end_of_range).map_err(anyhow::Error::msg)?;
    DateTime::from_timestamp_millis(ms)
        .with_context(|| format!("the date '{text}' is out of range"))
}

fn show(registry: &Registry, args: VersionArgs) -> Result<()> {
    let reference = parse(&args.model)?;
    let version = registry.get(&reference)?;
    let number = version.version.unwrap_or_default();
    let stored = registry.store().get_model_version(&version.name, number)?;
    // Metadata only: a server's checkpoint (optimizer, replay buffer) is not fetched.
    let checkpoint = registry.checkpoint_location(&stored)?;
    let test_looks = ratchet_registry::test_looks_of(&stored);
    // How the registered state was chosen (runs with `eval_every` or `select`), and what a
    // sweep recorded about it (`sweep --register-best`).
    let tag = |key: &str| stored.tags.get(key).cloned();
    let selection = tag(crate::commands::train::SELECT_TAG).map(|rule| {
        json!({
            "rule": rule,
            "step": tag(crate::commands::train::SELECTED_STEP_TAG).and_then(|s| s.parse::<u64>().ok()),
            "val_sharpe": tag(crate::commands::train::SELECTED_VAL_SHARPE_TAG).and_then(|s| s.parse::<f64>().ok()),
        })
    });
    let sweep: std::collections::BTreeMap<&str, &str> = stored
        .tags
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("ratchet.sweep.")?, v.as_str())))
        .collect();
    // Versions written by other tools may carry no Ratchet config, hence no plan.
    let config = ratchet_config::TrainConfig::from_version(&version).ok();
    let horizon = config
        .as_ref()
        .and_then(crate::commands::train::planned_horizon);
    let arithmetic = config.as_ref().map(|c| c.arithmetic().name());
    let deployments = registry.deployments(&version.name, number)?;
    if args.json {
        let mut value = serde_json::to_value(&version)?;
        value["uri"] = json!(format!("models:/{}/{}", version.name, number));
        value["checkpoint_path"] = json!(checkpoint);
        value["schedule_horizon"] = json!(horizon.map(|(key, steps)| json!({ key: steps })));
        value["deployments"] = json!(deployments);
        value["test_looks"] = json!(test_looks);
        value["selection"] = json!(selection);
        value["sweep"] = json!(sweep);
        value["retrain"] = json!(crate::commands::retrain::record_of(
            &format!("models:/{}/{}", version.name, number),
            &stored.tags
        ));
        value["arithmetic"] = json!(arithmetic);
        return print_json(&value);
    }
    let t = &version.training;
    println!(
        "models:/{}/{}  ({}, semver {})",
        version.name, number, version.version_id, version.semver
    );
    println!("  status        {}", version.status);
    if !version.aliases.is_empty() {
        println!("  aliases       @{}", version.aliases.join(", @"));
    }
    println!(
        "  created       {}",
        version.created_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!(
        "  algorithm     {} (seed {}, device {}, arithmetic {})",
        t.algorithm,
        t.seed,
        t.device,
        arithmetic.unwrap_or("-")
    );
    println!(
        "  steps         {} in {:.1} s",
        t.training_steps, t.wall_time_secs
    );
    if let Some((key, steps)) = horizon {
        println!("  schedule      planned over {steps} steps ({key})");
    }
    println!(
        "  observation   {:?}, {} actions",
        t.observation_shape, t.action_count
    );
    if !t.feature_hash.is_empty() {
        println!("  features      {}", t.feature_hash);
    }
    println!("  data          {}", t.data.path);
    if !t.data.symbols.is_empty() {
        let symbols: Vec<&str> = t.data.symbols.iter().map(|s| s.symbol.as_str()).collect();
        println!("  symbols       {} ({})", symbols.len(), symbols.join(", "));
    }
    for source in &t.data.outside {
        println!(
            "  outside       {} {} (sha256 {})",
            source.name, source.path, source.sha256
        );
    }
    if !t.data.sha256.is_empty() {
        let label = if t.data.symbols.is_empty() {
            "data sha256"
        } else {
            "universe hash"
        };
        println!("  {label:<13} {}", t.data.sha256);
    }
    for (label, range) in [
        ("train", &t.data.train),
        ("validation", &t.data.validation),
        ("test", &t.data.test),
    ] {
        match range {
            Some(r) => println!("  {label:<13} {} .. {}", r.start, r.end),
            // A version retrained with `[retrain] test_bars = 0`.
            None if label == "test" && t.data.validation.is_some() => {
                println!("  {label:<13} none held back")
            }
            None => {}
        }
    }
    if let Some(p) = &t.parent {
        println!("  parent        {}", p.uri());
    }
    println!(
        "  run           {}",
        version.run_id.as_deref().unwrap_or("-")
    );
    println!("  checkpoint    {checkpoint}");
    if let Some(sel) = &selection {
        println!(
            "  selected      step {} by {} (val sharpe {})",
            sel["step"],
            sel["rule"].as_str().unwrap_or("-"),
            crate::output::number(sel["val_sharpe"].as_f64())
        );
    }
    if !sweep.is_empty() {
        let line: Vec<String> = sweep.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  sweep         {}", line.join(" "));
    }
    let uri = format!("models:/{}/{}", version.name, number);
    if let Some(retrain) = crate::commands::retrain::record_of(&uri, &stored.tags) {
        println!("  retrain       {}", retrain.summary());
    }
    println!(
        "  test looks    {test_looks}{}",
        if test_looks == 0 {
            " (its test range is untouched)"
        } else {
            ""
        }
    );
    if !t.metrics.is_empty() {
        println!("  metrics");
        for (k, v) in &t.metrics {
            println!("    {k:<26} {}", figure(k, Some(*v)));
        }
    }
    if !deployments.is_empty() {
        println!("  served");
        for d in &deployments {
            println!(
                "    {}  {:<12} {:<10} on {}{}",
                d.at.format("%Y-%m-%d %H:%M:%S UTC"),
                d.event,
                d.role,
                d.server,
                if d.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", d.detail)
                }
            );
        }
    }
    Ok(())
}

/// The command that moves `alias` back (`--alias` is left out for the default,
/// `production`).
fn rollback_command(name: &str, alias: &str) -> String {
    if alias == ratchet_registry::PRODUCTION {
        format!("ratchet models rollback {name}")
    } else {
        format!("ratchet models rollback {name} --alias {alias}")
    }
}

fn promote(registry: &Registry, args: PromoteArgs) -> Result<()> {
    let change = registry.promote(&parse(&args.model)?, &args.alias)?;
    if args.json {
        return print_json(&change);
    }
    match change.previous {
        Some(p) => println!(
            "@{} of {} now points at version {} (was {p}; `{}` undoes this)",
            change.alias,
            change.name,
            change.version,
            rollback_command(&change.name, &change.alias)
        ),
        None => println!(
            "@{} of {} now points at version {}",
            change.alias, change.name, change.version
        ),
    }
    Ok(())
}

fn rollback(registry: &Registry, args: RollbackArgs) -> Result<()> {
    let change = registry.rollback(&args.name, &args.alias)?;
    if args.json {
        return print_json(&change);
    }
    println!(
        "@{} of {} rolled back to version {} (from {})",
        change.alias,
        change.name,
        change.version,
        change
            .previous
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    );
    Ok(())
}

fn compare(registry: &Registry, args: CompareArgs) -> Result<()> {
    let refs = args
        .models
        .iter()
        .map(|m| parse(m))
        .collect::<Result<Vec<_>>>()?;
    let comparison = registry.compare(&refs)?;
    if args.json {
        return print_json(&comparison);
    }
    let mut header = vec!["METRIC".to_string()];
    header.extend(comparison.versions.iter().map(VersionSummary::uri));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(&header_refs);
    for row in &comparison.metrics {
        let mut cells = vec![row.metric.clone()];
        for (i, v) in row.values.iter().enumerate() {
            let mark = if row.best == Some(i) { " *" } else { "" };
            cells.push(format!("{}{mark}", figure(&row.metric, *v)));
        }
        table.row(cells);
    }
    print!("{}", table.render());
    println!(
        "* better (by the metric's direction: higher for returns and ratios, lower for drawdown and volatility)"
    );
    Ok(())
}

fn lineage(registry: &Registry, args: VersionArgs) -> Result<()> {
    let lineage = registry.lineage(&parse(&args.model)?)?;
    if args.json {
        return print_json(&lineage);
    }
    let line = |name: &str, version: u64, s: Option<&VersionSummary>| {
        let extra = s
            .map(|s| {
                format!(
                    "  {}  {}  steps {}",
                    s.version_id.as_deref().unwrap_or("-"),
                    s.semver.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    s.training_steps
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into())
                )
            })
            .unwrap_or_else(|| "  (deleted)".into());
        format!("models:/{name}/{version}{extra}")
    };
    for a in lineage.ancestors.iter().rev() {
        println!(
            "{}{}",
            "  ".repeat(0),
            line(&a.name, a.version, a.summary.as_ref())
        );
    }
    let v = &lineage.version;
    println!("{}  <- this version", line(&v.name, v.version, Some(v)));
    for d in &lineage.descendants {
        println!(
            "{}└ {}",
            "  ".repeat(d.depth),
            line(&d.name, d.version, d.summary.as_ref())
        );
    }
    Ok(())
}

fn validate(registry: &Registry, args: VersionArgs) -> Result<()> {
    let report = registry.validate(&parse(&args.model)?)?;
    let ok = report.passed();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["ok"] = json!(ok);
        print_json(&value)?;
    } else {
        for c in &report.checks {
            println!(
                "{} {:<22} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.check,
                c.detail
            );
        }
    }
    if !ok {
        anyhow::bail!(
            "models:/{}/{} failed validation",
            report.name,
            report.version
        );
    }
    Ok(())
}

fn features(registry: &Registry, args: VersionArgs) -> Result<()> {
    let value = registry.feature_config(&parse(&args.model)?)?;
    if value.get("environment").is_some() {
        anyhow::bail!(
            "{} was trained on {} and has no market features",
            args.model,
            value["environment"]
        );
    }
    if args.json {
        return print_json(&value);
    }
    let config: ratchet_data::FeatureConfig = serde_json::from_value(value)?;
    println!(
        "# feature hash {} (paste into a training config)",
        config.hash()
    );
    print!("{}", config.to_config_toml());
    Ok(())
}

fn cleanup(registry: &Registry, args: CleanupArgs) -> Result<()> {
    if args.keep.is_none() && args.older_than.is_none() {
        anyhow::bail!("say what to keep: --keep N (newest versions) and/or --older-than DAYS");
    }
    let report = registry.cleanup(
        &args.name,
        &RetentionPolicy {
            keep_last: args.keep,
            max_age_days: args.older_than.map(|d| d as f64),
            dry_run: args.dry_run,
        },
    )?;
    if args.json {
        return print_json(&report);
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    if report.deleted.is_empty() {
        println!("nothing to delete");
    }
    for v in &report.deleted {
        println!("{verb} {}", v.uri());
    }
    for (version, why) in &report.protected {
        println!("kept models:/{}/{version}: {why}", args.name);
    }
    Ok(())
}
