"""What ``rtpose analyze`` is asked to analyse: files, folders and globs → jobs with their output names.

Each video is a job; all image files given together are one job (rows in the
order given). A folder stands for the videos directly inside it (sorted by
name); a glob (``'data/*/*.mp4'``, quoted so that rtpose expands it) for the
files it matches. Outputs go to ``<out-dir>/<name>.rtpose.*`` (default: next
to each input); two inputs that would share an output name are refused before
anything runs.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..recording import RecordingPaths

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
#: What a folder given to ``analyze`` is searched for (DeepLabCut's ``videotype`` choices and more).
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".wmv", ".webm", ".h264"}
PARTIAL = ".partial"
_GLOB_CHARS = set("*?[")


@dataclass
class Job:
    kind: str  # "video" or "images"
    files: list[Path]
    stem: Path  # <out-dir>/<name>.rtpose
    status: str = "not started"
    #: filled in by the run: frames on disk, expected, FPS of this run, the error if it failed
    result: dict = field(default_factory=dict)

    @property
    def final(self) -> RecordingPaths:
        return RecordingPaths.for_output(self.stem)

    @property
    def partial(self) -> RecordingPaths:
        return RecordingPaths.for_output(self.stem.with_name(self.stem.name + PARTIAL))

    @property
    def status_json(self) -> Path:
        """``<name>.rtpose.status.json``: model hash, versions, frame counts, timing, completion."""
        return self.stem.with_name(self.stem.name + ".status.json")

    @property
    def label(self) -> str:
        return str(self.files[0]) if self.kind == "video" else f"{len(self.files)} images"


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given; a folder → the videos inside it; a glob → its matches (both sorted by name).
    Refuses (ConfigError) a path that is none of these and a folder or glob that names no file."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise ConfigError(f"folder {path} holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))}); "
                                  "give video files, a folder of videos, or image files (a folder of images: "
                                  "use a glob such as 'frames/*.png')")
            out.extend(videos)
        elif _GLOB_CHARS & set(raw):
            matches = sorted(Path(m) for m in glob.glob(raw) if Path(m).is_file())
            if not matches:
                raise ConfigError(f"{raw} matches no file; check the pattern (quote it so that rtpose expands it)")
            out.extend(matches)
        else:
            raise ConfigError(f"{path} is not a file or folder; give video or image files, folders of videos "
                              "or globs (a folder of images: use a glob such as 'frames/*.png')")
    return out


def plan_jobs(paths: list[str], out_dir: str | None = None) -> list[Job]:
    """Group inputs: each video is a job; all images together are one job (in the given order).
    Refuses (ConfigError) inputs that are not files and inputs whose outputs would collide."""
    jobs: list[Job] = []
    images: list[Path] = []
    for path in expand_inputs(paths):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            jobs.append(Job("video", [path], output_stem("video", [path], out_dir)))
    if images:
        jobs.append(Job("images", images, output_stem("images", images, out_dir)))
    seen: dict[Path, Job] = {}
    for job in jobs:
        key = Path(os.path.normcase(os.path.abspath(job.stem)))
        if key in seen:
            if [p.resolve() for p in seen[key].files] == [p.resolve() for p in job.files]:
                raise ConfigError(f"{job.label} is given twice (as a file, in a folder or by a glob); give it once")
            raise ConfigError(
                f"{seen[key].label} and {job.label} would both be written to {job.stem}.h5; "
                "analyse them in separate runs with different --out-dir folders (or rename one)"
            )
        seen[key] = job
    return jobs


def output_stem(kind: str, files: list[Path], out_dir: str | None) -> Path:
    first = files[0]
    name = first.stem if kind == "video" else (first.parent.name or "images")
    folder = Path(out_dir) if out_dir else first.parent
    return folder / f"{name}.rtpose"


def check_out_dir(out_dir: str | None) -> None:
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"--out-dir {out_dir} is a file, not a folder; give a folder (it is created if missing)")
