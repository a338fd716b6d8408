//! `ratchet train`'s flags over a run configuration ([`TrainConfig`], in `ratchet-config`).

use ratchet_config::TrainConfig;

use crate::cli::TrainArgs;

/// Applies the command-line flags over the file's values.
pub fn apply_flags(config: &mut TrainConfig, args: &TrainArgs) {
    let run = &mut config.run;
    if let Some(a) = args.algo {
        run.algo = a;
    }
    if let Some(e) = args.env {
        run.env = e;
    }
    if let Some(s) = args.steps {
        run.steps = s;
    }
    if let Some(s) = args.seed {
        run.seed = s;
    }
    if let Some(d) = args.device {
        run.device = d;
    }
    if let Some(a) = args.arithmetic {
        config.set_arithmetic(a);
    }
    let run = &mut config.run;
    if let Some(n) = &args.model_name {
        run.model_name = Some(n.clone());
    }
    if let Some(x) = &args.experiment {
        run.experiment = x.clone();
    }
    if let Some(c) = args.checkpoint_every {
        run.checkpoint_every = c;
    }
    if let Some(d) = &args.data {
        config.data.set_from_flag(d);
    }
    config.run_tags.extend(args.tags.iter().cloned());
    config.settle_schedule();
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn example(name: &str) -> TrainConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .join(name);
        TrainConfig::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"))
    }

    #[test]
    fn flags_override_the_file() {
        let mut config = example("dqn-eurusd.toml");
        let args = TrainArgs {
            steps: Some(123),
            seed: Some(9),
            model_name: Some("x".into()),
            ..TrainArgs::default()
        };
        apply_flags(&mut config, &args);
        assert_eq!((config.run.steps, config.run.seed), (123, 9));
        assert_eq!(config.model_name(), "x");
        assert_eq!(
            config.dqn.total_timesteps, 123,
            "the schedule follows the run"
        );
    }
}
