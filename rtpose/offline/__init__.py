"""Offline analysis of whole experiments (``rtpose analyze``): inputs → jobs (:mod:`.inputs`), the per-job
run with one loaded model (:mod:`.engine`), status files and resuming (:mod:`.status`), progress
(:mod:`.progress`) and Dask distributed fan-out (:mod:`.cluster`). docs/offline.md describes them."""
