"""Per-video status files and the resume decision of ``rtpose analyze``.

Each job keeps ``<name>.rtpose.status.json`` beside its results: the model's
SHA-256, the settings that change poses (framing, frame range, scorer), the
versions of rtpose and its libraries, the frames expected and on disk, the
timing of every run that worked on it and its completion status (``running``,
``complete``, ``partial`` - fewer frames decodable than announced -,
``stopped``, ``failed``). It is replaced atomically, so it is whole even after
a crash.

:func:`decide` turns what is on disk into what a run does with a job:

- ``skip``: complete results with the same model and settings;
- ``resume``: ``.partial`` results of the same model and settings (an
  interrupted run, a killed worker): the recording is brought back to
  consistent rows (:func:`rtpose.recording.resume.recover`) and continued from
  the next frame;
- ``fresh``: nothing there (or ``--overwrite``);
- refused (:class:`~rtpose.errors.RecordingError`, before anything runs):
  results without a status file or of another model or settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import RecordingError
from ..recording.recorder import refuse_existing
from ..recording.resume import NotResumable, Recovered, recover
from .inputs import Job

STATUS_VERSION = 1


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that can change the numbers: rtpose, ONNX Runtime, NumPy, OpenCV (video decoding), Python."""
    import cv2
    import numpy as np

    from .. import __version__
    from ..model import import_onnxruntime

    return {"rtpose": __version__, "onnxruntime": import_onnxruntime().__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "python": platform.python_version()}


def settings_key(settings: dict) -> str:
    """A short digest of the settings that change the poses (the resume/skip identity of a result)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def read_status(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("status_version") == STATUS_VERSION else None


def write_status(path: Path, status: dict) -> None:
    """Replace the status file atomically (a temporary file renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Decision:
    action: str  # "skip", "resume" or "fresh"
    resume_rows: int = 0  # rows already on disk (resume)
    note: str = ""  # what the user is told (skip, resume, or why a resume had to start over)
    previous: dict | None = None  # the status file's content (its runs are kept)


def _results(job: Job) -> list[Path]:
    return [p for paths in (job.final, job.partial) for p in (*paths.all(), paths.h5_tmp) if p.exists()]


def decide(job: Job, key: str, *, first_frame: int, overwrite: bool) -> Decision:
    """What to do with ``job`` given its files on disk (see the module docstring). ``first_frame``: the
    frame the run starts at (``--frame-range``), which a resumed recording must start at too."""
    if overwrite:
        return Decision("fresh")
    existing = _results(job)
    if not existing:
        return Decision("fresh")
    status = read_status(job.status_json)
    if status is None or status.get("settings_key") != key or job.kind != "video":
        why = ("" if status is None or job.kind != "video" else
               " (made with another model or other settings, see its .status.json)")
        try:
            refuse_existing(existing, overwrite=False)
        except RecordingError as exc:
            raise RecordingError(str(exc).replace("; rtpose never", f"{why}; rtpose never", 1)) from None
    if status["status"] == "complete" and job.final.h5.exists():
        return Decision("skip", note="already analysed completely with the same model and settings: skipped",
                        previous=status)
    if not job.partial.h5.exists() and not job.partial.csv.exists():
        refuse_existing(existing, overwrite=False)
    try:
        rec: Recovered = recover(job.partial)
    except NotResumable as exc:
        return Decision("fresh", note=f"cannot continue the earlier partial result ({exc}): starting over",
                        previous=status)
    if rec.rows and rec.first_frame != first_frame:
        return Decision("fresh", note=f"the earlier partial result starts at frame {rec.first_frame}, not "
                                      f"{first_frame}: starting over", previous=status)
    return Decision("resume", rec.rows, note=f"continuing after the {rec.rows} frames already analysed",
                    previous=status)
