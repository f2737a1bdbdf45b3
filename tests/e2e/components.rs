//! Components from a real OCI registry (CNCF distribution, on 127.0.0.1),
//! S3 on LocalStack and an https server: published with `push` and with an
//! independent client (oras-py), served by workers that follow a moving tag
//! or key, verified against digest pins, and served from the store when the
//! registry is down.

use crate::support::{
    Backend, Service, Sfn, Worker, activity_toml, binary, guests, localstack_url, stderr, stdout,
    unique, wait_until,
};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const DONE: Duration = Duration::from_secs(90);

/// The venv with oras-py and bcrypt (scripts/component-peers.sh).
fn peers_python() -> String {
    let python = std::env::var("WASM_ACTIVITY_TEST_ORAS_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/wasm-activity-dev/oras-venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    });
    assert!(
        Path::new(&python).exists(),
        "{python} is missing: run scripts/component-peers.sh install (scripts/test.sh does)"
    );
    python
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sha256_of(file: &Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().unwrap();
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    )
}

/// A registry of its own on 127.0.0.1 (never the package's `:5000`
/// service), stopped on drop.
struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    host: String,
}

impl Registry {
    /// A registry; with `login`, it requires that user and password.
    fn start(login: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("127.0.0.1:{}", free_port());
        let auth = match login {
            None => String::new(),
            Some((user, password)) => {
                let hash = Command::new(peers_python())
                    .args([
                        "-c",
                        "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt()).decode())",
                        password,
                    ])
                    .output()
                    .unwrap();
                assert!(hash.status.success(), "{}", stderr(&hash));
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{}", stdout(&hash).trim())).unwrap();
                format!(
                    "auth: {{ htpasswd: {{ realm: test, path: {} }} }}\n",
                    file.display()
                )
            }
        };
        std::fs::write(
            dir.path().join("config.yml"),
            format!(
                "version: 0.1\nlog: {{ level: warn }}\nstorage: {{ filesystem: {{ rootdirectory: {} }}, delete: {{ enabled: true }} }}\n\
                 http: {{ addr: {host} }}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut registry = Registry {
            child: None,
            dir,
            host,
        };
        registry.spawn();
        registry
    }

    fn spawn(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("log")).unwrap())
            .spawn()
            .expect("starting docker-registry (scripts/component-peers.sh installs it)");
        self.child = Some(child);
        let url = format!("http://{}/v2/", self.host);
        wait_until(Duration::from_secs(20), "the registry to answer", || {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
                .output()
                .ok()?;
            matches!(stdout(&out).as_str(), "200" | "401").then_some(())
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where the registry keeps the blob `digest` (`sha256:HEX`).
    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running wasm-activity")
}

/// Publishes with this project's `push`; returns (digest, revision).
fn push(file: &Path, target: &str, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let mut all = vec!["push", file.to_str().unwrap(), target];
    all.extend_from_slice(args);
    let out = cli(&all, env);
    assert!(
        out.status.success(),
        "push failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in push output:\n{text}"))
            .trim()
            .to_string()
    };
    (field("digest:"), field("revision:"))
}

/// Publishes with oras-py, an independent client; returns the manifest digest.
fn oras_push(file: &Path, target: &str) -> String {
    let script = crate::support::repo_root().join("tests/registry/oras_push.py");
    let out = Command::new(peers_python())
        .arg(script)
        .args([target, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras push failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out).trim().to_string()
}

/// `invoke` refused to run the component (exit 2), saying `says`.
fn could_not_run(out: &Output, says: &str) {
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(out), stderr(out));
    assert!(stderr(out).contains(says), "{}", stderr(out));
}

async fn version_of_new_execution(sfn: &Sfn, sm: &str) -> u64 {
    let e = sfn.start(sm, &json!({"action": "version"})).await;
    let done = sfn.wait(&e, DONE).await;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    done.output_json()["version"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_tag_reaches_two_hosts_within_the_refresh_interval_and_no_task_is_lost() {
    let registry = Registry::start(None);
    let target = format!("oci://{}/acme/scenario:live", registry.host);
    let (v1, _) = push(
        &guests().scenario,
        &target,
        &["--insecure-registry", &registry.host],
        &[],
    );
    assert_eq!(
        v1,
        sha256_of(&guests().scenario),
        "push prints the component's digest"
    );

    let svc = Service::start(Backend::Embedded);
    let sfn = Arc::new(Sfn::connect(&svc).await);
    let activity = sfn.create_activity("fleet").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let config = |name: &str| {
        format!(
            "worker_name = \"{name}\"\ncomponent_refresh = \"1s\"\ninsecure_registries = [\"{}\"]\n{}",
            registry.host,
            activity_toml(
                "fleet",
                &activity,
                Path::new(&target),
                "max_concurrent = 4\npollers = 2"
            )
        )
    };
    let mut hosts = [
        Worker::start(&config("host-a"), &svc),
        Worker::start(&config("host-b"), &svc),
    ];
    for h in &hosts {
        assert!(
            h.log().contains(&format!("digest={v1}")) && h.log().contains("component loaded"),
            "the loaded digest is logged:\n{}",
            h.log()
        );
    }
    assert_eq!(version_of_new_execution(&sfn, &sm).await, 1);

    // Executions keep coming while the tag moves.
    let stop = tokio_util::sync::CancellationToken::new();
    let started: Arc<Mutex<Vec<String>>> = Arc::default();
    let load = tokio::spawn({
        let (sfn, sm, stop, started) = (sfn.clone(), sm.clone(), stop.clone(), started.clone());
        async move {
            while !stop.is_cancelled() {
                let e = sfn.start(&sm, &json!({"action": "sleep", "ms": 200})).await;
                started.lock().await.push(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Moved by another client, as a CI pipeline would.
    oras_push(
        &guests().scenario_v2,
        &format!("{}/acme/scenario:live", registry.host),
    );
    let v2 = sha256_of(&guests().scenario_v2);
    for h in &mut hosts {
        // The interval is 1 s (give or take a fifth); fetching and
        // compiling take a few more.
        h.wait_for_log(
            "component reloaded; new tasks run the new version",
            Duration::from_secs(20),
        );
        assert!(h.log().contains(&format!("digest={v2}")), "{}", h.log());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    load.await.unwrap();
    let started = started.lock().await.clone();
    assert!(
        started.len() >= 5,
        "only {} executions started",
        started.len()
    );
    for e in &started {
        let done = sfn.wait(e, DONE).await;
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    }
    for _ in 0..4 {
        assert_eq!(version_of_new_execution(&sfn, &sm).await, 2);
    }
    // The tag did not move again: no second reload on either host.
    for h in &hosts {
        assert_eq!(h.log_count("component reloaded;"), 1, "{}", h.log());
        assert!(!h.log().contains("component refresh:"), "{}", h.log());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_restarts_from_its_store_with_the_registry_down_and_pins_refuse_other_bytes() {
    let mut registry = Registry::start(None);
    let repo = format!("{}/acme/stored", registry.host);
    let manifest = oras_push(&guests().scenario, &format!("{repo}:1"));
    let target = format!("oci://{repo}:1");
    let v1 = sha256_of(&guests().scenario);

    let svc = Service::start(Backend::Embedded);
    let sfn = Sfn::connect(&svc).await;
    let activity = sfn.create_activity("stored").await;
    let sm = sfn.create_state_machine(&activity, 60, None).await;
    let cache = tempfile::tempdir().unwrap();
    let insecure = format!("insecure_registries = [\"{}\"]\n", registry.host);
    let config = |component: &str, extra: &str| {
        format!(
            "{insecure}{}",
            activity_toml("stored", &activity, Path::new(component), extra)
        )
    };

    // `check` fetches as `run` does and says what it resolved, from where.
    let check_config = cache.path().join("check.toml");
    std::fs::write(
        &check_config,
        format!(
            "region = \"us-east-1\"\ncache_dir = \"{}\"\n{}",
            cache.path().display(),
            config(&target, "")
        ),
    )
    .unwrap();
    let out = cli(&["check", "--config", check_config.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("component:    {target}"))
            && stdout(&out).contains(&format!("digest:       {v1} (downloaded)")),
        "{}",
        stdout(&out)
    );

    let mut worker = Worker::start_with_cache(&config(&target, ""), &svc, cache.path());
    assert_eq!(version_of_new_execution(&sfn, &sm).await, 1);
    worker.terminate(Duration::from_secs(60));

    // The registry goes away; a restart serves the stored copy and says so.
    registry.stop();
    let mut worker = Worker::start_with_cache(
        &format!("component_refresh = \"1s\"\n{}", config(&target, "")),
        &svc,
        cache.path(),
    );
    assert!(
        worker.log().contains("starting from the component store")
            && worker.log().contains(&format!("digest={v1}"))
            && worker.log().contains("cannot be reached"),
        "{}",
        worker.log()
    );
    assert_eq!(version_of_new_execution(&sfn, &sm).await, 1);
    // Refreshing against the stopped registry keeps the loaded version,
    // and says so once, not at every check.
    worker.wait_for_log(
        "component refresh: cannot be reached; the version loaded keeps serving",
        Duration::from_secs(20),
    );
    wait_until(Duration::from_secs(20), "two more refreshes", || {
        (worker.log_count("component refreshed") >= 2).then_some(())
    });
    assert_eq!(
        worker.log_count("component refresh:"),
        1,
        "{}",
        worker.log()
    );
    assert_eq!(
        worker.log_count("component reloaded"),
        0,
        "{}",
        worker.log()
    );
    assert_eq!(version_of_new_execution(&sfn, &sm).await, 1);
    worker.terminate(Duration::from_secs(60));

    // A pin naming other bytes is refused, with the key to fix.
    registry.spawn();
    let v2 = sha256_of(&guests().scenario_v2);
    let pinned = std::fs::read_to_string(&check_config).unwrap() + &format!("sha256 = \"{v2}\"\n");
    std::fs::write(&check_config, pinned).unwrap();
    let out = cli(&["check", "--config", check_config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains(&format!("holds {v1}, not {v2} (the `sha256` pin"))
            && text.contains("activity.stored.component"),
        "{text}"
    );

    // A tampered registry: the layer's bytes no longer match its digest.
    // A host without the component in its store refuses it.
    let manifest_json = Command::new("curl")
        .args([
            "-s",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!(
                "http://{}/v2/acme/stored/manifests/{manifest}",
                registry.host
            ),
        ])
        .output()
        .unwrap();
    let manifest_json: serde_json::Value = serde_json::from_slice(&manifest_json.stdout).unwrap();
    let layer = manifest_json["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(layer, v1);
    let blob = registry.blob(layer);
    let mut tampered = std::fs::read(&blob).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&blob, tampered).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let out = cli(
        &[
            "invoke",
            &target,
            "--insecure-registry",
            &registry.host,
            "-i",
            "{\"action\":\"version\"}",
        ],
        &[("XDG_CACHE_HOME", fresh.path().to_str().unwrap())],
    );
    could_not_run(
        &out,
        &format!("not {v1} (the digest the registry names it by"),
    );
}

#[test]
fn push_refuses_what_the_worker_would_not_load_and_targets_it_cannot_fetch_from() {
    let text = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(text.path(), "not a component").unwrap();
    let out = cli(
        &[
            "push",
            text.path().to_str().unwrap(),
            "oci://127.0.0.1:1/acme/x:1",
        ],
        &[],
    );
    could_not_run(&out, "not pushed");
    let scenario = guests().scenario.to_str().unwrap();
    for (target, says) in [
        (
            "ftp://host/x.wasm",
            "expected oci://REGISTRY/REPOSITORY:TAG or s3://BUCKET/KEY",
        ),
        ("oci://127.0.0.1:1/acme/x", "no implicit `latest`"),
        (
            "/tmp/x.wasm",
            "expected oci://REGISTRY/REPOSITORY:TAG or s3://BUCKET/KEY",
        ),
    ] {
        let out = cli(&["push", scenario, target], &[]);
        could_not_run(&out, says);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_logins_come_from_the_environment_or_the_docker_config() {
    let registry = Registry::start(Some(("deployer", "s3cret-pw")));
    let target = format!("oci://{}/private/scenario:1", registry.host);
    let insecure = ["--insecure-registry", registry.host.as_str()];
    let nobody = tempfile::tempdir().unwrap();
    let no_login = [("DOCKER_CONFIG", nobody.path().to_str().unwrap())];

    // A push that the registry refuses (exit 1); its error text.
    let refused_push = |env: &[(&str, &str)]| {
        let file = guests().scenario.to_str().unwrap();
        let out = cli(&["push", file, &target, insecure[0], insecure[1]], env);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        stderr(&out)
    };

    // Without credentials: refused, with the fix.
    let said = refused_push(&no_login);
    assert!(said.contains("docker login"), "{said}");

    // Credentials from the environment go only to the registry they name,
    // and are never said.
    let said = refused_push(&[
        no_login[0],
        ("WASM_ACTIVITY_REGISTRY_HOST", "127.0.0.1:1"),
        ("WASM_ACTIVITY_REGISTRY_USERNAME", "deployer"),
        ("WASM_ACTIVITY_REGISTRY_PASSWORD", "s3cret-pw"),
    ]);
    assert!(!said.contains("s3cret-pw"), "{said}");

    // From the environment.
    push(
        &guests().scenario,
        &target,
        &insecure,
        &[
            no_login[0],
            ("WASM_ACTIVITY_REGISTRY_HOST", &registry.host),
            ("WASM_ACTIVITY_REGISTRY_USERNAME", "deployer"),
            ("WASM_ACTIVITY_REGISTRY_PASSWORD", "s3cret-pw"),
        ],
    );

    // From a Docker config, as `docker login` leaves it.
    let docker = tempfile::tempdir().unwrap();
    let auth = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"deployer:s3cret-pw")?;
            c.wait_with_output()
        })
        .unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        json!({"auths": {registry.host.clone(): {"auth": stdout(&auth)}}}).to_string(),
    )
    .unwrap();
    let run = |docker_config: &Path| {
        let cache = tempfile::tempdir().unwrap();
        cli(
            &[
                "invoke",
                &target,
                insecure[0],
                insecure[1],
                "-i",
                "{\"action\":\"version\"}",
            ],
            &[
                ("DOCKER_CONFIG", docker_config.to_str().unwrap()),
                ("XDG_CACHE_HOME", cache.path().to_str().unwrap()),
            ],
        )
    };
    let out = run(docker.path());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "{\"version\":1}");

    // From a credential helper (`credHelpers`, as ECR's is configured): the
    // Docker helper protocol, the registry on stdin.
    let helped = tempfile::tempdir().unwrap();
    let helper = helped.path().join("docker-credential-fake");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n[ \"$server\" = \"{}\" ] || exit 1\n\
             echo '{{\"ServerURL\":\"'$server'\",\"Username\":\"deployer\",\"Secret\":\"s3cret-pw\"}}'\n",
            registry.host
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        helped.path().join("config.json"),
        json!({"credHelpers": {registry.host.clone(): "fake"}}).to_string(),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        helped.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = cli(
        &[
            "invoke",
            &target,
            insecure[0],
            insecure[1],
            "-i",
            "{\"action\":\"version\"}",
        ],
        &[
            ("DOCKER_CONFIG", helped.path().to_str().unwrap()),
            ("XDG_CACHE_HOME", cache.path().to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "{\"version\":1}");
    let out = run(nobody.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was refused") && !stderr(&out).contains("s3cret-pw"),
        "{}",
        stderr(&out)
    );
}

/// Creates a versioned bucket on LocalStack.
async fn versioned_bucket() -> String {
    let bucket = unique("components");
    let http = reqwest::Client::new();
    let url = format!("{}/{bucket}", localstack_url());
    let r = http.put(&url).send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let r = http
        .put(format!("{url}?versioning"))
        .body(
            "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Status>Enabled</Status></VersioningConfiguration>",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "enable versioning: {}", r.status());
    bucket
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_key_is_followed_and_a_version_id_stays_put() {
    let bucket = versioned_bucket().await;
    let key = format!("s3://{bucket}/handlers/scenario.wasm");
    let aws = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", &localstack_url()),
    ];
    let (digest, revision) = push(&guests().scenario, &key, &[], &aws);
    assert_eq!(digest, sha256_of(&guests().scenario));
    let first_version = revision
        .strip_prefix("version ")
        .unwrap_or_else(|| panic!("a versioned bucket gives a version id: {revision}"))
        .to_string();

    let svc = Service::start(Backend::LocalStack);
    let sfn = Sfn::connect(&svc).await;
    let latest = sfn.create_activity("s3-latest").await;
    let pinned = sfn.create_activity("s3-pinned").await;
    let (sm_latest, sm_pinned) = (
        sfn.create_state_machine(&latest, 60, None).await,
        sfn.create_state_machine(&pinned, 60, None).await,
    );
    let mut worker = Worker::start(
        &format!(
            "component_refresh = \"1s\"\n{}{}",
            activity_toml("latest", &latest, Path::new(&key), ""),
            activity_toml(
                "pinned",
                &pinned,
                Path::new(&format!("{key}?versionId={first_version}")),
                ""
            )
        ),
        &svc,
    );
    assert_eq!(version_of_new_execution(&sfn, &sm_latest).await, 1);

    push(&guests().scenario_v2, &key, &[], &aws);
    worker.wait_for_log(
        "component reloaded; new tasks run the new version",
        Duration::from_secs(20),
    );
    assert_eq!(version_of_new_execution(&sfn, &sm_latest).await, 2);
    assert_eq!(version_of_new_execution(&sfn, &sm_pinned).await, 1);
    assert_eq!(
        worker.log_count("component reloaded;"),
        1,
        "{}",
        worker.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_component_must_match_its_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    std::fs::copy(&guests().scenario, dir.path().join("scenario.wasm")).unwrap();
    let port = free_port();
    let server = format!(
        "import http.server, ssl, functools\n\
         handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory={dir:?})\n\
         httpd = http.server.HTTPServer(('127.0.0.1', {port}), handler)\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         ctx.load_cert_chain({cert:?}, {key:?})\n\
         httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)\n\
         httpd.serve_forever()\n",
        dir = dir.path().display().to_string(),
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    );
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        Command::new("python3")
            .args(["-c", &server])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(10), "the https server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let url = format!("https://127.0.0.1:{port}/scenario.wasm");
    let invoke = |pin: Option<&str>| {
        let cache = tempfile::tempdir().unwrap();
        let mut args = vec!["invoke", url.as_str(), "-i", "{\"action\":\"version\"}"];
        if let Some(pin) = pin {
            args.extend(["--sha256", pin]);
        }
        cli(
            &args,
            &[
                ("SSL_CERT_FILE", cert.to_str().unwrap()),
                ("XDG_CACHE_HOME", cache.path().to_str().unwrap()),
            ],
        )
    };
    let right = sha256_of(&guests().scenario);
    let wrong = sha256_of(&guests().scenario_v2);
    let out = invoke(Some(&wrong));
    could_not_run(
        &out,
        &format!("holds {right}, not {wrong} (the `sha256` pin"),
    );
    let out = invoke(None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sha256"), "{}", stderr(&out));
    let out = invoke(Some(&right));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "{\"version\":1}");
}
