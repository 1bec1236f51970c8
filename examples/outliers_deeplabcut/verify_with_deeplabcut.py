"""Check a folder written by ``rtpose outliers`` with DeepLabCut itself (run it with DeepLabCut's Python).

    python verify_with_deeplabcut.py PROJECT/config.yaml VIDEO_STEM

Needs DeepLabCut (tested with 3.0.2, TensorFlow engine); rtpose is not imported. Runs, on the
project's ``labeled-data/VIDEO_STEM/``:

1. ``pd.read_hdf`` + ``deeplabcut.utils.conversioncode.guarantee_multiindex_rows``: the reader of
   every DeepLabCut tool, and the row index it expects;
2. the load path of DeepLabCut's labelling GUI (napari-deeplabcut's ``read_hdf``, reproduced step by
   step: the GUI itself needs a display): the table stacks into points, and every row names an image
   of the folder, as the image reader lists them;
3. ``deeplabcut.check_labels``: draws the labels on the frames (``labeled-data/VIDEO_STEM_labeled/``);
4. ``merge_annotateddatasets`` and ``deeplabcut.create_training_dataset``: the frames become training
   data. Pretrained backbone weights cannot be downloaded here; their check is skipped (it only
   looks for the ImageNet checkpoint used later by training), nothing else is changed.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def main(config: str, video_stem: str) -> None:
    import deeplabcut
    from deeplabcut.generate_training_dataset import trainingsetmanipulation as tsm
    from deeplabcut.utils import auxfun_models, auxiliaryfunctions, conversioncode

    cfg = auxiliaryfunctions.read_config(config)
    project = Path(config).parent
    folder = project / "labeled-data" / video_stem
    h5 = folder / f"CollectedData_{cfg['scorer']}.h5"

    # 1. DeepLabCut's readers
    table = pd.read_hdf(h5)
    before = table.index.copy()
    conversioncode.guarantee_multiindex_rows(table)
    assert table.index.equals(before), "the rows were not already DeepLabCut's three-level index"
    assert list(table.columns.names) == ["scorer", "bodyparts", "coords"]
    assert list(dict.fromkeys(table.columns.get_level_values("bodyparts"))) == cfg["bodyparts"]
    assert set(table.columns.get_level_values("coords")) == {"x", "y"}
    print(f"1. read_hdf + guarantee_multiindex_rows: {len(table)} rows, index {table.index[0]}, OK")

    # 2. napari-deeplabcut's read_hdf / read_images, step by step
    temp = table.droplevel("scorer", axis=1)
    frame = temp.columns.to_frame()
    frame.insert(0, "individuals", "")
    temp.columns = pd.MultiIndex.from_frame(frame)
    temp.index = [os.path.join(*row) for row in temp.index]
    points = temp.stack(["individuals", "bodyparts"], future_stack=True).reset_index()
    images = sorted(os.path.join(*p.parts[-3:]) for p in folder.glob("*.png"))
    assert set(points["level_0"]) <= set(images), "a label row names an image the folder does not have"
    assert np.isfinite(points[["x", "y"]].to_numpy()).all()
    print(f"2. labelling GUI's loader: {len(points)} points on {points['level_0'].nunique()} of {len(images)} images, OK")

    # 3. check_labels
    deeplabcut.check_labels(config, visualizeindividuals=False)
    drawn = sorted((project / "labeled-data" / f"{video_stem}_labeled").glob("*.png"))
    assert len(drawn) >= len(table)
    print(f"3. check_labels drew {len(drawn)} images into {drawn[0].parent}")

    # 4. training data
    training_folder = project / auxiliaryfunctions.get_training_set_folder(cfg)
    training_folder.mkdir(parents=True, exist_ok=True)  # create_training_dataset makes it before merging
    merged = tsm.merge_annotateddatasets(cfg, training_folder)
    ours = merged.xs(video_stem, level=1, drop_level=False)
    assert len(ours) == len(table) and np.allclose(ours.to_numpy(), table.to_numpy(), equal_nan=True)
    print(f"4a. merge_annotateddatasets: {len(merged)} rows, {len(ours)} from {video_stem}, values identical")
    auxfun_models.check_for_weights = lambda net_type, parent: str(parent / "pretrained" / net_type)
    shuffle = 77
    deeplabcut.create_training_dataset(config, Shuffles=[shuffle], net_type="mobilenet_v2_0.35")
    docs = list(training_folder.glob(f"Documentation_data-*shuffle{shuffle}.pickle"))
    assert docs, "create_training_dataset wrote no dataset"
    data = pd.read_pickle(docs[0])[0]  # [image entries, train indices, test indices, train fraction]
    names = [str(Path(*entry["image"])) for entry in data]
    n_ours = sum(video_stem in n for n in names)
    print(f"4b. create_training_dataset: {len(names)} training images, {n_ours} of them from {video_stem}")
    assert n_ours > 0


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
