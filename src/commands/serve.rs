//! `ratchet serve`: the flags and signals around `ratchet-serve`, run until Ctrl-C or SIGTERM.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ratchet_registry::{ModelRef, Registry};
use ratchet_serve::{AutoPromote, FeastOnline, ServeOptions, Slo, Targets};

use crate::cli::ServeArgs;

pub fn run(tracking_uri: &str, args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if !(args.poll_seconds.is_finite() && args.poll_seconds > 0.0) {
        bail!(
            "--poll-seconds is {}; it must be a positive number of seconds",
            args.poll_seconds
        );
    }
    let parse = |uri: &str| ModelRef::parse(uri).with_context(|| format!("reading {uri}"));
    let targets = Targets {
        production: parse(&args.model)?,
        canary: args.canary.as_deref().map(parse).transpose()?,
        shadow: args.shadow.as_deref().map(parse).transpose()?,
    };
    let slo = args.slo.as_deref().map(Slo::from_file).transpose()?;
    let token = std::env::var("RATCHET_SERVE_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let registry = Arc::new(Registry::open(tracking_uri)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(ratchet_serve::tls::server_config(cert, key)?),
            _ => None,
        };
        if !address.ip().is_loopback() && (tls.is_none() || token.is_none()) {
            eprintln!(
                "warning: listening on {address}, beyond this machine, {}",
                match (tls.is_some(), token.is_some()) {
                    (false, false) => "in plain HTTP and with no RATCHET_SERVE_TOKEN",
                    (false, true) =>
                        "in plain HTTP (the token travels in the clear; see --tls-cert)",
                    _ => "with no RATCHET_SERVE_TOKEN: anyone who reaches it can send bars",
                }
            );
        }
        let feast_online = args
            .feast_online
            .as_deref()
            .map(|url| FeastOnline::new(url, args.feast_timeout))
            .transpose()?;
        let options = ServeOptions {
            targets,
            canary_percent: if args.canary.is_some() {
                args.canary_percent
            } else {
                0.0
            },
            poll: Duration::from_secs_f64(args.poll_seconds),
            slo,
            auto_promote: args.auto_promote.map(|after| AutoPromote {
                after,
                decisions: args.auto_promote_decisions,
            }),
            allow_unvalidated: args.allow_unvalidated,
            any_symbol: args.any_symbol,
            token,
            max_sessions: args.max_sessions,
            feast_online,
        };
        let state = tokio::task::spawn_blocking({
            let server = address.to_string();
            move || ratchet_serve::prepare(registry, options, server)
        })
        .await??;
        let live = state.live();
        eprintln!(
            "serving {} ({}) for {}",
            live.production.uri(),
            live.production.version_id,
            state.targets.production
        );
        if let Some(feast) = &state.feast {
            let sources: Vec<&str> = live
                .production
                .features
                .external
                .iter()
                .filter(|f| f.feast.is_some())
                .map(|f| f.name.as_str())
                .collect();
            eprintln!(
                "bars without {} in \"external\" get them from the Feast feature server at {}",
                sources.join(", "),
                feast.url()
            );
        }
        tokio::spawn(reload_on_sighup(state.clone()));
        match tls {
            Some(config) => {
                let listener = ratchet_serve::tls::TlsListener::new(listener, config)?;
                println!("listening on https://{address}");
                std::io::stdout().flush()?;
                ratchet_serve::serve(state, listener, shutdown_signal()).await?;
            }
            None => {
                println!("listening on http://{address}");
                std::io::stdout().flush()?;
                ratchet_serve::serve(state, listener, shutdown_signal()).await?;
            }
        }
        eprintln!("stopped: requests in flight were answered");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("shutting down: draining requests in flight");
}

async fn reload_on_sighup(state: Arc<ratchet_serve::AppState>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        state.reload.notify_one();
    }
}
