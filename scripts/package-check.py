#!/usr/bin/env python3
"""Checks of the production kit in deploy/ (run by scripts/package-check.sh).

  package-check.py iam                 the IAM policies grant exactly what the code calls
  package-check.py iam --self-test     ... and that check fails on a policy or source that drifts
  package-check.py manifests           Kubernetes manifests and systemd unit against the worker's code
  package-check.py manifests --self-test   ... and that check fails on manifests that drift
  package-check.py chroot BIN ROOTDIR  the static binary serves tasks from a root holding only itself,
                                       the CA bundle, a config and a component

Standard library only, except `manifests`, which needs PyYAML.

Why one file of about 900 lines, over the project's ~800: it is one
command with three subcommands that package-check.sh runs as a plain
script (no package, no imports of its own to install or find), the checks
share its helpers (CheckFailed/fail, and the Rust-source reading `iam`
builds on), and each subcommand is one section read top to bottom: iam,
then manifests, then chroot. Split it by subcommand if a section grows.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IAM_DIR = ROOT / "deploy" / "iam"


class CheckFailed(Exception):
    pass


def fail(msg):
    raise CheckFailed(msg)


# ---------------------------------------------------------------------------------------------
# IAM: the AWS operations the code calls, and the policies that grant them
# ---------------------------------------------------------------------------------------------

# IAM service prefix of each AWS SDK crate the worker may use. An SDK crate not listed here is an
# error: say which policy its calls belong in first.
SDK_PREFIX = {"aws-sdk-sfn": "states", "aws-sdk-swf": "swf", "aws-sdk-s3": "s3"}

# What each SDK operation needs, and in which policy (deploy/iam/<policy>.json). An operation the
# code calls that is missing here fails the check: add it, with its policy, and to that policy.
#   * swf:DescribeActivityType: the worker reads a type's default heartbeat timeout at start
#     (service/swf.rs), and `check --aws` asks whether each versioned type exists (probe.rs).
#   * S3 (crates/artifacts/src/s3.rs): HeadObject is authorized by s3:GetObject; GetObject and
#     HeadObject with a version id (a `?versionId=` reference, and any object of a versioned bucket,
#     which is fetched by the version its HEAD returned) need s3:GetObjectVersion.
GRANTS = {
    ("states", "GetActivityTask"): [("stepfunctions-worker", "states:GetActivityTask")],
    ("states", "SendTaskSuccess"): [("stepfunctions-worker", "states:SendTaskSuccess")],
    ("states", "SendTaskFailure"): [("stepfunctions-worker", "states:SendTaskFailure")],
    ("states", "SendTaskHeartbeat"): [("stepfunctions-worker", "states:SendTaskHeartbeat")],
    ("swf", "PollForActivityTask"): [("swf-worker", "swf:PollForActivityTask")],
    ("swf", "RespondActivityTaskCompleted"): [("swf-worker", "swf:RespondActivityTaskCompleted")],
    ("swf", "RespondActivityTaskFailed"): [("swf-worker", "swf:RespondActivityTaskFailed")],
    ("swf", "RespondActivityTaskCanceled"): [("swf-worker", "swf:RespondActivityTaskCanceled")],
    ("swf", "RecordActivityTaskHeartbeat"): [("swf-worker", "swf:RecordActivityTaskHeartbeat")],
    ("swf", "DescribeActivityType"): [
        ("swf-worker", "swf:DescribeActivityType"),
        ("check-aws", "swf:DescribeActivityType"),
    ],
    ("states", "DescribeActivity"): [("check-aws", "states:DescribeActivity")],
    ("swf", "DescribeDomain"): [("check-aws", "swf:DescribeDomain")],
    ("swf", "CountPendingActivityTasks"): [("check-aws", "swf:CountPendingActivityTasks")],
    ("s3", "GetObject"): [
        ("s3-components-read", "s3:GetObject"),
        ("s3-components-read", "s3:GetObjectVersion"),
    ],
    ("s3", "HeadObject"): [
        ("s3-components-read", "s3:GetObject"),
        ("s3-components-read", "s3:GetObjectVersion"),
    ],
    ("s3", "PutObject"): [("s3-components-publish", "s3:PutObject")],
}

# Actions IAM cannot scope to a resource: they name a task by its token, not by an ARN, so their
# statements say "Resource": "*". Any other action must name its resources.
UNSCOPED = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}

# Sources that are not the shipped binary's AWS calls: the embedded endpoint implements the
# services (it calls none), and test-only modules (`#[cfg(test)]`) run against fakes.
EXCLUDED_CRATES = {"endpoint"}


def cargo_metadata():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def sdk_operations(meta):
    """{snake_name: [(prefix, OperationName, crate)]} for every aws-sdk-* crate that a crate under
    crates/ (not excluded) depends on directly as a normal dependency."""
    packages = {p["id"]: p for p in meta["packages"]}
    crates_dir = ROOT / "crates"
    sdk_ids = set()
    for node in meta["resolve"]["nodes"]:
        manifest = Path(packages[node["id"]]["manifest_path"])
        if manifest.parent.parent != crates_dir or manifest.parent.name in EXCLUDED_CRATES:
            continue
        for dep in node["deps"]:
            pkg = packages[dep["pkg"]]
            normal = any(k["kind"] is None for k in dep["dep_kinds"])
            if pkg["name"].startswith("aws-sdk-") and normal:
                sdk_ids.add(dep["pkg"])
    if not sdk_ids:
        fail("no aws-sdk-* dependency found under crates/: is `cargo metadata` reading this workspace?")
    ops = {}
    for pid in sorted(sdk_ids):
        pkg = packages[pid]
        name = pkg["name"]
        if name not in SDK_PREFIX:
            fail(f"{name} is a dependency of the worker but has no IAM prefix in SDK_PREFIX "
                 f"(scripts/package-check.py): add it, and a policy for its calls")
        op_dir = Path(pkg["manifest_path"]).parent / "src" / "operation"
        found = 0
        for f in sorted(op_dir.glob("*.rs")):
            m = re.search(r'Metadata::new\(\s*"(\w+)"\s*,', f.read_text())
            if m:
                ops.setdefault(f.stem, []).append((SDK_PREFIX[name], m.group(1), name))
                found += 1
        if found < 5:
            fail(f"read only {found} operations from {op_dir}: the SDK's layout changed; fix sdk_operations")
    return ops


def strip_rust(text):
    """The code of a Rust file without comments, string and char literals (replaced by spaces, so
    line numbers stay), for finding calls in it."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i:i + 300])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])):
            out.append(" " * m.end())
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_items(code):
    """`code` (already stripped) without `#[cfg(test)]` items, and the file modules they declare."""
    test_mods = set()
    out = code
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        rest = code[m.end():]
        decl = re.match(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", rest)
        if decl:
            test_mods.add(decl.group(1))
            continue
        # Any other item: up to its matching closing brace (or its `;`).
        j = m.end()
        depth = 0
        while j < len(code):
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            elif code[j] == ";" and depth == 0:
                j += 1
                break
            j += 1
        out = out[:m.start()] + re.sub(r"[^\n]", " ", out[m.start():j]) + out[j:]
    return out, test_mods


def rust_sources():
    """(path, code without comments, literals and test items) of every non-test source file of the
    crates under crates/ that are not excluded."""
    files = []
    for crate in sorted((ROOT / "crates").iterdir()):
        if not (crate / "Cargo.toml").exists() or crate.name in EXCLUDED_CRATES:
            continue
        stripped = {}
        test_files = set()
        for f in sorted((crate / "src").rglob("*.rs")):
            code, mods = strip_test_items(strip_rust(f.read_text()))
            stripped[f] = code
            for mod in mods:
                base = f.parent if f.name in ("mod.rs", "lib.rs", "main.rs") else f.parent / f.stem
                test_files.update({base / f"{mod}.rs", base / mod / "mod.rs"})
        for f, code in stripped.items():
            # A test module's own submodules are test code too.
            if f in test_files or any(t.name == "mod.rs" and t.parent in f.parents for t in test_files):
                continue
            files.append((f, code))
    return files


def called_operations(ops, sources):
    """[(prefix, Operation, 'file:line')] for every `.snake_name()` call of an SDK operation."""
    calls = []
    for f, code in sources:
        for m in re.finditer(r"\.\s*([a-z][a-z0-9_]*)\s*\(\s*\)", code):
            cands = ops.get(m.group(1))
            if not cands:
                continue
            if len(cands) > 1:
                # The same operation name in two SDKs: the one this file uses.
                used = [c for c in cands if c[2].replace("-", "_") in code]
                if len(used) != 1:
                    fail(f"{f.relative_to(ROOT)}: .{m.group(1)}() is an operation of "
                         f"{', '.join(c[2] for c in cands)}; cannot tell which is called here")
                cands = used
            prefix, op, _ = cands[0]
            line = code.count("\n", 0, m.start()) + 1
            calls.append((prefix, op, f"{f.relative_to(ROOT)}:{line}"))
        # The lean client's calls name the operation as the protocol does:
        # `lean.call(Operation::Poll, "GetActivityTask", ...)`; the SDK crate
        # the file imports says which service.
        for m in re.finditer(r"lean\s*\.\s*(?:call|send)\(\s*Operation::\w+,\s*\"([A-Za-z]+)\"", code):
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", m.group(1)).lower()
            used = [c for c in ops.get(snake, []) if c[2].replace("-", "_") in code]
            if len(used) != 1:
                fail(f"{f.relative_to(ROOT)}: lean call {m.group(1)} is no operation of the one SDK "
                     f"this file imports")
            prefix, op, _ = used[0]
            line = code.count("\n", 0, m.start()) + 1
            calls.append((prefix, op, f"{f.relative_to(ROOT)}:{line}"))
    return calls


def read_policies(iam_dir):
    """{policy: {action: [resources]}} of the Allow statements in iam_dir/*.json."""
    policies = {}
    for f in sorted(iam_dir.glob("*.json")):
        doc = json.loads(f.read_text())
        if doc.get("Version") != "2012-10-17":
            fail(f"{f.name}: Version must be \"2012-10-17\"")
        grants = {}
        for st in doc["Statement"]:
            if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
                fail(f"{f.name}: statement {st.get('Sid')}: only Allow with Action and Resource")
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            for a in actions:
                if "*" in a:
                    fail(f"{f.name}: {a}: wildcard action; name each action")
                if a in grants:
                    fail(f"{f.name}: {a} granted twice")
                grants[a] = resources
        policies[f.stem] = grants
    return policies


def compare(calls, policies):
    """The problems: calls without a grant, grants without a call, unscoped resources."""
    problems = []
    expected = {}
    for prefix, op, where in calls:
        grants = GRANTS.get((prefix, op))
        if grants is None:
            problems.append(f"{where} calls {prefix}:{op}, which GRANTS (scripts/package-check.py) "
                            f"does not map to a policy: add it there and to the policy")
            continue
        for policy, action in grants:
            expected.setdefault((policy, action), []).append(where)
    for (policy, action), wheres in sorted(expected.items()):
        if policy not in policies:
            problems.append(f"{action} (called at {wheres[0]}) belongs in deploy/iam/{policy}.json, "
                            f"which does not exist")
        elif action not in policies[policy]:
            problems.append(f"deploy/iam/{policy}.json does not grant {action}, called at {', '.join(wheres)}")
    known = {p for grants in GRANTS.values() for p, _ in grants}
    for policy, grants in sorted(policies.items()):
        if policy not in known:
            problems.append(f"deploy/iam/{policy}.json is no policy of GRANTS: nothing checks it")
        for action, resources in sorted(grants.items()):
            if (policy, action) not in expected:
                problems.append(f"deploy/iam/{policy}.json grants {action}, which no code calls")
            if "*" in resources and action not in UNSCOPED:
                problems.append(f"deploy/iam/{policy}.json grants {action} on \"*\": name its resources")
    return problems, expected


def iam(self_test=False):
    ops = sdk_operations(cargo_metadata())
    sources = rust_sources()
    calls = called_operations(ops, sources)
    policies = read_policies(IAM_DIR)
    problems, expected = compare(calls, policies)
    if not self_test:
        for (policy, action), wheres in sorted(expected.items()):
            print(f"  {policy:22} {action:34} {', '.join(wheres)}")
        if problems:
            fail("IAM policies do not match the code's AWS calls:\n  " + "\n  ".join(problems))
        print(f"ok: {len(calls)} AWS calls in {len(sources)} source files, "
              f"{sum(len(g) for g in policies.values())} grants in {len(policies)} policies match")
        return
    # The check must notice each kind of drift.
    if problems:
        fail("self-test needs a passing baseline:\n  " + "\n  ".join(problems))
    cases = []
    for policy, grants in policies.items():
        for action in grants:
            dropped = {p: {a: r for a, r in g.items() if (p, a) != (policy, action)} for p, g in policies.items()}
            cases.append((f"{policy} without {action}", calls, dropped))
    extra = {p: dict(g) for p, g in policies.items()}
    extra["stepfunctions-worker"]["states:StartExecution"] = ["arn:aws:states:REGION:ACCOUNT_ID:stateMachine:X"]
    cases.append(("a grant no code calls", calls, extra))
    star = {p: dict(g) for p, g in policies.items()}
    star["check-aws"]["states:DescribeActivity"] = ["*"]
    cases.append(("a scoped action on *", calls, star))
    fake = [(ROOT / "crates" / "x" / "src" / "lib.rs",
             "fn f(c: &Client) { c\n    .delete_activity()\n    .send(); }")]
    cases.append(("a new call (DeleteActivity)", calls + called_operations(ops, fake), policies))
    # The source scanner: calls in comments, strings and test modules are not calls.
    ignored = strip_test_items(strip_rust(
        '// c.delete_activity()\nlet s = "c.delete_activity()";\n'
        "#[cfg(test)]\nmod tests { fn t() { c.delete_activity(); } }\n"))[0]
    if "delete_activity" in ignored:
        fail(f"self-test: the scanner kept a call in a comment, string or test module:\n{ignored}")
    for name, case_calls, case_policies in cases:
        if not compare(case_calls, case_policies)[0]:
            fail(f"self-test: the IAM check passed with {name}")
    print(f"ok: the IAM check fails on each of {len(cases)} drifts and ignores test code")


# ---------------------------------------------------------------------------------------------
# Kubernetes manifests and the systemd unit, against the worker's code
# ---------------------------------------------------------------------------------------------

def duration_s(text):
    total, rest = 0.0, text.replace(" ", "")
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", rest):
        total += float(num) * units[unit]
    if not re.fullmatch(r"(\d+(?:\.\d+)?(ms|s|m|h))+", rest):
        fail(f"cannot read duration {text!r}")
    return total


def shutdown_bound(grace_s):
    """How long the worker may take to exit after SIGTERM, read from its code: once the grace period
    is over, the drain gives up after POLL_READ_TIMEOUT (polls in flight) + REPORT_AFTER_GRACE
    (stopped tasks' reports)."""
    src = ROOT / "crates" / "worker" / "src"
    lib = (src / "lib.rs").read_text()
    m = re.search(r"const REPORT_AFTER_GRACE: Duration = Duration::from_secs\((\d+)\)", lib)
    used = re.search(r"use crate::service::(\w+)::POLL_READ_TIMEOUT;", lib)
    if not m or not used or "sleep(POLL_READ_TIMEOUT + REPORT_AFTER_GRACE)" not in lib:
        fail("crates/worker/src/lib.rs: the shutdown deadline (POLL_READ_TIMEOUT + REPORT_AFTER_GRACE "
             "after the grace period) is not where this check reads it; update shutdown_bound()")
    report = int(m.group(1))
    service = (src / "service" / f"{used.group(1)}.rs").read_text()
    p = re.search(r"const POLL_READ_TIMEOUT: Duration = Duration::from_secs\((\d+)\)", service)
    if not p:
        fail(f"no POLL_READ_TIMEOUT in crates/worker/src/service/{used.group(1)}.rs: update shutdown_bound()")
    poll = int(p.group(1))
    return grace_s + poll + report, f"shutdown_grace {grace_s:g} s + polls {poll} s + reports {report} s"


def default_grace():
    text = (ROOT / "crates" / "worker" / "src" / "config" / "mod.rs").read_text()
    m = re.search(r"const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs\((\d+)\)", text)
    if not m:
        fail("cannot find DEFAULT_SHUTDOWN_GRACE in crates/worker/src/config/mod.rs")
    return int(m.group(1))


def served_paths():
    text = (ROOT / "crates" / "worker" / "src" / "health.rs").read_text()
    return set(re.findall(r'\.route\(\s*"(/[^"]*)"', text))


def manifests(self_test=False):
    import copy
    import yaml  # PyYAML, installed by scripts/package-check.sh

    docs = []
    for f in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        docs += [(f.name, d) for d in yaml.safe_load_all(f.read_text()) if d]
    containerfile = (ROOT / "deploy" / "Containerfile").read_text()
    unit = (ROOT / "deploy" / "wasm-activity.service").read_text()
    if not self_test:
        print(check_manifests(docs, containerfile, unit))
        return
    check_manifests(docs, containerfile, unit)

    def doc(ds, kind):
        return next(d for _, d in ds if d["kind"] == kind)

    def container(ds):
        return doc(ds, "Deployment")["spec"]["template"]["spec"]["containers"][0]

    def toml_edit(ds, old, new):
        cm = doc(ds, "ConfigMap")["data"]
        assert old in cm["worker.toml"], old
        cm["worker.toml"] = cm["worker.toml"].replace(old, new)

    mutations = {
        "readiness on /healthz": lambda ds: container(ds)["readinessProbe"]["httpGet"].update(path="/healthz"),
        "liveness on /metrics": lambda ds: container(ds)["livenessProbe"]["httpGet"].update(path="/metrics"),
        "probes on another port": lambda ds: container(ds)["readinessProbe"]["httpGet"].update(port=8080),
        "metrics_addr on another port": lambda ds: toml_edit(ds, ":9464", ":9465"),
        "metrics_addr on loopback": lambda ds: toml_edit(ds, "0.0.0.0:", "127.0.0.1:"),
        "a grace period of 60 + shutdown_grace": lambda ds: doc(ds, "Deployment")["spec"]["template"]["spec"].update(
            terminationGracePeriodSeconds=90),
        "a longer shutdown_grace": lambda ds: toml_edit(ds, 'shutdown_grace = "30s"', 'shutdown_grace = "1m"'),
        "the cache elsewhere": lambda ds: toml_edit(ds, 'cache_dir = "/var/cache/wasm-activity"', 'cache_dir = "/tmp/c"'),
        "root": lambda ds: container(ds)["securityContext"].update(readOnlyRootFilesystem=False),
    }
    for name, mutate in mutations.items():
        ds = copy.deepcopy(docs)
        mutate(ds)
        try:
            check_manifests(ds, containerfile, unit)
        except CheckFailed:
            continue
        fail(f"self-test: the manifest check passed with {name}")
    for name, text in (("TimeoutStopSec=90", unit.replace("TimeoutStopSec=150", "TimeoutStopSec=90")),
                       ("MemoryDenyWriteExecute=yes", unit.replace("MemoryDenyWriteExecute=no", "MemoryDenyWriteExecute=yes"))):
        assert text != unit, name
        try:
            check_manifests(docs, containerfile, text)
        except CheckFailed:
            continue
        fail(f"self-test: the unit check passed with {name}")
    print(f"ok: the manifest and unit checks fail on each of {len(mutations) + 2} drifts")


def check_manifests(docs, containerfile, unit):
    kinds = {d["kind"]: (n, d) for n, d in docs}
    for kind in ("ConfigMap", "Deployment", "ServiceAccount"):
        if kind not in kinds:
            fail(f"deploy/kubernetes: no {kind}")
    _, cm = kinds["ConfigMap"]
    _, dep = kinds["Deployment"]
    config = tomllib.loads(cm["data"]["worker.toml"])
    spec = dep["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    paths = served_paths()
    if not {"/healthz", "/readyz"} <= paths:
        fail(f"crates/worker/src/health.rs serves {sorted(paths)}: expected /healthz and /readyz")

    host, _, port = config["metrics_addr"].rpartition(":")
    if host not in ("0.0.0.0", "[::]"):
        fail(f"worker.toml metrics_addr = {config['metrics_addr']!r}: the kubelet probes the pod's IP; "
             f"bind 0.0.0.0")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container.get(probe, {}).get("httpGet")
        if not get:
            fail(f"deployment: {probe} is not an httpGet probe")
        if get["path"] != path:
            fail(f"deployment: {probe} asks {get['path']}, expected {path}")
        p = ports.get(get["port"], get["port"])
        if p != int(port):
            fail(f"deployment: {probe} port {get['port']} is {p}, metrics_addr listens on {port}")
    if int(port) not in ports.values():
        fail(f"deployment: no containerPort {port} (metrics_addr)")

    grace = duration_s(config.get("shutdown_grace", f"{default_grace()}s"))
    need, why = shutdown_bound(grace)
    tgp = spec.get("terminationGracePeriodSeconds", 30)
    if tgp < need:
        fail(f"deployment: terminationGracePeriodSeconds {tgp} < {need:g} ({why})")

    psc, csc = spec.get("securityContext", {}), container.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        fail("deployment: runAsNonRoot is not set")
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    if not isinstance(uid, int) or uid == 0:
        fail(f"deployment: runAsUser {uid!r}: expected a numeric non-root user")
    if not csc.get("readOnlyRootFilesystem") or csc.get("allowPrivilegeEscalation") is not False:
        fail("deployment: expected readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []):
        fail("deployment: capabilities must drop ALL")

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    cache = mounts.get(config.get("cache_dir"))
    if not cache or "emptyDir" not in volumes[cache["name"]] or cache.get("readOnly"):
        fail(f"deployment: cache_dir {config.get('cache_dir')!r} is not a writable emptyDir mount")
    args = container["args"]
    config_file = Path(args[args.index("--config") + 1])
    cfg_mount = mounts.get(str(config_file.parent))
    if not cfg_mount or volumes[cfg_mount["name"]].get("configMap", {}).get("name") != cm["metadata"]["name"]:
        fail(f"deployment: --config {config_file} is not in the mounted ConfigMap {cm['metadata']['name']}")
    for name, act in config.get("activity", {}).items():
        if "://" in act["component"]:
            continue  # oci://, s3://, https://: fetched, kept in cache_dir/components
        comp = Path(act["component"])
        if not any(Path(mp) in comp.parents for mp in mounts):
            fail(f"worker.toml activity.{name}.component {comp} is on no mounted volume")

    # The container image's user is the one the Deployment runs as.
    final = containerfile.split("\nFROM ")[-1]
    if not final.startswith("scratch"):
        fail("deploy/Containerfile: the final stage is not FROM scratch")
    m = re.search(r"^USER (\d+):(\d+)$", final, re.M)
    if not m or int(m.group(1)) != uid:
        fail(f"deploy/Containerfile: USER is not the Deployment's runAsUser {uid}")

    # The systemd unit gives the worker as long to stop, at the default shutdown_grace.
    keys = {}
    for line in unit.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    unit_need, unit_why = shutdown_bound(default_grace())
    if duration_s(keys["TimeoutStopSec"][-1] + ("" if keys["TimeoutStopSec"][-1][-1].isalpha() else "s")) < unit_need:
        fail(f"wasm-activity.service: TimeoutStopSec {keys['TimeoutStopSec'][-1]} < {unit_need:g} ({unit_why})")
    required = {
        "KillSignal": "SIGTERM", "MemoryDenyWriteExecute": "no", "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "SystemCallFilter": "@system-service",
        "Restart": "on-failure", "Environment": "XDG_CACHE_HOME=%C", "CacheDirectory": "wasm-activity",
    }
    for k, v in required.items():
        if v not in keys.get(k, []):
            fail(f"wasm-activity.service: expected {k}={v}")
    if "ExecReload" in keys:
        fail("wasm-activity.service: ExecReload: the worker has no reload signal (it watches its files)")
    return (f"ok: probes /healthz and /readyz on port {port}, terminationGracePeriodSeconds {tgp} >= "
            f"{need:g} ({why}), cache on an emptyDir, non-root {uid}; unit TimeoutStopSec "
            f"{keys['TimeoutStopSec'][-1]} >= {unit_need:g}")


# ---------------------------------------------------------------------------------------------
# The static binary in an empty root
# ---------------------------------------------------------------------------------------------

NAME = "states.package-check.test"  # resolved only by the DNS responder below
UID = 65532


class Dns(threading.Thread):
    """A DNS responder on 127.0.0.1:53 (glibc's default server when there is no resolv.conf):
    NAME is 127.0.0.1, any other name does not exist."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(("127.0.0.1", 53))
        except OSError as e:
            fail(f"cannot listen on 127.0.0.1:53 for the DNS responder ({e}); what holds it? (ss -lunp)")
        self.asked = []

    def run(self):
        while True:
            try:
                q, peer = self.sock.recvfrom(512)
            except OSError:
                return
            labels, i = [], 12
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += 1 + q[i]
            qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
            name = ".".join(labels)
            self.asked.append((name, qtype))
            question = q[12:i + 5]
            answer, count, rcode = b"", 0, 0
            if name.lower() != NAME:
                rcode = 3
            elif qtype == 1:
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
                count = 1
            header = q[:2] + struct.pack(">HHHHH", 0x8180 | rcode, 1, count, 0, 0)
            self.sock.sendto(header + question + answer, peer)


class TlsProxy(threading.Thread):
    """TLS on 127.0.0.1 with a certificate for NAME, forwarding to serve-local's plain HTTP."""

    def __init__(self, cert, key, backend):
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.backend = backend
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes = {"ok": 0, "failed": 0}

    def run(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes["failed"] += 1
            conn.close()
            return
        self.handshakes["ok"] += 1
        back = socket.create_connection(("127.0.0.1", self.backend))

        def pipe(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pipe, args=(back, tls), daemon=True).start()
        pipe(tls, back)


class TlsFiles(threading.Thread):
    """HTTPS on 127.0.0.1 with the certificate for NAME, serving one file at /handler.wasm."""

    def __init__(self, cert, key, body):
        super().__init__(daemon=True)
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/handler.wasm":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/wasm")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]

    def run(self):
        self.server.serve_forever()


def sfn(port, op, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(), method="POST",
        headers={"X-Amz-Target": f"AWSStepFunctions.{op}", "Content-Type": "application/x-amz-json-1.0"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def wait_for(what, deadline_s, probe):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        result = probe()
        if result:
            return result
        time.sleep(0.1)
    fail(f"{what}: not within {deadline_s} s")


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def make_certs(d):
    ca_key, ca, key, csr, cert, ext = (d / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt", "ext"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=package-check test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={NAME}")
    ext.write_text(f"subjectAltName=DNS:{NAME}\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", ext)
    return ca, cert, key


def chroot_test(binary, work):
    binary, work = Path(binary), Path(work)
    component = ROOT / "examples" / "rust" / "target" / "wasm32-wasip2" / "release" / "order_pricing.wasm"
    system_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    for f in (binary, component, system_bundle):
        if not f.is_file():
            fail(f"{f} is missing")
    procs, sockets = [], []
    try:
        # serve-local (the same static binary, outside the root) behind TLS for NAME.
        ca, cert, key = make_certs(work)
        local = subprocess.Popen([binary, "serve-local", "--port", "0", "--poll-timeout", "2s"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(local)
        line = wait_for("serve-local's address", 20, lambda: local.stdout.readline())
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            fail(f"serve-local printed {line!r}, not its address")
        local_port = int(m.group(1))
        proxy = TlsProxy(cert, key, local_port)
        proxy.start()
        dns = Dns()
        dns.start()
        sockets += [proxy.listener, dns.sock]
        files = TlsFiles(cert, key, component.read_bytes())
        files.start()
        sockets.append(files.server.socket)
        arn = sfn(local_port, "CreateActivity", {"name": "price-order"})["activityArn"]
        machine = sfn(local_port, "CreateStateMachine", {
            "name": "price", "roleArn": "arn:aws:iam::000000000000:role/package-check",
            "definition": json.dumps({"StartAt": "Price", "States": {
                "Price": {"Type": "Task", "Resource": arn, "TimeoutSeconds": 60, "End": True}}}),
        })["stateMachineArn"]

        # The root: the binary, the CA bundle, and the test's config, component and cache directory.
        root = work / "root"
        (root / "etc/ssl/certs").mkdir(parents=True)
        (root / "cache").mkdir()
        os.chown(root / "cache", UID, UID)
        os.chmod(root / "cache", 0o700)
        (root / "wasm-activity").write_bytes(binary.read_bytes())
        os.chmod(root / "wasm-activity", 0o755)
        (root / "handler.wasm").write_bytes(component.read_bytes())
        metrics_port = socket.create_server(("127.0.0.1", 0))
        mport = metrics_port.getsockname()[1]
        metrics_port.close()
        (root / "worker.toml").write_text(
            f'region = "us-east-1"\nendpoint = "https://{NAME}:{proxy.port}"\ncache_dir = "/cache"\n'
            f'metrics_addr = "127.0.0.1:{mport}"\nshutdown_grace = "5s"\n'
            f'[activity.price-order]\narn = "{arn}"\ncomponent = "/handler.wasm"\n')
        # The same component from an https:// reference (fetched with the other TLS client, reqwest's).
        digest = hashlib.sha256(component.read_bytes()).hexdigest()
        (root / "https.toml").write_text(
            f'region = "us-east-1"\ncache_dir = "/cache"\n[activity.price-order]\narn = "{arn}"\n'
            f'component = "https://{NAME}:{files.port}/handler.wasm"\nsha256 = "sha256:{digest}"\n')
        bundle = root / "etc/ssl/certs/ca-certificates.crt"
        bundle.write_bytes(system_bundle.read_bytes())
        found = sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))
        expected_root = ["cache/", "etc/", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt",
                         "handler.wasm", "https.toml", "wasm-activity", "worker.toml"]
        if found != expected_root:
            fail(f"the root holds {found}, expected {expected_root}")
        env = {"AWS_ACCESS_KEY_ID": "package-check", "AWS_SECRET_ACCESS_KEY": "package-check"}
        # Nothing else in the environment: no PATH, no HOME.
        in_root = [shutil.which("chroot"), f"--userspec={UID}:{UID}", str(root), "/wasm-activity"]

        def run_in_root(*args):
            return subprocess.run([*in_root, *args], env=env, capture_output=True, text=True, timeout=120)

        v = run_in_root("--version")
        if v.returncode != 0 or "wasm-activity" not in v.stdout:
            fail(f"--version in the root: exit {v.returncode}\n{v.stdout}{v.stderr}")
        print(f"  in the root: {v.stdout.strip()}")

        # Without the test CA in the bundle, the endpoint's certificate is refused: the binary reads
        # this file for its trust roots, not some built-in list.
        c = run_in_root("check", "--aws", "--config", "/worker.toml")
        if ("exists" in c.stdout or "certificate" not in c.stdout + c.stderr
                or proxy.handshakes["failed"] == 0 or proxy.handshakes["ok"] != 0):
            fail(f"check --aws trusted a certificate its CA bundle does not hold (handshakes "
                 f"{proxy.handshakes}):\n{c.stdout}{c.stderr}")
        print(f"  untrusted endpoint refused: {proxy.handshakes['failed']} failed TLS handshakes")
        c = run_in_root("check", "--config", "/https.toml")
        if c.returncode == 0 or "certificate" not in c.stdout + c.stderr:
            fail(f"check fetched an https:// component from a server its CA bundle does not trust:\n{c.stdout}{c.stderr}")
        print("  untrusted https:// component source refused")
        bundle.write_bytes(system_bundle.read_bytes() + b"\n" + ca.read_bytes())
        c = run_in_root("check", "--aws", "--config", "/worker.toml")
        if c.returncode != 0 or f"ok, {arn} exists" not in c.stdout:
            fail(f"check --aws in the root: exit {c.returncode}\n{c.stdout}{c.stderr}")
        print(f"  check --aws over TLS: {arn} exists")
        c = run_in_root("check", "--config", "/https.toml")
        if c.returncode != 0 or f"sha256:{digest} (downloaded)" not in c.stdout:
            fail(f"check of an https:// component in the root: exit {c.returncode}\n{c.stdout}{c.stderr}")
        print(f"  https:// component fetched over TLS and verified: sha256 {digest[:12]}...")
        if (NAME, 1) not in dns.asked:
            fail(f"the binary did not ask the DNS responder for {NAME} (asked: {dns.asked})")
        if not list((root / "cache").iterdir()):
            fail("check wrote nothing to the cache directory")

        # run: poll, execute every example order, report, drain on SIGTERM.
        log = open(work / "worker.log", "w")
        worker = subprocess.Popen([*in_root, "run", "--config", "/worker.toml"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        procs.append(worker)

        def ready():
            if worker.poll() is not None:
                fail(f"the worker exited with {worker.returncode}:\n{(work / 'worker.log').read_text()}")
            return http_get(f"http://127.0.0.1:{mport}/readyz")[0] == 200

        wait_for("/readyz answering 200", 30, ready)
        status = Path(f"/proc/{worker.pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
        # chroot execs the binary in place: the process is the worker, as the non-root user.
        if uids != str(UID):
            fail(f"the worker runs as uid {uids}, not {UID}")
        inputs = sorted((ROOT / "examples" / "orders" / "inputs").glob("*.json"))
        runs = {f.stem: sfn(local_port, "StartExecution", {"stateMachineArn": machine, "name": f.stem,
                                                            "input": f.read_text()})["executionArn"]
                for f in inputs}

        def finished():
            out = {k: sfn(local_port, "DescribeExecution", {"executionArn": a}) for k, a in runs.items()}
            return out if all(d["status"] != "RUNNING" for d in out.values()) else None

        results = wait_for("every execution finishing", 60, finished)
        for name, d in sorted(results.items()):
            expected = json.loads((ROOT / "examples" / "orders" / "expected" / f"{name}.json").read_text())
            if d["status"] == "SUCCEEDED":
                got = json.loads(d["output"])
            else:
                history = sfn(local_port, "GetExecutionHistory", {"executionArn": runs[name]})["events"]
                failed = [e["activityFailedEventDetails"] for e in history if "activityFailedEventDetails" in e]
                got = {"error": failed[-1].get("error")} if failed else {"status": d["status"]}
                if "cause" in expected:
                    got["cause"] = failed[-1].get("cause")
            if got != expected:
                fail(f"{name}: expected {expected}, got {got} ({d['status']})")
        print(f"  run: {len(results)} executions, each result as examples/orders/expected says")
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("the worker did not exit within 30 s of SIGTERM (polls are held 2 s here)")
        if code != 0:
            fail(f"the worker exited {code} after SIGTERM, not 0 (clean drain):\n{(work / 'worker.log').read_text()}")
        print("  SIGTERM: drained, exit 0")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for s in sockets:
            s.close()


def main():
    args = sys.argv[1:]
    try:
        dispatch(args)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)


def dispatch(args):
    if args[:1] == ["iam"]:
        iam(self_test="--self-test" in args)
    elif args[:1] == ["manifests"]:
        manifests(self_test="--self-test" in args)
    elif args[:1] == ["chroot"] and len(args) == 3:
        chroot_test(args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
