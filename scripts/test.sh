#!/usr/bin/env bash
# Runs Ratchet's whole test suite on a fresh machine: installs what the tests need
# (a Python venv with the real MLflow client, one with real Feast, Chromium for the HTML report, a software
# Vulkan adapter for the wgpu test, Prometheus for the serve tests), checks formatting and
# licenses (cargo-deny), runs `cargo test --release --workspace` and clippy with warnings as
# errors; then starts a Ray head on loopback from a pinned Ray venv and runs the
# `ratchet sweep --ray` test.
#
# Environment:
#   CARGO_TARGET_DIR   build directory (default: ./target, the one `cargo run --release` uses,
#                      so the README's two commands share one build)
#   RATCHET_PYTHON     python with mlflow + safetensors (default: ~/.cache/ratchet/venv/bin/python,
#                      made from the pinned scripts/requirements-test.txt)
#   RATCHET_FEAST_PYTHON
#                      python with feast (default: ~/.cache/ratchet/feast-venv/bin/python, made
#                      from the pinned scripts/requirements-feast.txt)
#   RATCHET_MLFLOW_LATEST=1
#                      test against the newest mlflow on PyPI instead of the pinned one
#                      (venv ~/.cache/ratchet/venv-latest, upgraded on every run)
#   CHROMIUM           headless browser for the report test (default: /usr/bin/chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

step() { printf '\n==> %s\n' "$*"; }

# System packages: Chromium (report rendering test), Mesa's lavapipe (software Vulkan, so the
# wgpu test has an adapter without a GPU) and Prometheus.
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers libvulkan1)
# Prometheus (promtool and a server scraping `ratchet serve` in tests/serve.rs).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python venv with the real MLflow client and the safetensors reader, pinned (about 2 minutes
# on first use), or the newest release when asked for.
source scripts/venv.sh
if [ -z "${RATCHET_PYTHON:-}" ]; then
    if [ "${RATCHET_MLFLOW_LATEST:-0}" = 1 ]; then
        venv="$HOME/.cache/ratchet/venv-latest"
        [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
        step "upgrading $venv to the newest mlflow"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade mlflow safetensors numpy
    else
        venv="$HOME/.cache/ratchet/venv"
        ensure_venv "$venv" "mlflow, safetensors, numpy" -r scripts/requirements-test.txt
    fi
    export RATCHET_PYTHON="$venv/bin/python"
fi
"$RATCHET_PYTHON" -c 'import mlflow; print("mlflow", mlflow.__version__)'

# Real Feast for the Feast tests (tests/feast.rs, tests/feast_consume.rs, tests/feast_versions.rs
# with MLflow's client for Feast's MLflow integration, and `feast serve` for --feast-online in
# tests/serve.rs), in its own pinned venv: Feast pins another pandas than MLflow
# (scripts/feast_venv.sh; about a minute on first use).
if [ -z "${RATCHET_FEAST_PYTHON:-}" ]; then
    RATCHET_FEAST_PYTHON="$(bash scripts/feast_venv.sh)"
    export RATCHET_FEAST_PYTHON
fi
"$RATCHET_FEAST_PYTHON" -c 'import feast; print("feast", feast.__version__)'

# Formatting and lints need rustup's rustfmt and clippy components (in its default profile);
# a toolchain without them says so and goes on with the tests.
step "cargo fmt --all --check"
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all --check
else
    echo "rustfmt is not installed (rustup component add rustfmt): formatting not checked" >&2
fi

# Licenses and banned crates (deny.toml). cargo-deny is built once into ~/.cargo/bin (about
# 6 minutes on 2 cores); its advisory check is left out: the database lives on GitHub.
step "cargo deny check licenses bans"
if ! command -v cargo-deny >/dev/null 2>&1; then
    cargo install cargo-deny --locked --version 0.20.2 --quiet
fi
cargo deny --log-level error check licenses bans

step "cargo test --release --workspace (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo test --release --workspace --locked

# README's run command must reuse what the tests built: a dependency compiled with other
# features would show up here as a `Compiling` line (and half of Burn built twice).
step "cargo build --release reuses the test build"
rebuilt="$(cargo build --release --locked --message-format short 2>&1 | grep -E '^\s*Compiling' || true)"
if [ -n "$rebuilt" ]; then
    printf '%s\n' "$rebuilt"
    echo "error: cargo build --release recompiled the crates above after cargo test --release --workspace;" \
        "their features differ between the two commands (see the note above ciborium in Cargo.toml)" >&2
    exit 1
fi

# Lints after the reuse check: clippy's check-mode build has fingerprints of its own.
step "cargo clippy --release --workspace --all-targets -- -D warnings"
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --release --workspace --all-targets --locked -- -D warnings
else
    echo "clippy is not installed (rustup component add clippy): lints not checked" >&2
fi

# `ratchet sweep --ray` against a real Ray head on loopback (tests/sweep_ray.rs, ignored by the
# plain run above): the pinned Ray venv (scripts/ray_venv.sh; about 400 MB, two minutes on
# first use), a head with two CPUs on free ports, stopped again however the test ends.
step "Ray: a head on 127.0.0.1 and tests/sweep_ray.rs"
ray_python="$(bash scripts/ray_venv.sh)"
ray_bin="$(dirname "$ray_python")/ray"
free_port() { "$ray_python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ray_port="$(free_port)"
dashboard_port="$(free_port)"
trap '"$ray_bin" stop --force >/dev/null 2>&1 || true' EXIT
RAY_USAGE_STATS_ENABLED=0 "$ray_bin" start --head --port "$ray_port" --node-ip-address 127.0.0.1 \
    --dashboard-host 127.0.0.1 --dashboard-port "$dashboard_port" --include-dashboard=true \
    --num-cpus 2 --disable-usage-stats >/dev/null
RATCHET_RAY_ADDRESS="http://127.0.0.1:$dashboard_port" \
    cargo test --release --workspace --locked --test sweep_ray -- --ignored
"$ray_bin" stop --force >/dev/null
trap - EXIT
