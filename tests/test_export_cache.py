"""``ensure_onnx``: export a DeepLabCut folder on first use, reuse the cached file afterwards,
and work without TensorFlow on a cache hit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.export
_WHY = "TensorFlow/tf2onnx not installed: install the export extra (pip install 'rtpose[export]') to run exporter tests"
pytest.importorskip("tensorflow", reason=_WHY)
pytest.importorskip("tf2onnx", reason=_WHY)
onnx = pytest.importorskip("onnx", reason=_WHY)
pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'rtpose[cpu]'")

import rtpose  # noqa: E402
from dlc_graphs import make_dlc_export_folder  # noqa: E402
from rtpose.errors import MissingDependencyError, ModelError  # noqa: E402
from rtpose.exporters import api, cache, ensure_onnx  # noqa: E402
from rtpose.exporters.api import EXPORTER_REVISION  # noqa: E402
from rtpose.metadata import ModelMetadata  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    where = tmp_path / "cache"
    monkeypatch.setenv("RTPOSE_CACHE_DIR", str(where))
    return where


@pytest.fixture
def export_calls(monkeypatch):
    calls = []
    real = api.export_model

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "export_model", counting)
    return calls


def test_onnx_path_is_returned_as_is(tmp_path, export_calls):
    assert ensure_onnx(tmp_path / "model.onnx") == tmp_path / "model.onnx"
    assert export_calls == []


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("RTPOSE_CACHE_DIR", raising=False)
    assert cache.cache_dir() == Path.home() / ".cache" / "rtpose" / "models"
    monkeypatch.setenv("RTPOSE_CACHE_DIR", str(tmp_path))
    assert cache.cache_dir() == tmp_path


def test_folder_is_exported_once_then_reused(tmp_path, cache_env, export_calls):
    folder = make_dlc_export_folder(tmp_path, "mobilenet", seed=6)
    first = ensure_onnx(folder)
    assert export_calls and len(export_calls) == 1
    assert first.parent == cache_env and first.suffix == ".onnx"
    assert first.name.startswith(folder.name) and f"rtpose{rtpose.__version__}" in first.name
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(first)).metadata_props})
    assert first.name.split("-")[-3] == meta.extra["source_sha256"][:16]
    assert first.name.endswith(f"-x{EXPORTER_REVISION}.onnx") and meta.extra["exporter_revision"] == "2"
    assert meta.batch_invariant
    mtime = first.stat().st_mtime_ns

    again = ensure_onnx(folder)
    assert again == first and len(export_calls) == 1 and first.stat().st_mtime_ns == mtime
    assert [p.name for p in cache_env.iterdir()] == [first.name]  # no temporary files left behind

    # A new pose_cfg.yaml is a new source: a new key, so the old export is not reused.
    cfg = folder / "pose_cfg.yaml"
    cfg.write_text(cfg.read_text().replace("locref_stdev: 7.2801", "locref_stdev: 6.0"))
    assert cache.cached_path(folder) != first


def test_an_export_cached_by_an_earlier_exporter_revision_is_not_reused(tmp_path, cache_env, export_calls):
    """Earlier exports may batch frames wrongly (training-mode batch norm): the cache key changed."""
    folder = make_dlc_export_folder(tmp_path, "mobilenet", seed=6, bodyparts=("a", "b"))
    current = cache.cached_path(folder)
    key = current.name.split("-")[-3]
    cache_env.mkdir()
    earlier = cache_env / f"{folder.name}-{key}-rtpose{rtpose.__version__}.onnx"  # revision 1 named it so
    earlier.write_bytes(b"an export made before the batch-invariance fix")
    assert ensure_onnx(folder) == current != earlier
    assert len(export_calls) == 1


def test_without_tensorflow_a_hit_works_and_a_miss_says_what_to_install(tmp_path, cache_env, export_calls):
    folder = make_dlc_export_folder(tmp_path, "mobilenet", seed=6, bodyparts=("a", "b"))
    target = cache.cached_path(folder)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"pretend export")  # a hit must not even look inside
    other = make_dlc_export_folder(tmp_path, "mobilenet", seed=7, bodyparts=("a", "b"))
    script = (
        "import sys\n"
        "for name in ('tensorflow', 'tf2onnx'):\n"
        "    sys.modules[name] = None  # as if not installed\n"
        "from rtpose.exporters import ensure_onnx\n"
        "from rtpose.errors import MissingDependencyError\n"
        f"print(ensure_onnx({str(folder)!r}))\n"
        "try:\n"
        f"    ensure_onnx({str(other)!r})\n"
        "except MissingDependencyError as exc:\n"
        "    print('MISSING:', exc)\n"
        "print('tensorflow imported:', bool(sys.modules.get('tensorflow')))\n"
    )
    env = dict(os.environ, RTPOSE_CACHE_DIR=str(cache_env))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == str(target)
    assert lines[1].startswith("MISSING:") and "install with `pip install 'rtpose[export]'`" in lines[1]
    assert lines[2] == "tensorflow imported: False"
    assert export_calls == []


def test_missing_dependency_in_process(tmp_path, cache_env, monkeypatch):
    folder = make_dlc_export_folder(tmp_path, "mobilenet", seed=8, bodyparts=("a", "b"))
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(MissingDependencyError, match=r"tf2onnx.*install with `pip install 'rtpose\[export\]'`"):
        ensure_onnx(folder)
    assert not cache_env.exists() or not list(cache_env.iterdir())


def test_missing_path_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="no such model file or folder"):
        ensure_onnx(tmp_path / "nowhere")


def test_analyze_runs_a_deeplabcut_folder_through_the_cache(tmp_path, cache_env, export_calls, capsys):
    """`rtpose analyze --model <DeepLabCut folder>`: exported on first use, reused on the second run."""
    import cv2
    import numpy as np

    from rtpose.cli import main as cli_main
    from rtpose.exporters.frames import synthetic_frames

    folder = make_dlc_export_folder(tmp_path, "mobilenet", seed=9)
    paths = []
    for i, rgb in enumerate(synthetic_frames(((240, 320), (240, 320)), seed=3)):
        p = tmp_path / "imgs" / f"img{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), cv2.cvtColor(np.round(rgb).astype(np.uint8), cv2.COLOR_RGB2BGR))
        paths.append(str(p))
    for run in (1, 2):
        out = tmp_path / f"res{run}"
        assert cli_main(["analyze", *paths, "--model", str(folder), "--out-dir", str(out), "--quiet"]) == 0
        assert (out / "imgs.rtpose.h5").is_file() and (out / "imgs.rtpose.csv").is_file()
        assert len(export_calls) == 1  # the second run used the cached file
    cached = list(cache_env.iterdir())
    assert len(cached) == 1 and cached[0] == cache.cached_path(folder)
    capsys.readouterr()
