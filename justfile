# Recipes for the Rust WebAssembly module and its Python host.
# `just demo` and `just test` set up everything they need on a machine with
# only rustup, Python 3 and just.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
python := venv / "bin/python"
wasm_target := "wasm32-wasip1"
module := "target" / wasm_target / "release/rust_lib.wasm"
faults_module := "target/faults" / wasm_target / "release/rust_lib.wasm"

# Run the tutorial's three scenes through the WebAssembly module.
demo: build
    {{python}} examples/tutorial.py

# Every check CI runs: formatting, lints, types, Rust and Python tests.
test: build build-faults build-native
    cargo fmt --all --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy --target {{wasm_target}} --features faults -- -D warnings
    cargo test
    {{venv}}/bin/ruff check py_host tests examples bench
    {{venv}}/bin/ruff format --check py_host tests examples bench
    {{venv}}/bin/mypy --strict py_host
    PY_HOST_FAULTS_WASM={{faults_module}} {{python}} -m pytest
    # Again through wasmtime-py's public API, the fallback of the fast transport.
    PY_HOST_PUBLIC_API=1 PY_HOST_FAULTS_WASM={{faults_module}} {{python}} -m pytest -q

# The same logic three ways (ctypes, naive wasmtime-py, py_host), side by side;
# writes docs/BENCHMARKS.md and docs/benchmarks.json.
bench: build build-native
    {{python}} bench/run.py

# Build the benchmark's native baseline: the same Rust logic as a library for ctypes.
build-native: setup
    cargo build --release --manifest-path bench/native/Cargo.toml

# A million mixed calls, valid and invalid: memory must stay flat.
soak: build
    {{python}} tests/soak.py --calls 1000000

# Fuzz the core's JSON entry and executor answers for `seconds` (libFuzzer, via cargo-fuzz).
fuzz seconds="300":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2
    mkdir -p fuzz/corpus/start_procedure
    cd fuzz && cargo fuzz run --sanitizer none start_procedure corpus/start_procedure seeds/start_procedure -- -max_total_time={{seconds}}

# Build the module and put it beside py_host, where py_host.load() finds it.
build: setup
    cargo build --release --target {{wasm_target}}
    cp {{module}} py_host/rust_lib.wasm

# Build the test-only module whose print_string misbehaves on command.
build-faults: setup
    cargo build --release --target {{wasm_target}} --features faults --target-dir target/faults

# Install the Rust target and components and the Python virtualenv, if missing.
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    installed=$(rustup target list --installed)
    grep -qx {{wasm_target}} <<<"$installed" || rustup target add {{wasm_target}}
    components=$(rustup component list --installed)
    for component in rustfmt clippy; do
        grep -q "^$component" <<<"$components" || rustup component add "$component"
    done
    stamp={{venv}}/.installed
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -x {{python}} ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        python3 -m venv {{venv}}
        {{python}} -m pip install --quiet --upgrade pip
        {{python}} -m pip install --quiet -e '.[dev]'
        echo "$want" > "$stamp"
    fi

# Remove build outputs and the virtualenv.
clean:
    cargo clean
    rm -rf {{venv}} py_host/rust_lib.wasm
