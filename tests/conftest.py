"""Shared test configuration."""

from __future__ import annotations

import os
import re

import pytest

# A skip whose reason says that something the test needs is absent. pytest.importorskip
# says "could not import ..." (or its own reason, which names the import); our other
# skips name the install command or say "not installed"/"not found". Keep new skip
# messages in that form so that this sees them.
_MISSING_DEPENDENCY = re.compile(
    r"\bimport|No module named|not installed|pip install|apt-get install|reference data not found",
    re.IGNORECASE,
)


def pytest_configure(config) -> None:
    # CI has 2 cores; torch's intra-op threads fighting numba's and each other's
    # make the model tests many times slower, for no gain on tiny inputs.
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def _strict_skips() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``CI=true``, which .ci/run sets) a skip for a missing dependency fails the run.

    CI installs everything the tests use (the ``test`` extra, Debian's voice packages, the
    shared reference data), so such a skip means an install step is missing and the tests it
    guards did not run: a green run would hide that. Locally such skips stay skips.
    """
    if not _strict_skips():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    missing = [
        f"{report.nodeid or report.fspath}: {_skip_reason(report)}"
        for report in reporter.stats.get("skipped", [])
        if _MISSING_DEPENDENCY.search(_skip_reason(report))
    ]
    if not missing:
        return
    reporter.write_line("")  # the progress line may not have ended
    reporter.write_sep("=", f"{len(missing)} skipped for a missing dependency: a failure when CI=true", red=True)
    for line in missing:
        reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
