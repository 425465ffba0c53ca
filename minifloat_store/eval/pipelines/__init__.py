"""End-to-end runs built from the library, the data sources and the report.

* :mod:`.extract`: audio -> speaker model -> float32 store, resumably;
* :mod:`.demo`: the synthetic demo (store, convert, report) behind ``minifloat-store demo``;
* :mod:`.reproduce`: the study's models on VoxCeleb-1, beside its published numbers.
"""
