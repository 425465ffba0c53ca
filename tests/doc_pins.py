"""The machinery of tests/test_docs_numbers.py: a pin ties a number printed in a doc to its source.

A ``Pin`` names a doc, a regular expression over its text (whitespace
collapsed, so line breaks do not matter) with one group per number, and a
function giving the numbers in group order. A ``Table`` names a markdown
table by the start of its header and gives the expected row for each key.
``matches`` decides whether a printed number is its source's value: to half a
unit of the last digit shown unless the value says otherwise (``F32``,
``Derived``, ``Exact``, ``AtMost``, ``AtLeast``, or a ``str`` compared exactly).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
from test_docs_benchmarks import ROOT, agrees, table
from test_docs_benchmarks import load as _load

import minifloat_store as mfs


class F32(float):
    """A float32 the doc prints as the decimal whose nearest float32 it is."""


class Derived(float):
    """A value computed from other printed (rounded) numbers: agrees within ``slack`` more than the last digit."""

    slack: float = 0.0

    @classmethod
    def of(cls, value: float, slack: float) -> Derived:
        out = cls(value)
        out.slack = slack
        return out


class AtMost(float):
    """A bound the doc states ("within 0.05", "<= 0.0010"): the source's value must not exceed the printed one."""


class AtLeast(float):
    """A floor the doc states ("at least 3"): the source's value must not be below the printed one."""


class Exact(float):
    """A number the doc states exactly (a count, "contains 0"): no rounding allowed."""


Number = float | str  # a str is compared exactly (dates, names); an F32 as float32
load = cache(_load)  # read-only: every pin reads the same few files


# ------------------------------------------------------------------ where numbers come from


def json_at(bench: str, path: str) -> float:
    """``bench``'s JSON at a dotted path (list items by index): ``json_at("bench_encoding", "baseline.batch_s")``."""
    node = load(bench)
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@cache
def constant(name: str) -> Number:
    """A module-level constant of the scoring/search code, wherever the modules now keep it."""
    candidates = ["minifloat_store.scoring"] + [
        f"minifloat_store.{m.name}"
        for m in pkgutil.iter_modules(mfs.__path__)
        if any(w in m.name for w in ("scor", "search", "scan"))
    ]
    for modname in candidates:
        module = importlib.import_module(modname)
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError(f"no constant {name} in {candidates}")


def from_test_module(module: str, name: str) -> Number:
    """A constant of a test module (the docs quote how hard the tests try)."""
    return getattr(importlib.import_module(module), name)


def model(name: str):
    """A model module of the registry (``campplus``, ``redimnet``, ``wavlm``, ``resemblyzer``)."""
    return importlib.import_module(f"minifloat_store.eval.models.{name}")


def pyproject_pin(package: str) -> str:
    """The version ``pyproject.toml`` pins ``package`` to."""
    return re.search(rf'"{package}==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)


def matches(printed: str, value: Number) -> bool:
    """Whether ``printed`` (as the doc shows it) is ``value`` (as its source gives it)."""
    if isinstance(value, str):
        return printed == value
    printed = printed.replace("**", "").replace("−", "-").removeprefix("+")
    number = float(printed.replace(",", "").rstrip("x"))
    if isinstance(value, F32):
        return np.float32(number) == np.float32(value)
    if isinstance(value, Derived):
        return abs(number - value) <= value.slack + 1e-9
    if isinstance(value, Exact):
        return number == float(value)
    if isinstance(value, AtMost):
        return float(value) <= number + 1e-12
    if isinstance(value, AtLeast):
        return float(value) >= number - 1e-12
    return agrees(printed, float(value))


# ------------------------------------------------------------------ the pins


@dataclass(frozen=True)
class Pin:
    """``pattern`` found in ``doc``; group i is ``values()[i]`` as printed."""

    label: str
    doc: str
    pattern: str
    values: Callable[[], list[Number | None]]

    def triples(self) -> Iterator[tuple[str, Number, str]]:
        text = " ".join((ROOT / self.doc).read_text().split())
        m = re.search(self.pattern, text)
        assert m, f"{self.doc}: the text this pin reads is gone or changed: /{self.pattern}/"
        values = self.values()
        assert len(values) == len(m.groups()), f"{self.label}: {len(m.groups())} numbers in the doc, {len(values)}"
        for i, (printed, value) in enumerate(zip(m.groups(), values, strict=True)):
            if value is not None:  # None: a number another test checks (named where the pin is)
                yield printed, value, f"{self.label} #{i + 1}"


@dataclass(frozen=True)
class Table:
    """The markdown table whose header starts with ``header``: row ``key`` (first ``keys`` cells) is ``rows()[key]``.

    ``None`` in an expected row leaves that cell unchecked; the table's keys must be the expected keys.
    """

    label: str
    doc: str
    header: str
    rows: Callable[[], dict[str, list[Number | None]]]
    keys: int = 1

    def triples(self) -> Iterator[tuple[str, Number, str]]:
        expected = self.rows()
        got = table((ROOT / self.doc).read_text(), self.header)
        assert sorted(" ".join(c[: self.keys]) for c in got) == sorted(expected), f"{self.label}: rows differ"
        for cells in got:
            key = " ".join(cells[: self.keys])
            values = expected[key]
            assert len(cells) - self.keys == len(values), f"{self.label} {key}: column count"
            for cell, value in zip(cells[self.keys :], values, strict=True):
                if value is not None:
                    yield cell, value, f"{self.label} {key}"
