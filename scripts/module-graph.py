#!/usr/bin/env python3
"""Prints a crate's module dependency graph (from `crate::` paths, outside
comments and test modules) and fails if modules import each other in a loop.

    scripts/module-graph.py crates/worker/src [crates/endpoint/src ...]

Data flows one way (poll -> run -> report); a loop means a layer reaches
back up, so scripts/test.sh runs this over every crate.
"""
import collections
import os
import re
import sys


def graph_of(root):
    graph = collections.defaultdict(set)
    tops = {f[:-3] for f in os.listdir(root) if f.endswith(".rs")} | {
        d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
    }
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            me = parts[0]
            text = open(path, encoding="utf-8").read()
            cut = re.search(r"#\[cfg\(test\)\]\s*(pub(\(crate\))? )?mod tests", text)
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
sys.exit(1 if failed else 0)
