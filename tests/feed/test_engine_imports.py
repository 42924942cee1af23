"""homefeed.feed (every module): importing the engine pulls in no API, UI or plotting stack.

Each engine module is imported in a fresh interpreter, one at a time, and whatever a
module brings into `sys.modules` is charged to it; an engine module that pulls in
strawberry, graphql, starlette, uvicorn, rich, matplotlib or another homefeed package
(cli, app, schema, resolvers, loaders, workers, seed, bench, migrations) is named with
what it pulled in. The import-linter contract checks the static imports; this checks
what really happens at run time (lazy imports, plugins, imports inside functions run at
import time).
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

import homefeed.feed

FORBIDDEN = (
    "strawberry",
    "graphql",
    "starlette",
    "uvicorn",
    "rich",
    "matplotlib",
    "homefeed.cli",
    "homefeed.app",
    "homefeed.schema",
    "homefeed.resolvers",
    "homefeed.loaders",
    "homefeed.workers",
    "homefeed.seed",
    "homefeed.bench",
    "homefeed.migrations",
)

# Runs in the fresh interpreter: imports each module in turn and reports what each one added.
PROBE = """
import builtins, importlib, json, sys, traceback

# Who imported what: the module whose code ran the import statement that first loaded it.
importer_of = {}
real_import = builtins.__import__

def spying_import(name, globals=None, locals=None, fromlist=(), level=0):
    before = set(sys.modules)
    try:
        return real_import(name, globals, locals, fromlist, level)
    finally:
        by = (globals or {}).get("__name__", "?")
        for new in set(sys.modules) - before:
            importer_of.setdefault(new, by)

builtins.__import__ = spying_import
report = []
for name in json.loads(sys.argv[1]):
    before = set(sys.modules)
    try:
        importlib.import_module(name)
        error = None
    except BaseException:
        error = traceback.format_exc()
    added = sorted(set(sys.modules) - before)
    report.append({
        "module": name,
        "added": added,
        "importers": {a: importer_of.get(a, name) for a in added},
        "error": error,
    })
print(json.dumps(report))
"""

ROOT = Path(homefeed.feed.__file__).resolve().parents[2]


class Imported(TypedDict):
    module: str
    added: list[str]
    importers: dict[str, str]  # module added -> the module whose import statement loaded it
    error: str | None


def engine_modules() -> list[str]:
    """homefeed.feed and every module and package under it."""
    found = [m.name for m in pkgutil.walk_packages(homefeed.feed.__path__, prefix="homefeed.feed.")]
    return ["homefeed.feed", *sorted(found)]


def is_forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def probe(modules: list[str], also: Path | None = None) -> list[Imported]:
    """Import `modules` one at a time in a fresh interpreter; what each added to sys.modules.

    `also` is one more directory to import from (the self-checks' stand-in modules).
    """
    env = dict(os.environ)
    if also is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(also), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: list[Imported] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def offenders(modules: list[str], also: Path | None = None) -> list[str]:
    """One line per module that failed to import or pulled in something forbidden."""
    lines = []
    for entry in probe(modules, also):
        if entry["error"]:
            lines.append(f"{entry['module']} failed to import:\n{entry['error']}")
        bad = sorted({a for a in entry["added"] if is_forbidden(a)})
        if bad:
            how = "; ".join(f"{b} imported by {entry['importers'].get(b, '?')}" for b in bad)
            lines.append(f"{entry['module']} pulled in {', '.join(bad)} ({how})")
    return lines


def test_the_walk_finds_the_whole_engine() -> None:
    modules = engine_modules()
    # A walk that found nothing would make the real test pass vacuously.
    for known in (
        "homefeed.feed.auth",
        "homefeed.feed.errors",
        "homefeed.feed.services",
        "homefeed.feed.store.outbox",
        "homefeed.feed.store.posts",
        "homefeed.feed.store.users",
        "homefeed.feed.timeline",
    ):
        assert known in modules
    assert len(modules) == len(set(modules))


def test_engine_modules_import_nothing_forbidden() -> None:
    problems = offenders(engine_modules())
    assert not problems, "\n".join(problems)


def test_forbidden_names() -> None:
    for name in FORBIDDEN:
        assert is_forbidden(name) and is_forbidden(name + ".sub")
    for name in ("homefeed", "homefeed.feed", "homefeed.feed.auth", "graphqlx", "richer", "homefeed.cli_x"):
        assert not is_forbidden(name), name


def test_the_check_catches_a_module_that_pulls_in_forbidden_things(tmp_path: Path) -> None:
    # Stand-ins for engine modules (the real packages may be mid-refactor): one clean, one that
    # pulls GraphQL in through a helper of its own. The probe must charge only the second.
    (tmp_path / "clean_part.py").write_text("import homefeed.feed.errors\n")
    (tmp_path / "helper_part.py").write_text("import graphql\n")
    (tmp_path / "leaky_part.py").write_text("import helper_part\n")
    problems = offenders(["clean_part", "leaky_part"], also=tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith("leaky_part pulled in graphql")
    assert "graphql imported by helper_part" in problems[0]  # the module that did it, not just the top


def test_the_check_reports_a_module_that_fails_to_import() -> None:
    problems = offenders(["homefeed.feed.no_such_module"])
    assert len(problems) == 1 and "failed to import" in problems[0] and "ModuleNotFoundError" in problems[0]


def test_modules_are_charged_only_for_what_they_add() -> None:
    # Importing the same module twice: the second import adds nothing, so nothing is charged twice.
    first, second = probe(["homefeed.feed.errors", "homefeed.feed.errors"])
    assert "homefeed.feed.errors" in first["added"]
    assert second["added"] == []
