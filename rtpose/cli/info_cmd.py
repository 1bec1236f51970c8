"""``rtpose info``: a model's metadata, inputs/outputs, and the execution providers available."""

from __future__ import annotations

import argparse

from ..metadata import compress_listing
from ..model import available_providers, load_model


def register(sub) -> None:
    p = sub.add_parser("info", help="show a model's metadata and the providers available", description=__doc__)
    p.add_argument("model", nargs="?", default=None, help="rtpose .onnx file or DeepLabCut folder (default: bundled model)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import onnxruntime

    model = load_model(args.model, providers=["cpu"])
    meta = model.metadata
    print(f"model: {model.path}")
    print(f"  bodyparts ({meta.num_bodyparts}): {', '.join(meta.bodyparts)}")
    print(f"  stride: {meta.stride:g}   locref_stdev: {meta.locref_stdev:g}   location_refinement: {meta.location_refinement}"
          f"   likelihood clipped to [0, 1]: {meta.clip_scores}")
    print(f"  input colour: {meta.input_color}, range {meta.input_range}, preprocessing in graph: {meta.preprocessing_in_graph}")
    if meta.topdown_model:
        td, lay = meta.topdown, meta.layout
        print(f"  multi-animal, top-down: {lay.n_animals} individuals ({', '.join(lay.individuals)}); detector "
              f"{td.detector_type or '?'} {td.detector_variant} (box score threshold {td.box_score_thresh}, in the "
              f"graph), up to {td.max_individuals} boxes per frame, min_bbox_score {td.min_bbox_score}; crops "
              f"{td.crop_width}x{td.crop_height}, margin {td.margin}, with context {td.with_context}")
    elif meta.layout is not None:
        lay, asm = meta.layout, meta.assembly
        print(f"  multi-animal: {lay.n_animals} individuals ({', '.join(lay.individuals)}), "
              f"unique bodyparts: {', '.join(lay.unique_bodyparts) or 'none'}; PAF output {meta.paf_output}")
        if meta.unique_scoremap_output:
            print(f"  unique head: outputs {meta.unique_scoremap_output}, {meta.unique_locref_output} "
                  f"(stride {asm.unique_stride or meta.stride:g})")
        if meta.identity_output:
            print(f"  identity head: output {meta.identity_output} (stride {asm.identity_stride:g}, sigmoid "
                  f"{asm.identity_apply_sigmoid}): animals take their slot from it")
        print(f"  graph ({len(asm.graph)} limbs): "
              + ", ".join(f"{meta.bodyparts[i]}-{meta.bodyparts[j]}" for i, j in asm.graph))
        print(f"  assembly: score maps{' sigmoid +' if asm.apply_sigmoid else ''} smoothed in graph "
              f"({asm.smoothed_in_graph}), sigma {asm.sigma:g}, nms_radius {asm.nms_radius}, peak_threshold "
              f"{asm.peak_threshold:g}, min_affinity {asm.min_affinity:g}, pcutoff {asm.pcutoff:g}, "
              f"min_n_links {asm.min_n_links}, max_overlap {asm.max_overlap:g}")
    print(f"  decode in graph: {'yes, output ' + meta.pose_output if meta.pose_output else 'no (rtpose decodes the maps)'}")
    sessions = [model.detector, model.pose] if meta.topdown_model else [model.session]  # top-down: two stages
    print("  inputs:")
    for i in (i for session in sessions for i in session.get_inputs()):
        print(f"    {i.name}: {i.type} {i.shape}")
    print("  outputs:")
    for o in (o for session in sessions for o in session.get_outputs()):
        print(f"    {o.name}: {o.type} {o.shape}")
    if meta.extra:
        print("  export information:")
        for k, v in sorted(meta.extra.items()):
            print(f"    {k}: {compress_listing(str(v))}")
    print(f"onnxruntime {onnxruntime.__version__}, device {onnxruntime.get_device()}")
    print(f"  available providers: {', '.join(available_providers())}")
    return 0
