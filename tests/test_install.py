"""What each install imports: the core dependencies are enough for the package, and the ``eval`` extra
for the ``minifloat-store`` command (the README's first command installs just that).

A subprocess imports the modules with ``builtins.__import__`` guarded: a ``minifloat_store`` module
importing, at import time, a top-level package that is neither in the standard library nor one that
install declares fails, as it would in a fresh virtualenv. (CI installs every extra, which hides such
a gap: a store module once imported fsspec, which only the ``scale`` extra brought.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

GUARD = """
import builtins, sys
allowed = set(sys.stdlib_module_names) | set({allowed!r}) | {{"minifloat_store"}}
real = builtins.__import__

def guarded(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {{}}).get("__name__") or ""
    top = name.partition(".")[0]
    if level == 0 and importer.startswith("minifloat_store") and top not in allowed:
        raise ModuleNotFoundError(f"{{importer}} imports {{top}}, which this install does not declare", name=top)
    return real(name, globals, locals, fromlist, level)

builtins.__import__ = guarded
for module in {modules!r}:
    __import__(module)
print("imported")
"""


def _import_names(requirements: list[str]) -> set[str]:
    """Top-level import names of requirement strings ("ml_dtypes>=0.5" -> "ml_dtypes")."""
    names = set()
    for req in requirements:
        dist = re.match(r"[A-Za-z0-9_.-]+", req).group(0)
        if dist != "minifloat-store":
            names.add(dist.lower().replace("-", "_"))
    return names


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _imports_with(allowed: set[str], modules: list[str]) -> subprocess.CompletedProcess:
    code = GUARD.format(allowed=sorted(allowed), modules=modules)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("extras", "modules"),
    [
        ((), ["minifloat_store", "minifloat_store.store", "minifloat_store.scoring", "minifloat_store.zarr_codec"]),
        (("eval",), ["minifloat_store.cli"]),
    ],
)
def test_an_install_imports_what_it_declares_and_nothing_more(extras, modules):
    project = _project()
    allowed = _import_names(project["dependencies"])
    for extra in extras:
        allowed |= _import_names(project["optional-dependencies"][extra])
    done = _imports_with(allowed, modules)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-2000:]


def test_the_guard_catches_a_package_the_install_does_not_declare():
    """Without fsspec among the allowed names, importing the store fails: the check can fail."""
    allowed = _import_names(_project()["dependencies"]) - {"fsspec"}
    done = _imports_with(allowed, ["minifloat_store.store"])
    assert done.returncode != 0 and "imports fsspec, which this install does not declare" in done.stderr
