#!/usr/bin/env python3
"""Checks the module layering that src/lib.rs states:

1. a top-level module of the quiesce crate uses only modules listed below it in LAYERS;
2. no two sibling files use each other, in quiesce (src/) or fake-kube (fake-kube/src/) —
   a private child may still use its parent (`super::…` from `foo/bar.rs` into `foo.rs` or
   `foo/mod.rs` is not a sibling edge).

Reads `crate::x` and `super::x` paths, comments skipped. Test code (`#[cfg(test)]` modules,
which close their file by convention, and `tests.rs` files) is exempt: a test of `exec`
renders its log lines through `velero::log`, as Velero would see them. Method calls on a type
defined in another file are not seen. Exits 1 naming each violation; run by `make lint`.
"""
import pathlib
import re
import sys

# Top to bottom, as in src/lib.rs.
LAYERS = ["velero", "explain", "engine", "kube_api", "exec", "hooks",
          "goplugin", "install", "args", "proto"]
RANK = {name: len(LAYERS) - i for i, name in enumerate(LAYERS)}

repo = pathlib.Path(__file__).resolve().parent.parent
problems = []


def code_lines(path):
    """(line number, code) of the non-test code of a file, comments removed."""
    in_tests = path.name == "tests.rs"
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"\s*#\[cfg\(test\)\]", line):
            in_tests = True
        if in_tests:
            return
        code = line.split("//", 1)[0] if "//" in line and "://" not in line else line
        if code.strip():
            yield number, code


def module_file(folder, name):
    """The file of module `name` in `folder`, if there is one."""
    for candidate in (folder / f"{name}.rs", folder / name / "mod.rs"):
        if candidate.exists():
            return candidate
    return None


def siblings_folder(path, root):
    """The folder whose files `super::x` in `path` names (None for a mod.rs or a top file)."""
    if path.name == "mod.rs" or path.parent == root:
        return None
    return path.parent


edges = {}
for root, layered in ((repo / "src", True), (repo / "fake-kube" / "src", False)):
    for path in sorted(root.rglob("*.rs")):
        if path.name in ("lib.rs", "main.rs"):
            continue
        top = path.relative_to(root).parts[0].removesuffix(".rs")
        for number, code in code_lines(path):
            for used in re.findall(r"\bcrate::([a-z_]+)", code):
                if layered:
                    if used in RANK and top in RANK and RANK[used] > RANK[top]:
                        problems.append(f"{path.relative_to(repo)}:{number}: `{top}` uses "
                                        f"`{used}`, which is above it")
                elif path.parent == root:
                    # fake-kube's files are siblings under its crate root.
                    target = module_file(root, used)
                    if target is not None and target != path:
                        edges.setdefault(path, set()).add(target)
            folder = siblings_folder(path, root)
            for used in re.findall(r"\bsuper::([a-z_]+)", code):
                target = module_file(folder, used) if folder else None
                if target is not None and target != path:
                    edges.setdefault(path, set()).add(target)

for a, targets in edges.items():
    for b in targets:
        if a in edges.get(b, set()) and str(a) < str(b):
            problems.append(f"import circle between sibling files {a.relative_to(repo)} "
                            f"and {b.relative_to(repo)}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("layers: no module uses one above it, no import circle between sibling files")
