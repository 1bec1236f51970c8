"""Real DeepLabCut TF-engine exports as test fixtures (see tests/fixtures/dlc_real/README.md).

The fixtures were built by DeepLabCut 3.0.2's own code (random init, a few training
iterations, ``deeplabcut.export_model``). Small graphs are stored as the exported
``.pb`` untouched; big ones as the GraphDef with the contents of its large float
weight constants removed plus a recipe (shape, dtype, mean and std of the real values,
and a calibrated gain); their inference-mode batch norms' moving statistics were
re-fitted to the refilled weights at build time (see the README).
:func:`materialize` is the one way in for every fixture: it writes a DeepLabCut
export folder (``pose_cfg.yaml`` + ``snapshot-<n>.pb``) that DeepLabCut-Live, rtpose's
exporter and TensorFlow can load. Refilled weights are deterministic (a numpy
``default_rng`` seeded from a SHA-256 of the node name) and checked against a digest
stored at build time, so every run and every numpy version gives the same graph or
fails loudly.

Works with TensorFlow 2.15-2.21 and numpy 1.26-2.x (imports TensorFlow only for the
GraphDef protobuf and tensor conversion).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "dlc_real"
NETS = ("mobilenet_v2_0.35", "efficientnet-b0", "resnet_50")

KEEP_WHOLE_BYTES = 3_000_000  # graphs up to this size are stored untouched
REFILL_MIN_ELEMENTS = 1024  # float constants with ndim >= 2 and at least this many elements
# The pose heads stay verbatim: a few Adam steps move every head weight by ~lr in a
# coordinated direction, and an i.i.d. refill of the head flattens the score maps.
KEEP_VERBATIM_PREFIXES = ("pose/",)
RECIPE = "recipe.json"
_FLOAT_DTYPES = ("float16", "float32", "float64", "bfloat16")


def _seed(node_name: str) -> int:
    return int.from_bytes(hashlib.sha256(node_name.encode("utf-8")).digest()[:8], "little")


def _refill(entry: dict) -> np.ndarray:
    rng = np.random.default_rng(_seed(entry["name"]))
    values = rng.normal(entry["mean"], entry["std"] * entry.get("gain", 1.0), size=tuple(entry["shape"]))
    return values.astype(entry["dtype"])


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for name, arr in arrays:
        h.update(name.encode("utf-8"))
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _graph_def(data: bytes):
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(data)
    return gd


def write_fixture(pb: Path, dest: Path, strip: bool) -> None:
    """Store an exported frozen graph in ``dest`` (used by build.py, side venv)."""
    import tensorflow as tf

    pb = Path(pb)
    if not strip:
        shutil.copy2(pb, dest / pb.name)
        return
    gd = _graph_def(pb.read_bytes())
    entries = []
    for node in gd.node:
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        arr = tf.make_ndarray(tensor)
        if arr.dtype.name not in _FLOAT_DTYPES or arr.ndim < 2 or arr.size < REFILL_MIN_ELEMENTS:
            continue
        if node.name.startswith(KEEP_VERBATIM_PREFIXES):
            continue
        real = arr.astype(np.float64)
        entries.append(
            {
                "name": node.name,
                "shape": list(arr.shape),
                "dtype": arr.dtype.name,
                "mean": float(real.mean()),
                "std": float(real.std()),
            }
        )
        tensor.ClearField("tensor_content")
        for field in ("float_val", "double_val", "half_val"):
            tensor.ClearField(field)
    stripped = pb.stem + ".stripped.pb"
    (dest / stripped).write_bytes(gd.SerializeToString(deterministic=True))
    recipe = {
        "pb_name": pb.name,
        "stripped": stripped,
        "refill": "numpy default_rng(int.from_bytes(sha256(node_name)[:8], 'little'))"
        ".normal(mean, std * gain, shape).astype(dtype)",
        "tensors": entries,
    }
    write_recipe(dest, recipe)


def write_recipe(dest: Path, recipe: dict) -> None:
    """Write ``recipe.json`` with the digest of the weights it refills (build time)."""
    recipe["digest"] = _digest((e["name"], _refill(e)) for e in recipe["tensors"])
    (Path(dest) / RECIPE).write_text(json.dumps(recipe, indent=1) + "\n")


def materialize(net: str, dest: Path) -> Path:
    """Write the DeepLabCut export folder of fixture ``net`` to ``dest``; return ``dest``.

    ``dest`` holds ``pose_cfg.yaml`` and ``snapshot-<n>.pb`` afterwards (existing files of
    those names are replaced). Deterministic: the same bytes of weights every run.
    """
    import tensorflow as tf

    src = FIXTURES / net
    if not (src / "pose_cfg.yaml").is_file():
        raise FileNotFoundError(f"no DeepLabCut fixture {net!r} in {FIXTURES} (known: {', '.join(NETS)})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "pose_cfg.yaml", dest / "pose_cfg.yaml")
    recipe_path = src / RECIPE
    if not recipe_path.is_file():
        pbs = sorted(p for p in src.glob("snapshot-*.pb") if not p.name.endswith(".stripped.pb"))
        if len(pbs) != 1:
            raise FileNotFoundError(f"fixture {net}: expected one snapshot-*.pb in {src}, found {pbs}")
        shutil.copyfile(pbs[0], dest / pbs[0].name)
        return dest
    recipe = json.loads(recipe_path.read_text())
    gd = _graph_def((src / recipe["stripped"]).read_bytes())
    by_name = {n.name: n for n in gd.node}
    refilled = []
    for entry in recipe["tensors"]:
        arr = _refill(entry)
        refilled.append((entry["name"], arr))
        by_name[entry["name"]].attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr))
    digest = _digest(refilled)
    if digest != recipe["digest"]:
        raise RuntimeError(
            f"fixture {net}: refilled weights differ from the ones the references were made with "
            f"(digest {digest} != {recipe['digest']}); numpy's normal() stream changed?"
        )
    (dest / recipe["pb_name"]).write_bytes(gd.SerializeToString(deterministic=True))
    return dest


def reference(net: str) -> dict:
    """DeepLabCut-Live 1.1.0 reference of fixture ``net`` (see README.md for the fields)."""
    with np.load(FIXTURES / net / "dlclive_reference.npz") as z:
        return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}


def ops(net: str) -> dict:
    """The op report of the exported graph (histogram, training-mode batch norms, reductions)."""
    return json.loads((FIXTURES / net / "ops.json").read_text())
