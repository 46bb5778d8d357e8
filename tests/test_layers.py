"""The package map in the README, enforced: every import (at the top of a module or inside a
function) points down the layers, never up, and packages of one layer leave each other alone."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own group and anything on a lower layer.
LAYERS = [
    {"core"},                                    # messages, config, paths, logs, lang, persona, profile, knowledge, models
    {"audio", "face", "presence", "screen", "voice"},  # devices and algorithms
    {"engines"},                                 # models behind one interface each, one factory
    {"conversation", "provisioning"},            # the turn; the USB step
    {"daemon"},                                  # systemd, control socket, doctor
    {"app"},                                     # the kiosk put together (appliance/app, demo.py)
    {"bench", "cli"},                            # the tools and the command line
]
RANK = {group: i for i, layer in enumerate(LAYERS) for group in layer}
# top-level modules of appliance/ and the group they belong to
TOP = {"messages": "core", "config": "core", "paths": "core", "logs": "core", "lang": "core", "persona": "core",
       "models": "core", "profile": "core", "knowledge": "core", "metrics": "core", "demo": "app", "cli": "cli", "__main__": "cli", "config_cli": "cli", "models_cli": "cli"}


def _modules() -> dict[str, Path]:
    mods = {}
    for base in ("appliance", "provisioning"):
        for p in (REPO / base).rglob("*.py"):
            parts = list(p.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


def _group(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "provisioning":
        return "provisioning"
    if len(parts) == 1:
        return "core"  # appliance/__init__.py
    return TOP.get(parts[1], parts[1])


def _imports(module: str, path: Path):
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or ""
                continue
            pkg = module.split(".")[: None if is_pkg else -1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            if node.module:
                yield ".".join([*pkg, node.module])
            else:
                yield from (".".join([*pkg, a.name]) for a in node.names)


def _edges():
    mods = _modules()
    for module, path in mods.items():
        for target in _imports(module, path):
            if target.split(".")[0] in ("appliance", "provisioning") and target not in ("appliance", "provisioning"):
                yield module, target


def test_every_module_has_a_layer():
    missing = {_group(m) for m in _modules()} - set(RANK)
    assert not missing, f"add these to LAYERS (and the README's package map): {sorted(missing)}"


def _violations(edges) -> list[str]:
    wrong = []
    for src, dst in edges:
        a, b = _group(src), _group(dst)
        if a != b and RANK[b] >= RANK[a]:
            wrong.append(f"{src} ({a}, layer {RANK[a]}) imports {dst} ({b}, layer {RANK[b]})")
    return wrong


def test_imports_point_down_the_layers():
    wrong = _violations(_edges())
    assert not wrong, "\n".join(wrong)


def test_the_runtime_never_imports_the_tools_or_the_tests():
    for src, dst in _edges():
        if _group(src) not in ("bench", "cli"):
            assert _group(dst) != "bench", f"{src} imports the benchmarks ({dst})"
        assert not dst.startswith(("tests", "support")), f"{src} imports test code ({dst})"


def test_the_check_catches_an_upward_import_even_inside_a_function(tmp_path):
    module = tmp_path / "example.py"
    module.write_text("from ..messages import MouthPose\n\ndef late():\n    from ..app import kiosk\n")
    edges = [("appliance.engines.example", t) for t in _imports("appliance.engines.example", module)]
    assert edges == [("appliance.engines.example", "appliance.messages"),
                     ("appliance.engines.example", "appliance.app")]
    assert _violations(edges) == ["appliance.engines.example (engines, layer 2) imports appliance.app (app, layer 5)"]
    # siblings on one layer leave each other alone
    assert _violations([("provisioning.derive", "appliance.conversation.turn")])


def _top_and_inner_edges():
    """(module-level import graph, imports made inside functions), internal modules only."""
    mods = _modules()
    top: dict[str, set[str]] = {m: set() for m in mods}
    inner: list[tuple[str, str]] = []

    def known(target: str) -> str | None:
        return target if target in mods else (target.rsplit(".", 1)[0] if target.rsplit(".", 1)[0] in mods else None)

    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            single = ast.Module(body=[node], type_ignores=[])
            for target in _imports_of(module, path, single):
                t = known(target)
                if t is None:
                    continue
                if id(node) in top_level:
                    top[module].add(t)
                else:
                    inner.append((module, t))
    return top, inner


def _imports_of(module: str, path: Path, tree: ast.Module):
    tmp_path = path.with_name(path.name)  # the same folder decides what a relative import means
    is_pkg = tmp_path.name == "__init__.py"
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif node.level == 0:
            yield node.module or ""
        else:
            pkg = module.split(".")[: None if is_pkg else -1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            yield from ([".".join([*pkg, node.module])] if node.module else
                        (".".join([*pkg, a.name]) for a in node.names))


def test_no_import_inside_a_function_just_dodges_a_cycle():
    """A late import is fine for a heavy library; one that would close an import cycle at the top of
    the module hides a tangle instead of undoing it."""
    top, inner = _top_and_inner_edges()

    def reaches(a: str, b: str) -> bool:
        seen, stack = set(), [a]
        while stack:
            x = stack.pop()
            if x == b:
                return True
            if x not in seen:
                seen.add(x)
                stack.extend(top.get(x, ()))
        return False

    dodges = sorted({(a, b) for a, b in inner if reaches(b, a)})
    assert not dodges, dodges
    assert len(inner) > 10  # the check did look at the late imports
