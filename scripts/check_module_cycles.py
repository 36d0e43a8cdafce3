#!/usr/bin/env python3
"""Fails when the modules (files) of a crate depend on each other in a cycle.

For every `crates/*/src/**/*.rs`, the paths it names (`crate::a::b`, `super::x`) are resolved to
the module file they live in; a module's own submodules and its test module do not count. A cycle
of such references means two files that cannot be understood one without the other.

    python3 scripts/check_module_cycles.py        (exit 1 and the cycles, or exit 0)
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_path(src: Path, f: Path) -> tuple:
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_tests(text: str) -> str:
    # The test module may use anything of the crate; it is not part of the module's dependencies.
    m = re.search(r"\n#\[cfg\(test\)\]\s*\nmod tests\s*\{", text)
    text = text[: m.start()] if m else text
    text = re.sub(r"//[^\n]*", "", text)  # comments (and doc links) are not dependencies
    return text


def references(text: str, me: tuple) -> set:
    refs = set()
    for m in re.finditer(r"\bcrate((?:::\w+)+)", text):
        refs.add(tuple(m.group(1).strip(":").split("::")))
    for m in re.finditer(r"\bsuper((?:::\w+)+)", text):
        refs.add(me[:-1] + tuple(m.group(1).strip(":").split("::")))
    # `use crate::a::{b, c::d}` groups
    for m in re.finditer(r"\buse\s+crate::((?:\w+::)*)\{([^}]*)\}", text):
        prefix = tuple(p for p in m.group(1).split("::") if p)
        for item in m.group(2).split(","):
            item = item.strip()
            if item:
                refs.add(prefix + tuple(item.split(" as ")[0].split("::")))
    return refs


def main() -> int:
    cycles = []
    for src in sorted(ROOT.glob("crates/*/src")):
        files = {module_path(src, f): f for f in src.rglob("*.rs")}
        edges = {}
        for me, f in files.items():
            deps = set()
            for ref in references(strip_tests(f.read_text()), me):
                # the longest prefix that is a module file
                for n in range(len(ref), 0, -1):
                    target = ref[:n]
                    if target in files:
                        break
                else:
                    target = ()
                # own submodules and the crate root (re-exports) are not dependencies
                if target and target != me and target[: len(me)] != me:
                    deps.add(target)
            edges[me] = deps
        # cycles by depth-first search
        state = {}

        def visit(node, stack):
            state[node] = 1
            stack.append(node)
            for d in sorted(edges.get(node, ())):
                if state.get(d) == 1:
                    cycles.append((src.parent.name, stack[stack.index(d):] + [d]))
                elif d not in state:
                    visit(d, stack)
            stack.pop()
            state[node] = 2

        for node in sorted(edges):
            if node not in state:
                visit(node, [])
    for crate, cycle in cycles:
        print(f"{crate}: " + " -> ".join("::".join(p) or "crate" for p in cycle))
    if cycles:
        print(f"{len(cycles)} module cycle(s)", file=sys.stderr)
        return 1
    print("no module cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
