"""The evaluation layer, in four rooms plus the library modules, each importing only those below it.

* :mod:`.pipelines`: end-to-end runs (extract, demo, real_voices, reproduce);
* :mod:`.report`: the storage-vs-accuracy report (results, compute, writers, plots, the study's numbers);
* :mod:`.data`: data sources (synthetic corpora, Debian voices, audio files);
* :mod:`.models`: speaker models and their registry;
* :mod:`.trials`: the library (trial lists); :mod:`.baselines`: FAISS quantisers to compare with;
  :mod:`.metrics` and :mod:`.fidelity` re-export :mod:`minifloat_store.metrics` and
  :mod:`minifloat_store.fidelity`, which live in the core.

Heavy dependencies (matplotlib, torch) are imported only by the modules that
need them, never at package import time.
"""
