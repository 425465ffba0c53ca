"""The evaluation layer: verification metrics, trial lists, synthetic corpora,
the storage-vs-accuracy report and the speaker models.

Heavy dependencies (matplotlib, torch) are imported only by the modules that
need them, never at package import time.
"""
