"""Fidelity metrics: moved to :mod:`minifloat_store.fidelity`, re-exported here.

They are pure numpy and now live below the codec so that :func:`minifloat_store.recommend`
(in the core, which must not import the evaluation layer) can count flips and score error.
"""

from minifloat_store.fidelity import (
    bootstrap_eers,
    cosine_scores,
    decision_flips,
    paired_bootstrap_delta_eer,
    rms_score_error,
)

__all__ = ["bootstrap_eers", "cosine_scores", "decision_flips", "paired_bootstrap_delta_eer", "rms_score_error"]
