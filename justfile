# Recipes for the Rust WebAssembly module and its Python host.
# `just demo` and `just test` set up everything they need on a machine with
# only rustup, Python 3 and just.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
python := venv / "bin/python"
wasm_target := "wasm32-wasip1"
module := "target" / wasm_target / "release/rust_lib.wasm"
faults_module := "target/faults" / wasm_target / "release/rust_lib.wasm"
web_target := "wasm32-unknown-unknown"
web_module := "wasm/target" / web_target / "release/rust_lib_web.wasm"
tools := ".tools"
# The wasm-bindgen CLI must be the very version of the crate wasm/ pins.
wasm_bindgen_version := `sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' wasm/Cargo.toml`
# axe-core, the browser test's accessibility checker, at a pinned version.
axe_core_version := "4.14.1"
# A version the crates registry mirror here has; `just mutants` installs it.
cargo_mutants_version := "27.1.0"

# Run the tutorial's three scenes through the WebAssembly module.
demo: build
    {{python}} examples/tutorial.py

# Every check CI runs: formatting, lints, types, Rust and Python tests.
test: build build-faults build-native build-web setup-browser setup-node
    cargo fmt --all --check
    cargo fmt --manifest-path wasm/Cargo.toml --check
    cargo clippy --all-targets --features schema -- -D warnings
    cargo clippy --target {{wasm_target}} --features faults -- -D warnings
    cargo clippy --manifest-path wasm/Cargo.toml --target {{web_target}} -- -D warnings
    cargo test --features schema
    {{venv}}/bin/ruff check setup.py py_host tests examples bench
    {{venv}}/bin/ruff format --check setup.py py_host tests examples bench
    {{venv}}/bin/mypy --strict py_host
    PY_HOST_FAULTS_WASM={{faults_module}} {{python}} -m pytest
    # Again through wasmtime-py's public API, the fallback of the fast
    # transport; the browser's tests and the installs never use this
    # process's py_host, so they run once.
    PY_HOST_PUBLIC_API=1 PY_HOST_FAULTS_WASM={{faults_module}} {{python}} -m pytest -q \
        --ignore=tests/test_browser.py --ignore=tests/test_install.py

# Build the browser demo and serve it on 127.0.0.1 (any static server would do).
serve port="8000": build-web
    @echo "The demo: http://127.0.0.1:{{port}}/"
    {{python}} -m http.server --bind 127.0.0.1 --directory wasm/www {{port}}

# Build the browser build (wasm/, through wasm-bindgen) into wasm/www/pkg, beside the page.
build-web: setup setup-web
    cargo build --release --manifest-path wasm/Cargo.toml --target {{web_target}}
    {{tools}}/bin/wasm-bindgen --target web --no-typescript --out-dir wasm/www/pkg {{web_module}}

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

# Mutation testing, not part of `just test`: cargo-mutants on the crate, then
# hand mutations of py_host's checks (tests/mutants.py). Results go to
# target/mutants/; docs/MUTANTS.md keeps the last score and the survivors.
mutants: build build-faults
    #!/usr/bin/env bash
    set -euo pipefail
    if [ "$({{tools}}/bin/cargo-mutants mutants --version 2>/dev/null)" != "cargo-mutants {{cargo_mutants_version}}" ]; then
        cargo install --locked --root {{tools}} cargo-mutants@{{cargo_mutants_version}}
    fi
    mkdir -p target/mutants
    # Natively, src/abi.rs is not compiled (wasm32-wasip1 only) and src/faults.rs
    # only with the test module's feature: their mutants would pass untested.
    # The Python and Node tests cover both through the built module.
    rust=0
    {{tools}}/bin/cargo-mutants mutants --features schema --jobs 1 --timeout 120 \
        --exclude src/abi.rs --exclude src/faults.rs --output target/mutants || rust=$?
    PY_HOST_FAULTS_WASM={{faults_module}} {{python}} tests/mutants.py --markdown target/mutants/python.md
    # cargo-mutants exits 2 when mutants were missed and 3 on timeouts: results,
    # listed above. Anything else means it could not test at all.
    case $rust in 0|2|3) ;; *) exit "$rust" ;; esac

# Build a pure-Python wheel of py_host with the module inside, into dist/:
# installing it needs no Rust toolchain.
wheel: build
    rm -rf build dist
    {{python}} -m pip wheel --quiet --no-deps --wheel-dir dist .
    @ls dist/*.whl

# Build an sdist into dist/: the sources cargo needs, and the module just built,
# so that installing it needs no Rust toolchain either.
sdist: build
    rm -rf dist/*.tar.gz
    {{python}} -m build --sdist --outdir dist .
    @ls dist/*.tar.gz

# Write the JSON Schemas of the input and output, from the Rust types, into docs/schemas/.
schemas:
    cargo run --quiet --features schema --bin schemas -- docs/schemas

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
        # From scratch: a package renamed or dropped must not stay installed.
        python3 -m venv --clear {{venv}}
        {{python}} -m pip install --quiet --upgrade pip
        # The package (whose build makes the module, see setup.py) and the
        # test tools of pyproject.toml's dev dependency group.
        {{python}} -m pip install --quiet -e . --group dev
        echo "$want" > "$stamp"
    fi

# Install the browser build's target and the wasm-bindgen CLI it needs, if missing.
setup-web:
    #!/usr/bin/env bash
    set -euo pipefail
    rustup target list --installed | grep -qx {{web_target}} || rustup target add {{web_target}}
    if [ "$({{tools}}/bin/wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen {{wasm_bindgen_version}}" ]; then
        cargo install --root {{tools}} wasm-bindgen-cli --version ={{wasm_bindgen_version}}
    fi

# Install Debian's Chromium for the browser test, fonts for the page's
# Chinese and emoji, and axe-core (from the npm registry) for its
# accessibility check, if missing.
setup-browser:
    #!/usr/bin/env bash
    set -euo pipefail
    packages="chromium fonts-wqy-microhei fonts-noto-color-emoji"
    # Debian's nodejs comes without npm; other builds of nodejs bring their own.
    command -v npm >/dev/null || packages="$packages npm"
    if ! dpkg -s $packages >/dev/null 2>&1; then
        sudo=$([ "$(id -u)" = 0 ] || echo sudo)
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages
    fi
    axe={{tools}}/axe
    if ! grep -qs '"version": "{{axe_core_version}}"' $axe/node_modules/axe-core/package.json; then
        npm install --silent --no-audit --no-fund --prefix $axe axe-core@{{axe_core_version}}
    fi

# Install Node.js for the second host (tests/node_host), if missing.
setup-node:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v node >/dev/null; then
        sudo=$([ "$(id -u)" = 0 ] || echo sudo)
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs
    fi

# Remove build outputs, installed tools and the virtualenv.
clean:
    cargo clean
    cargo clean --manifest-path wasm/Cargo.toml
    rm -rf {{venv}} {{tools}} py_host/rust_lib.wasm wasm/www/pkg
