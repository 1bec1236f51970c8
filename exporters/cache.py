"""Export-on-first-use cache: turn a model folder into an ONNX path the runtime can load.

``ensure_onnx(path)`` returns an ``.onnx`` path unchanged. A DeepLabCut exported
folder (or a SavedModel / Keras file with its description) is exported once into
the cache folder and the cached file is returned from then on. The cache key is
the sha256 of the source files (for DeepLabCut ``pose_cfg.yaml`` then the
``snapshot-*.pb``; for DeepLabCut 3 the ``.pt``), plus the rtpose version and the exporter
revision (:data:`rtpose.exporters.api.EXPORTER_REVISION`) in the file name, so an upgrade, or a
fix that makes earlier exports wrong, re-exports. Cache folder: ``$RTPOSE_CACHE_DIR`` or
``~/.cache/rtpose/models/``.

This module imports without TensorFlow; a cache hit needs no TensorFlow at all.
A miss without the export extra raises
:class:`~rtpose.errors.MissingDependencyError`: install with
``pip install 'rtpose[export]'`` (DeepLabCut 3 models: ``'rtpose[export-torch]'``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from rtpose import __version__
from rtpose.errors import ModelError

from . import deps, sources
from .api import EXPORTER_REVISION

CACHE_ENV = "RTPOSE_CACHE_DIR"
log = logging.getLogger(__name__)


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rtpose" / "models"


def cached_path(path, *, directory: Path | None = None) -> Path:
    """Where the export of ``path`` lives (or will live) in the cache."""
    source = sources.locate(path)
    key = source.sha256()
    return (directory or cache_dir()) / f"{source.name}-{key[:16]}-rtpose{__version__}-x{EXPORTER_REVISION}.onnx"


def ensure_onnx(path, *, directory: Path | None = None) -> Path:
    """An ``.onnx`` file as is; otherwise the cached export of the model at ``path`` (exporting on a miss)."""
    p = Path(path).expanduser()
    if p.suffix.lower() == ".onnx":
        return p
    if not p.exists():
        raise ModelError(f"{p}: no such model file or folder")
    target = cached_path(p, directory=directory)  # ExportError naming what a model folder needs
    if target.is_file():
        return target
    deps.require_export(sources.locate(p).kind)
    from .api import export_model

    log.info("exporting %s to %s (first use; reused until the source changes)", p, target)
    report = export_model(p, target)
    log.info("%s", report.summary())
    return target
