"""Package-level facts a user reads at run time."""

from __future__ import annotations

from importlib.metadata import version

import minifloat_store as mfs


def test_version_is_the_installed_distributions() -> None:
    # One source of truth: bumping pyproject.toml's version changes __version__ too.
    assert mfs.__version__ == version("minifloat-store")
