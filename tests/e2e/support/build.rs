//! Building the guest components the tests run, once per test process:
//! the Rust scenario guest (and its `v2` build) and example, and the
//! Python, JavaScript and C guests, warmed into the tests' artifact cache.

use super::{REGION, activity_toml, cache_dir, repo_root, run_cli, stdout};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The guest components the tests run.
pub struct Guests {
    /// `tests/guests/scenario`: behaviour chosen by the input's `action`.
    pub scenario: PathBuf,
    /// The same guest built with feature `v2` (reports version 2).
    pub scenario_v2: PathBuf,
    /// `examples/rust`: the order-pricing example.
    pub example: PathBuf,
}

/// Builds the guests once per test process (cargo serializes concurrent
/// builds across processes with its own lock).
pub fn guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| {
        let root = repo_root();
        let target = root.join("target/guests");
        for manifest in ["tests/guests/Cargo.toml", "examples/rust/Cargo.toml"] {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
                .arg(root.join(manifest))
                .arg("--target-dir")
                .arg(&target)
                .status()
                .expect("running cargo to build the test guests");
            assert!(
                status.success(),
                "building {manifest} for wasm32-wasip2 failed; is the target installed (rustup target add wasm32-wasip2)?"
            );
        }
        let out = target.join("wasm32-wasip2/release");
        // The "version 2" build of the scenario guest, for hot reload tests,
        // in its own target dir so the two builds do not overwrite each other.
        let v2_target = root.join("target/guests-v2");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--features", "v2", "--manifest-path"])
            .arg(root.join("tests/guests/Cargo.toml"))
            .arg("--target-dir")
            .arg(&v2_target)
            .status()
            .expect("running cargo to build the v2 test guest");
        assert!(status.success(), "building the v2 scenario guest failed");
        Guests {
            scenario: out.join("scenario.wasm"),
            scenario_v2: v2_target.join("wasm32-wasip2/release/scenario.wasm"),
            example: out.join("order_pricing.wasm"),
        }
    })
}

/// The Python, JavaScript and C guests (`tests/guests/build-polyglot.sh`).
pub struct Polyglot {
    /// The order-pricing example per language, Rust first.
    pub examples: Vec<(&'static str, PathBuf)>,
    /// The adversarial scenario guest per language (python, js, c).
    pub scenarios: Vec<(&'static str, PathBuf)>,
    /// The stock-check example calling an HTTP service, per language:
    /// `examples/js-fetch` (fetch()) and `examples/python-http` (wasi:http).
    pub stock_checks: Vec<(&'static str, PathBuf)>,
}

/// Builds the polyglot guests once per test process (the build script
/// installs the toolchains if `scripts/test.sh` has not).
pub fn polyglot() -> &'static Polyglot {
    static POLYGLOT: OnceLock<Polyglot> = OnceLock::new();
    POLYGLOT.get_or_init(|| {
        let root = repo_root();
        // Several test processes may get here at once; one builds at a time.
        let lock = std::fs::File::create(root.join("target/polyglot-build.lock")).unwrap();
        lock.lock().expect("locking the polyglot build");
        let status = Command::new(root.join("tests/guests/build-polyglot.sh"))
            .status()
            .expect("running tests/guests/build-polyglot.sh");
        assert!(status.success(), "tests/guests/build-polyglot.sh failed");
        let polyglot = Polyglot {
            examples: vec![
                ("rust", guests().example.clone()),
                ("python", root.join("examples/python/order_pricing.wasm")),
                ("js", root.join("examples/js/order_pricing.wasm")),
                ("c", root.join("examples/c/order_pricing.wasm")),
            ],
            scenarios: ["python", "js", "c"]
                .into_iter()
                .map(|l| (l, root.join(format!("tests/guests/{l}/scenario.wasm"))))
                .collect(),
            stock_checks: vec![
                ("js", root.join("examples/js-fetch/stock_check.wasm")),
                ("python", root.join("examples/python-http/stock_check.wasm")),
            ],
        };
        // Compile every component once into the tests' artifact cache, so
        // workers started by the tests load them in milliseconds instead of
        // compiling 12-18 MiB guests in parallel under load.
        let mut config = format!(
            "endpoint = \"http://127.0.0.1:9\"\nregion = \"{REGION}\"\ncache_dir = \"{}\"\n",
            cache_dir().display()
        );
        let all = (polyglot.examples.iter())
            .chain(&polyglot.scenarios)
            .chain(&polyglot.stock_checks);
        for (i, (_, path)) in all.enumerate() {
            config.push_str(&activity_toml(
                &format!("warm{i}"),
                &format!("arn:aws:states:{REGION}:000000000000:activity:warm{i}"),
                path,
                "memory_limit = \"64MiB\"",
            ));
        }
        let config_path = root.join("target/polyglot-warm.toml");
        std::fs::write(&config_path, config).unwrap();
        let out = run_cli(&["check", "--config", config_path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "warming the artifact cache failed: {}",
            stdout(&out)
        );
        drop(lock);
        polyglot
    })
}
