"""More DeepLabCut-made cases than the stored fixture holds, for a development check (not stored).

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 /work/side/dlc3-torch/bin/python tests/data/ma_decode/fuzz_dlc.py /tmp/ma_fuzz.npz
    .venv/bin/python tests/data/ma_decode/check_fuzz.py /tmp/ma_fuzz.npz

240 random frames (fragmented animals, crossings, full graphs, reversed chains, force_fusion,
add_discarded with min_n_links=3) through DeepLabCut 3.0.2's predictor; check_fuzz.py compares rtpose's
decoder with it (same animals, order, bit-identical keypoints and affinities). Last run: 240/240 equal.
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import build_fixtures as BF  # noqa: E402

g5 = [(0, 1), (1, 2), (2, 3), (1, 4), (4, 0)]
chain4 = [(0, 1), (1, 2), (2, 3)]
full5 = [(0, 1), (2, 0), (0, 3), (4, 0), (1, 2), (3, 1), (1, 4), (2, 3), (4, 2), (3, 4)]
rev4 = [(1, 0), (2, 1), (3, 2)]
CONFIGS = [
    ("fz_frag", g5, 5, 2, {}, {}, dict(n_animals=(3, 5), p_missing=0.35, crossing=(0, 2))),
    ("fz_ff", g5, 5, 2, {}, {"force_fusion": True}, dict(n_animals=(3, 5), p_missing=0.35, crossing=(0, 2))),
    ("fz_cross", chain4, 4, 3, {}, {}, dict(n_animals=(2, 4), p_missing=0.05, crossing=(0, 1))),
    ("fz_full", full5, 5, 3, {}, {}, dict(n_animals=(2, 5), p_missing=0.3, crossing=(0, 2))),
    ("fz_rev", rev4, 4, 2, {}, {}, dict(n_animals=(2, 4), p_missing=0.2, crossing=(0, 2))),
    ("fz_disc", g5, 5, 3, {"min_n_links": 3}, {"add_discarded": True},
     dict(n_animals=(2, 5), p_missing=0.3, crossing=(0, 2))),
]


def main(out):
    arrays, meta = {}, []
    seed = 1000
    for name, graph, K, A, asm, kw, fr in CONFIGS:
        for chunk in range(4):
            seed += 1
            frames = BF.random_frames(seed, 10, K, graph, 24, 32, 8, noise=0.03, **fr)
            res = BF.run_case(f"{name}_{chunk}", frames, graph, A, 8, assembler=asm, **kw)
            arrays.update(res[0])
            meta.append(res[1])
    np.savez_compressed(out, cases=np.array(json.dumps(meta)), **arrays)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ma_fuzz.npz")
