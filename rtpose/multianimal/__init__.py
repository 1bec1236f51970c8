"""Several animals in one frame: DeepLabCut 3 multi-animal models, live.

* :mod:`.layout`: which animal slots and body parts a multi-animal model has, and how they map onto
  the flat ``(A*K + U, 3)`` pose every sink already handles (DeepLabCut's multi-animal ``.h5`` column order);
* :mod:`.params`: DeepLabCut's assembly parameters, as the exporter stores them in the model file;
* :mod:`.tracking`: identity over time (Kalman prediction per animal + optimal assignment into slots);
* :mod:`.identity`: DeepLabCut's identity head (models trained with ``identity: true``): animals put into
  identity order per frame, as DeepLabCut does (used instead of :mod:`.tracking` for such models);
* :mod:`.assignment`: minimum-cost matching (the Hungarian method, Numba, no SciPy);
* :mod:`.metrics`: identity switches against ground truth (CLEAR-MOT);
* :mod:`.simulate`: detections made from ground truth (for tests and measurements without a network);
* :mod:`.decoder`: maps -> animals, DeepLabCut 3.0.2's bottom-up decoding in Numba (:mod:`.peaks`,
  :mod:`.paf`, :mod:`.assembly` with :mod:`.lsap` and :mod:`.pyset`); :mod:`.reference` is the
  plain-Python definition it is tested against (docs/multianimal-decode.md).

Pure computation: no I/O, threads or clocks (time is an argument).
"""
