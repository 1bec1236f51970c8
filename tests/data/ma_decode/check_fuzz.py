"""Compare rtpose's multi-animal decoder with DeepLabCut on fuzz_dlc.py's output (see there)."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from test_multianimal_decode import _assert_like_dlc, _layout  # noqa: E402

from rtpose.multianimal.decoder import MultiAnimalDecoder  # noqa: E402
from rtpose.multianimal.params import AssemblyParams  # noqa: E402


def main(path):
    z = np.load(path)
    n_frames = 0
    for c in json.loads(str(z["cases"])):
        n = c["name"]
        p = AssemblyParams(**c["params"])
        sc, lr, pf = z[n + "_scores"], z[n + "_locref"], z[n + "_paf"]
        B, _, _, K = sc.shape
        dec = MultiAnimalDecoder(p, _layout(p, K), B)
        out = np.empty((B, dec.layout.n_flat, 3))
        na, aff = dec.decode(sc, lr, pf, out)
        _assert_like_dlc(out, na, aff, z[n + "_poses"], K)
        n_frames += B
    print(f"{n_frames} frames: same animals, order, keypoints and affinities as DeepLabCut")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ma_fuzz.npz")
