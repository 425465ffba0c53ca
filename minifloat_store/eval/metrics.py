"""Speaker-verification metrics: moved to :mod:`minifloat_store.metrics`, re-exported here.

They are pure numpy and now live below the codec so that :func:`minifloat_store.recommend`
(in the core, which must not import the evaluation layer) can compute an EER threshold;
``from minifloat_store.eval.metrics import eer`` keeps working.
"""

from minifloat_store.metrics import DetCurve, det_curve, eer, far_frr, far_frr_curve, min_dcf

__all__ = ["DetCurve", "det_curve", "eer", "far_frr", "far_frr_curve", "min_dcf"]
