#!/usr/bin/env python3
"""Prints a crate's module dependency graph (from `crate::` paths, outside
comments and test modules) and fails if modules import each other in a loop
or, for a crate with a declared layer order (LAYERS), if a module imports
one from a higher layer or a module has no layer.

    scripts/module-graph.py crates/worker/src [crates/endpoint/src ...]

Data flows one way (poll -> run -> report); a loop or an upward import means
a layer reaches back up, so scripts/test.sh runs this over every crate.
"""
import collections
import os
import re
import sys

# Bottom to top: a module may import from its own layer (no loops) and the
# layers below it, never from one above. A new module must be placed here.
LAYERS = {
    "worker": [
        # facts and tools that know nothing of the worker
        ["names", "aws", "redact", "backoff", "shutdown", "slots", "testing"],
        # what the worker shows of itself: written from below (guest lines)
        # and above (tasks, reloads), read by health's server; telemetry
        ["metrics", "journal", "telemetry", "otlp_metrics"],
        # the validated config (AwsClient included), read by everything above
        ["config"],
        ["tenant"],
        # wasmtime, then the services: neither knows the other
        ["runtime"],
        ["service"],
        ["health", "registry", "startup", "artifacts", "probe"],
        # one task's outcome -> report -> delivery; its heartbeat
        ["report"],
        ["record", "delivery", "heartbeat", "local"],
        ["task"],
        ["poller"],
        # what is served, and the commands around it (lib.rs is the top)
        ["sources", "reload", "check"],
    ],
    "artifacts": [
        ["reference", "credentials", "error", "store"],
        ["oci", "s3"],
        ["fetch"],
    ],
}


def crate_name(root):
    parts = os.path.normpath(root).split(os.sep)
    return parts[-2] if parts[-1] == "src" and len(parts) > 1 else parts[-1]


def upward(graph, modules, layers):
    """Edges to a higher layer, and modules in no layer."""
    rank = {m: i for i, layer in enumerate(layers) for m in layer}
    bad = [f"NO LAYER: {m} (add it to LAYERS in {sys.argv[0]})" for m in sorted(modules - set(rank))]
    for a in sorted(graph):
        for b in sorted(graph[a]):
            if a in rank and b in rank and rank[b] > rank[a]:
                bad.append(f"UPWARD: {a} (layer {rank[a]}) -> {b} (layer {rank[b]})")
    return bad


def modules_of(root):
    return {f[:-3] for f in os.listdir(root) if f.endswith(".rs")} | {
        d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
    }


def graph_of(root):
    graph = collections.defaultdict(set)
    tops = modules_of(root)
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            me = parts[0]
            text = open(path, encoding="utf-8").read()
            # Only an inline test module (`mod tests {`) ends the code; a
            # `mod tests;` declaration points at another file, skipped below.
            cut = re.search(r"#\[cfg\(test\)\]\s*(pub(\(crate\))? )?mod tests\s*\{", text)
            if cut:
                text = text[: cut.start()]
            if me in ("tests", "fake") or parts[-1] in ("tests", "fake"):
                continue
            for line in text.splitlines():
                if line.lstrip().startswith("//"):
                    continue
                for m in re.finditer(r"\bcrate::([a-z_][a-z_0-9]*)", line):
                    target = m.group(1)
                    if target != me and target in tops and me not in ("lib", "main"):
                        graph[me].add(target)
    return graph


def loops(graph):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


failed = False
for root in sys.argv[1:]:
    graph = graph_of(root)
    print(f"{root}:")
    for module in sorted(graph):
        print(f"  {module} -> {', '.join(sorted(graph[module]))}")
    for comp in loops(graph):
        failed = True
        print(f"  LOOP: {' <-> '.join(comp)}")
    layers = LAYERS.get(crate_name(root))
    if layers:
        modules = modules_of(root) - {"lib", "main", "tests", "fake"}
        for line in upward(graph, modules, layers):
            failed = True
            print(f"  {line}")
sys.exit(1 if failed else 0)
