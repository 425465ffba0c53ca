"""The shared argument checks: one rule, one message, wherever it is applied."""

from __future__ import annotations

import numpy as np
import pytest

from minifloat_store import _checks, codec


@pytest.mark.parametrize("value", [0, -3, True, np.bool_(True), 2.0, "4", None])
def test_positive_int_refuses_everything_but_integers_from_one(value: object) -> None:
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got"):
        _checks.check_positive_int(value, "batch_size")


def test_positive_int_returns_a_python_int() -> None:
    n = _checks.check_positive_int(np.int64(7), "n")
    assert n == 7 and type(n) is int


def test_scale_mode_names_the_known_modes() -> None:
    assert _checks.check_scale_mode("vector") == "vector"
    with pytest.raises(ValueError, match="unknown scale mode 'block'; expected one of none, vector"):
        _checks.check_scale_mode("block")
    with pytest.raises(ValueError, match="unknown scale mode"):
        _checks.check_scale_mode(["none"])


def test_finite_rows_names_the_first_bad_row_its_id_and_column() -> None:
    x = np.ones((5, 3), np.float32)
    x[3, 1] = np.nan
    x[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"^row 13 \(id 'd'\) contains NaN \(at column 1\); nothing was stored$"):
        _checks.check_finite_rows(x, ids=list("abcde"), row_offset=10, consequence="nothing was stored")
    _checks.check_finite_rows(np.ones((2, 2)))  # no error


def test_finite_rows_reports_a_float64_value_beyond_float32_as_such() -> None:
    x64 = np.ones((2, 2))
    x64[1, 1] = -1e300
    with np.errstate(over="ignore"):
        x32 = x64.astype(np.float32)
    with pytest.raises(ValueError, match=r"row 1 contains -1e\+300, beyond the float32 range \(at column 1\)"):
        _checks.check_finite_rows(x32, original=x64)


def test_codec_keeps_the_names_the_store_and_evaluation_import() -> None:
    assert codec.as_float32_matrix is _checks.as_float32_matrix
    assert codec.check_scale_mode is _checks.check_scale_mode
    assert codec.SCALE_MODES == ("none", "vector")
    assert codec.effective_scale(codec.get_format("fp32"), "vector") == "none"
