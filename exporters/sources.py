"""What an export source is and what it says about itself; no TensorFlow here.

Four kinds of source:

* ``dlc``: a DeepLabCut exported-model folder (``pose_cfg.yaml`` + ``snapshot-*.pb``),
  or the ``.pb`` file inside one;
* ``dlc3``: a DeepLabCut 3 (PyTorch) exported-model folder
  (``exported-models-pytorch/DLC_.../`` holding one ``.pt``), or that ``.pt``;
  it describes itself (the config is inside the ``.pt``, read by :mod:`.torch_dlc3`);
* ``savedmodel``: a TensorFlow SavedModel folder (``saved_model.pb`` + ``variables/``);
* ``keras``: a Keras model file (``.keras`` or ``.h5``).

The last two need a small YAML/JSON *model description* (bodypart names, stride,
...) beside them or given explicitly. The source hash (``source_sha256``) is the
sha256 of the source files' bytes concatenated in a fixed order; for a
DeepLabCut folder that is ``cat pose_cfg.yaml snapshot-*.pb | sha256sum``, for a
DeepLabCut 3 one the ``.pt``'s.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from rtpose.errors import ExportError

DLC_CFG = "pose_cfg.yaml"
DEFAULT_LOCREF_STDEV = 7.2801
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".pt", ".pth")
DESCRIPTION_SUFFIXES = (".yaml", ".yml", ".json")

#: Keys a model description may hold (DeepLabCut's names are accepted too).
DESCRIPTION_KEYS = (
    "bodyparts", "all_joints_names", "stride", "locref_stdev", "location_refinement", "scoremap_output",
    "locref_output", "apply_sigmoid", "input_color", "input_range", "preprocessing_in_graph",
)


@dataclass(frozen=True)
class ModelDescription:
    """What the exporter needs to know that a TF graph does not say."""

    bodyparts: tuple[str, ...]
    stride: float
    locref_stdev: float = DEFAULT_LOCREF_STDEV
    location_refinement: bool | None = None  # None: decided by the outputs found
    scoremap_output: str | None = None  # TF output name hints; None: match by channel count
    locref_output: str | None = None
    apply_sigmoid: bool = False  # the score-map output is logits: append a Sigmoid
    input_color: str = "RGB"
    input_range: str = "0-255"
    preprocessing_in_graph: bool = True
    clip_scores: bool = False  # likelihood = score at the maximum clipped to [0, 1] (DeepLabCut 3)
    described_by: str = ""  # file the description came from, for messages


@dataclass(frozen=True)
class Source:
    """One export source, located and hashed (contents not parsed beyond the YAML)."""

    kind: str  # "dlc" | "dlc3" | "savedmodel" | "keras"
    path: Path  # the model folder (DeepLabCut, SavedModel) or file (Keras)
    files: tuple[Path, ...]  # the files hashed, in hash order
    model_file: Path  # the .pb / saved_model dir / .keras file
    description_file: Path | None = None

    @property
    def name(self) -> str:
        """A file-name-safe name: the folder's name, or the model file's stem."""
        p = self.path if self.path.is_dir() else self.path.with_suffix("")
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", p.name) or "model"

    def sha256(self) -> str:
        return sha256_files(self.files)


def sha256_files(files) -> str:
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def locate(src, description=None) -> Source:
    """Classify ``src`` and find its files; raises :class:`ExportError` saying what is expected."""
    path = Path(src).expanduser()
    if not path.exists():
        raise ExportError(f"{path}: no such file or folder. Give a DeepLabCut exported-model folder "
                          "(pose_cfg.yaml + snapshot-*.pb, or DeepLabCut 3's .pt), a TF SavedModel folder or a "
                          ".keras/.h5 file.")
    if path.is_file() and path.suffix.lower() in TORCH_SUFFIXES:
        return Source("dlc3", path.parent, (path,), path)
    if path.is_dir() and not (path / DLC_CFG).is_file() and not (path / "saved_model.pb").is_file():
        pts = sorted(p for p in path.iterdir() if p.suffix.lower() in TORCH_SUFFIXES)
        if len(pts) == 1:
            return Source("dlc3", path, (pts[0],), pts[0])
        if len(pts) > 1:
            raise ExportError(f"{path}: holds {len(pts)} .pt files ({', '.join(p.name for p in pts)}); a DeepLabCut 3 "
                              "exported-model folder holds one. Give the .pt file to export.")
    if path.is_file() and path.suffix == ".pb" and path.name != "saved_model.pb":
        return _dlc(path.parent, pb=path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _described("savedmodel", path, path, sorted(p for p in path.rglob("*") if p.is_file()), description)
    if path.is_file() and path.name == "saved_model.pb":
        return locate(path.parent, description)
    if path.is_file() and path.suffix.lower() in KERAS_SUFFIXES:
        return _described("keras", path, path, [path], description)
    if path.is_dir():
        return _dlc(path)
    raise ExportError(f"{path}: not an exportable model. rtpose exports a DeepLabCut exported-model folder "
                      "(pose_cfg.yaml + snapshot-*.pb), a TF SavedModel folder or a .keras/.h5 Keras file.")


def _dlc(folder: Path, pb: Path | None = None) -> Source:
    cfg = folder / DLC_CFG
    if pb is None:
        pbs = sorted(folder.glob("snapshot-*.pb"), key=_iteration)
        if not pbs:
            others = sorted(p.name for p in folder.glob("*.pb"))
            hint = f" (found {', '.join(others)})" if others else ""
            raise ExportError(
                f"{folder}: no snapshot-*.pb frozen graph{hint}. A DeepLabCut exported-model folder holds "
                "pose_cfg.yaml and snapshot-<iteration>.pb; create it with deeplabcut.export_model(config_path).")
        pb = pbs[-1]
    if not cfg.is_file():
        raise ExportError(
            f"{cfg}: not found. A DeepLabCut exported-model folder holds pose_cfg.yaml beside {pb.name}; "
            "export again with deeplabcut.export_model(config_path), or copy the training folder's "
            "pose_cfg.yaml (dlc-models/.../train/pose_cfg.yaml) here.")
    return Source("dlc", folder, (cfg, pb), pb, description_file=cfg)


def _iteration(p: Path) -> int:
    m = re.search(r"snapshot-(\d+)", p.name)
    return int(m.group(1)) if m else -1


def _described(kind: str, path: Path, model_file: Path, files: list[Path], description) -> Source:
    desc = Path(description).expanduser() if description else _find_description(path)
    if desc is not None and not desc.is_file():
        raise ExportError(f"{desc}: model description file not found")
    hashed = tuple(files) + ((desc,) if desc is not None and desc not in files else ())
    return Source(kind, path, hashed, model_file, description_file=desc)


def _find_description(path: Path) -> Path | None:
    """``<name>.yaml|.yml|.json`` beside the model, or ``rtpose.yaml|json`` inside/beside it."""
    stem = path.with_suffix("") if path.is_file() else path
    candidates = [stem.with_name(stem.name + s) for s in DESCRIPTION_SUFFIXES]
    folder = path if path.is_dir() else path.parent
    candidates += [folder / f"rtpose{s}" for s in DESCRIPTION_SUFFIXES]
    for c in candidates:
        if c.is_file():
            return c
    return None


def _safe_yaml(text: str):
    """``yaml.safe_load`` that tolerates Python-specific tags older DeepLabCut files carry."""

    class Loader(yaml.SafeLoader):
        pass

    def anything(loader, _suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("", anything)
    return yaml.load(text, Loader=Loader)  # noqa: S506 - SafeLoader subclass


def read_mapping(path: Path) -> dict:
    """Parse a YAML or JSON file into a dict; :class:`ExportError` naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else _safe_yaml(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ExportError(f"{path}: cannot be read as {'JSON' if path.suffix == '.json' else 'YAML'} ({exc}); "
                          "fix or replace the file") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a mapping of keys (bodyparts, stride, ...), got {type(data).__name__}")
    return data


def describe(source: Source, *, bodyparts=None, stride=None, locref_stdev=None, **overrides) -> ModelDescription:
    """Merge the source's YAML/JSON with explicit arguments (which win) into a :class:`ModelDescription`."""
    data: dict = {}
    where = ""
    if source.description_file is not None:
        data = read_mapping(source.description_file)
        where = str(source.description_file)
    if bodyparts is not None:
        data["bodyparts"] = list(bodyparts)
    if stride is not None:
        data["stride"] = stride
    if locref_stdev is not None:
        data["locref_stdev"] = locref_stdev
    data.update({k: v for k, v in overrides.items() if v is not None})
    what = where or "the model description"
    names = data.get("bodyparts", data.get("all_joints_names"))
    if not names:
        if source.kind == "dlc":
            fix = "add `all_joints_names: [snout, leftear, ...]` (DeepLabCut writes it when exporting)"
        elif where:
            fix = "add `bodyparts: [snout, leftear, ...]`"
        else:
            fix = (f"write {source.path.with_suffix('').name}.yaml beside the model with `bodyparts:` and `stride:`, "
                   "or pass --bodyparts/--stride")
        raise ExportError(f"{what}: lists no bodyparts; {fix}")
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, int)) for n in names):
        raise ExportError(f"{what}: bodyparts must be a list of names, got {names!r}")
    if "stride" not in data:
        raise ExportError(f"{what}: gives no stride (input pixels per score-map cell, e.g. `stride: 8`); add it")
    try:
        stride_value = float(data["stride"])
        stdev = float(data.get("locref_stdev", DEFAULT_LOCREF_STDEV))
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{what}: stride/locref_stdev must be numbers ({exc})") from exc
    if stride_value <= 0:
        raise ExportError(f"{what}: stride is {stride_value}; it must be positive")
    unknown = sorted(set(data) - set(DESCRIPTION_KEYS)) if source.kind != "dlc" else []
    if unknown:
        raise ExportError(f"{what}: unknown keys {unknown}; allowed: {', '.join(DESCRIPTION_KEYS)}")
    color = str(data.get("input_color", "RGB")).upper()
    if color not in ("RGB", "BGR"):
        raise ExportError(f"{what}: input_color is {color!r}; it must be RGB or BGR")
    refine = data.get("location_refinement")
    return ModelDescription(
        bodyparts=tuple(str(n) for n in names),
        stride=stride_value,
        locref_stdev=stdev,
        location_refinement=None if refine is None else bool(refine),
        scoremap_output=data.get("scoremap_output") if source.kind != "dlc" else None,
        locref_output=data.get("locref_output") if source.kind != "dlc" else None,
        apply_sigmoid=bool(data.get("apply_sigmoid", False)),
        input_color=color,
        input_range=str(data.get("input_range", "0-255")),
        preprocessing_in_graph=bool(data.get("preprocessing_in_graph", True)),
        described_by=where,
    )
