"""The model bundled with rtpose: where it is, and a clear error when it is not there.

``openfield-mnv2.onnx`` is a DeepLabCut-style MobileNetV2-0.35 network trained on
the openfield mouse labels (snout, leftear, rightear, tailbase); see
docs/model-card.md for how it was trained and how well it does.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError

__all__ = ["DEFAULT_MODEL_NAME", "default_model_path"]

DEFAULT_MODEL_NAME = "openfield-mnv2.onnx"

_REBUILD = (
    "rebuild it from a source checkout with `pip install -e '.[export]'`, then "
    "`python examples/train_openfield/train.py` and `python examples/train_openfield/export.py` "
    "(see docs/model-card.md), or pass --model with your own .onnx file or DeepLabCut exported-model folder"
)


def default_model_path() -> Path:
    """Path of the bundled ONNX model; raises :class:`ModelError` if the file is missing."""
    path = Path(__file__).resolve().parent / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise ModelError(f"the bundled model {path} is missing (a broken or partial install?); {_REBUILD}")
    return path
