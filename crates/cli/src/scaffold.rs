//! `wasm-activity new`: a handler project that builds and passes `invoke`
//! out of the box.
//!
//! Each project carries its own copy of the WIT contract and of the guest
//! SDK for its language, taken from this binary, so it builds without this
//! repository and stays pinned to the host version that made it. The
//! templates live in `crates/cli/templates/`; the SDK files are the ones in
//! `guest-sdk/`, included at compile time so they cannot drift.

use std::path::{Path, PathBuf};

/// Languages a handler project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust, with the wasm-activity-guest crate (cargo, wasm32-wasip2).
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-js.
    Js,
    /// C, with clang, wasi-libc and jco.
    C,
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be used for a project, a crate and a file name.
    #[error(
        "project name {0:?} is not usable: use lowercase letters, digits, '-' and '_', starting \
         with a letter (e.g. \"price-order\")"
    )]
    BadName(String),
    /// The target directory exists.
    #[error("{} already exists; pick another name or remove it", .0.display())]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

enum Content {
    Text(&'static str),
    Bytes(&'static [u8]),
}

/// (path in the project, content, executable)
type File = (&'static str, Content, bool);

const WIT: &str = include_str!("../../../wit/handler.wit");

/// `wit/http.wit` (the `activity-http` world) and the WASI packages it
/// refers to, for Python projects: their SDK's `http_request` needs the
/// `wasi:http` imports that world adds.
const WIT_HTTP: [(&str, &str); 8] = [
    ("wit/http.wit", include_str!("../../../wit/http.wit")),
    (
        "wit/deps/cli/package.wit",
        include_str!("../../../wit/deps/cli/package.wit"),
    ),
    (
        "wit/deps/clocks/package.wit",
        include_str!("../../../wit/deps/clocks/package.wit"),
    ),
    (
        "wit/deps/filesystem/package.wit",
        include_str!("../../../wit/deps/filesystem/package.wit"),
    ),
    (
        "wit/deps/http/package.wit",
        include_str!("../../../wit/deps/http/package.wit"),
    ),
    (
        "wit/deps/io/package.wit",
        include_str!("../../../wit/deps/io/package.wit"),
    ),
    (
        "wit/deps/random/package.wit",
        include_str!("../../../wit/deps/random/package.wit"),
    ),
    (
        "wit/deps/sockets/package.wit",
        include_str!("../../../wit/deps/sockets/package.wit"),
    ),
];
const INPUT: &str = include_str!("../templates/common/input.json");
const EXPECTED: &str = include_str!("../templates/common/expected.json");
const WORKER: &str = include_str!("../templates/common/worker.toml");
const README: &str = include_str!("../templates/common/README.md");

fn files(language: Language) -> Vec<File> {
    use Content::{Bytes, Text};
    let mut files: Vec<File> = vec![
        ("wit/handler.wit", Text(WIT), false),
        ("input.json", Text(INPUT), false),
        ("expected.json", Text(EXPECTED), false),
        ("worker.toml", Text(WORKER), false),
        ("README.md", Text(README), false),
    ];
    files.extend(match language {
        Language::Rust => vec![
            (
                "Cargo.toml",
                Text(include_str!("../templates/rust/Cargo.toml")),
                false,
            ),
            (
                "src/lib.rs",
                Text(include_str!("../templates/rust/lib.rs")),
                false,
            ),
            (
                ".cargo/config.toml",
                Text(include_str!("../templates/rust/cargo/config.toml")),
                false,
            ),
            (
                "build.sh",
                Text(include_str!("../templates/rust/build.sh")),
                true,
            ),
            (
                "wasm-activity-guest/Cargo.toml",
                Text(include_str!("../templates/rust/sdk-Cargo.toml")),
                false,
            ),
            (
                "wasm-activity-guest/src/lib.rs",
                Text(include_str!("../../../guest-sdk/src/lib.rs")),
                false,
            ),
            (".gitignore", Text("/target/\n*.wasm\n"), false),
        ],
        Language::Python => vec![
            (
                "app.py",
                Text(include_str!("../templates/python/app.py")),
                false,
            ),
            (
                "build.sh",
                Text(include_str!("../templates/python/build.sh")),
                true,
            ),
            (
                "wasm_activity.py",
                Text(include_str!("../../../guest-sdk/python/wasm_activity.py")),
                false,
            ),
            (".gitignore", Text("*.wasm\n__pycache__/\n"), false),
        ]
        .into_iter()
        .chain(WIT_HTTP.map(|(path, text)| (path, Text(text), false)))
        .collect(),
        Language::Js => vec![
            (
                "app.js",
                Text(include_str!("../templates/js/app.js")),
                false,
            ),
            (
                "package.json",
                Text(include_str!("../templates/js/package.json")),
                false,
            ),
            (
                "build.sh",
                Text(include_str!("../templates/js/build.sh")),
                true,
            ),
            (
                "wasm-activity.js",
                Text(include_str!("../../../guest-sdk/js/wasm-activity.js")),
                false,
            ),
            (".gitignore", Text("*.wasm\nnode_modules/\n"), false),
        ],
        Language::C => vec![
            (
                "handler.c",
                Text(include_str!("../templates/c/handler.c")),
                false,
            ),
            (
                "build.sh",
                Text(include_str!("../templates/c/build.sh")),
                true,
            ),
            (
                "sdk/wasm_activity.h",
                Text(include_str!("../../../guest-sdk/c/wasm_activity.h")),
                false,
            ),
            (
                "sdk/wasm_activity.c",
                Text(include_str!("../../../guest-sdk/c/wasm_activity.c")),
                false,
            ),
            (
                "sdk/bindings/activity.h",
                Text(include_str!("../../../guest-sdk/c/bindings/activity.h")),
                false,
            ),
            (
                "sdk/bindings/activity.c",
                Text(include_str!("../../../guest-sdk/c/bindings/activity.c")),
                false,
            ),
            (
                "sdk/bindings/activity_component_type.o",
                Bytes(include_bytes!(
                    "../../../guest-sdk/c/bindings/activity_component_type.o"
                )),
                false,
            ),
            (
                "sdk/vendor/cjson/cJSON.h",
                Text(include_str!("../../../guest-sdk/c/vendor/cjson/cJSON.h")),
                false,
            ),
            (
                "sdk/vendor/cjson/cJSON.c",
                Text(include_str!("../../../guest-sdk/c/vendor/cjson/cJSON.c")),
                false,
            ),
            (
                "sdk/vendor/cjson/LICENSE",
                Text(include_str!("../../../guest-sdk/c/vendor/cjson/LICENSE")),
                false,
            ),
            (".gitignore", Text("*.wasm\nbuild/\n"), false),
        ],
    });
    files
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(ScaffoldError::BadName(name.to_string()))
    }
}

fn fill(template: &str, name: &str, language: Language) -> String {
    let (label, notes, memory) = match language {
        Language::Rust => (
            "Rust",
            "Needs `rustup target add wasm32-wasip2`. The handler is `src/lib.rs`; the SDK crate is \
             `wasm-activity-guest/`.",
            "64MiB",
        ),
        Language::Python => (
            "Python",
            "Needs python3 with venv: `build.sh` installs componentize-py 0.25.1 on first use (into \
             ~/.cache/wasm-activity-dev/guest-tools, shared with the examples). The handler is \
             `app.py`; the SDK is `wasm_activity.py`. The component is ~18 MiB and needs ~12 MiB \
             of linear memory per instance, hence `memory_limit` in worker.toml.",
            "64MiB",
        ),
        Language::Js => (
            "JavaScript",
            "Needs node and npm (`build.sh` runs `npm install` for componentize-js). The handler is \
             `app.js`; the SDK is `wasm-activity.js`. `fetch()` reaches the origins the config \
             allows under `[activity.NAME.http]`.",
            "64MiB",
        ),
        Language::C => (
            "C",
            "Needs clang, lld and wasi-libc (Debian's, which `build.sh` installs with apt-get if \
             missing) and jco 1.35.0 (installed on first use into \
             ~/.cache/wasm-activity-dev/guest-tools, shared with the examples). The handler is \
             `handler.c`; the SDK is `sdk/` (with cJSON for JSON).",
            "16MiB",
        ),
    };
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{language}}", label)
        .replace("{{build_notes}}", notes)
        .replace("{{memory}}", memory)
}

/// Creates the project `name` for `language` under `parent`; returns its
/// directory.
pub fn create(language: Language, name: &str, parent: &Path) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    for (rel, content, executable) in files(language) {
        let path = dir.join(rel);
        let write = |path: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("project files are in a directory"))?;
            match content {
                Content::Text(t) => std::fs::write(path, fill(t, name, language))?,
                Content::Bytes(b) => std::fs::write(path, b)?,
            }
            if executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
            }
            Ok(())
        };
        write(&path).map_err(|source| ScaffoldError::Write { path, source })?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_crates_and_files() {
        for good in ["price-order", "a", "etl_v2"] {
            check_name(good).unwrap();
        }
        for bad in ["", "Price", "1st", "../escape", "a b", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rust_projects_build_with_webassembly_simd() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = create(Language::Rust, "simd-handler", tmp.path()).unwrap();
        let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
        let parsed: toml::Table = toml::from_str(&config).unwrap();
        assert_eq!(
            parsed["target"]["wasm32-wasip2"]["rustflags"],
            toml::Value::Array(vec!["-C".into(), "target-feature=+simd128".into()])
        );
    }

    #[test]
    fn every_language_gets_the_contract_a_build_script_and_no_placeholders() {
        let tmp = tempfile::tempdir().unwrap();
        for language in [Language::Rust, Language::Python, Language::Js, Language::C] {
            let name = format!("{language:?}-handler").to_lowercase();
            let dir = create(language, &name, tmp.path()).unwrap();
            assert_eq!(
                std::fs::read_to_string(dir.join("wit/handler.wit")).unwrap(),
                WIT
            );
            for (rel, content, _) in files(language) {
                if let Content::Text(_) = content {
                    let text = std::fs::read_to_string(dir.join(rel)).unwrap();
                    assert!(
                        !text.contains("{{"),
                        "{rel} for {language:?} has a placeholder"
                    );
                }
            }
            assert!(
                std::fs::read_to_string(dir.join("worker.toml"))
                    .unwrap()
                    .contains(&format!("component = \"{name}.wasm\""))
            );
            let err = create(language, &name, tmp.path()).unwrap_err();
            assert!(err.to_string().contains("already exists"), "{err}");
        }
    }

    /// A project's build script and the examples' share one toolchain root,
    /// so a newcomer who built an example does not download them again.
    #[test]
    fn projects_and_examples_share_the_toolchain_root() {
        let root = "${WASM_ACTIVITY_CACHE:-$HOME/.cache/wasm-activity-dev}/guest-tools";
        assert!(include_str!("../../../scripts/guest-tools.sh").contains(root));
        for script in [
            include_str!("../templates/python/build.sh"),
            include_str!("../templates/c/build.sh"),
        ] {
            assert!(script.contains(root), "{script}");
            assert!(!script.contains(".cache/wasm-activity}"), "{script}");
        }
    }
}
