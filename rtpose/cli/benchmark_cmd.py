"""``rtpose benchmark``: FPS and per-stage latency over frame sizes, batch sizes and
providers (the real pipeline), and the latency test suite; writes JSON, Markdown and PNG."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

from ..errors import ConfigError
from .common import positive_int

GENERATED_BEGIN = "<!-- BEGIN GENERATED: rtpose benchmark -->"
GENERATED_END = "<!-- END GENERATED: rtpose benchmark -->"


def register(sub) -> None:
    p = sub.add_parser("benchmark", help="measure FPS and latency per stage; write JSON, Markdown and plots",
                       description=__doc__)
    p.add_argument("--model", default=None,
                   help="rtpose .onnx file or DeepLabCut exported-model folder (default: the bundled model)")
    p.add_argument("--sizes", default="320x240,640x480", help="frame sizes WxH, comma-separated (default: %(default)s)")
    p.add_argument("--batch", default="1,4,16", help="batch sizes, comma-separated (default: %(default)s)")
    p.add_argument("--providers", default="cpu",
                   help="execution providers to sweep: cpu,cuda,tensorrt (unavailable ones are reported as skipped; "
                        "default: %(default)s)")
    p.add_argument("--frames", type=positive_int, default=300, help="measured frames per combination (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=32, help="warm-up frames per combination (default: %(default)s)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU inference threads (default: all usable cores)")
    p.add_argument("--spinning", choices=("on", "off"), default="off",
                   help="ONNX Runtime thread spinning for the sweep (default off, as for `rtpose run`)")
    p.add_argument("--suite", choices=("sweep", "latency", "all"), default="sweep",
                   help="sweep: sizes x batches x providers; latency: the latency_tests/ scripts; all: both")
    p.add_argument("--tests", default=None,
                   help="latency tests to run, comma-separated (default: all of them; see latency_tests/)")
    p.add_argument("--dlc-live", action="store_true",
                   help="also run the DeepLabCut-Live side-by-side comparison (creates its own virtual environment)")
    p.add_argument("--quick", action="store_true", help="latency tests with fewer samples (a smoke run)")
    p.add_argument("--out", default="rtpose-benchmark", help="output folder (default: %(default)s)")
    p.add_argument("--update-doc", default=None, metavar="MD",
                   help=f"replace the block between '{GENERATED_BEGIN}' and '{GENERATED_END}' in this Markdown "
                        "file with the report (image links relative to it)")
    p.set_defaults(func=main)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _status(status) -> None:
    sys.stderr.write(f"\r    {status.elapsed_s:5.1f}s  {status.processed:6d} frames  {status.fps:7.1f} FPS   ")
    sys.stderr.flush()


def run_sweep_from_args(args, out: Path) -> tuple[list, dict]:
    from ..benchmark.sweep import SweepConfig, parse_ints, parse_names, parse_sizes, run_sweep
    from ..model import load_model

    cfg = SweepConfig(sizes=parse_sizes(args.sizes), batches=parse_ints(args.batch, "--batch"),
                      providers=parse_names(args.providers), frames=args.frames, warmup_frames=args.warmup,
                      threads=args.threads)
    t0 = time.perf_counter()

    def on_start(i, total, r):
        _progress(f"[{i + 1}/{total}] {r.provider} {r.size} batch {r.batch} ...")

    def on_done(i, total, r):
        if sys.stderr.isatty():
            sys.stderr.write("\r" + " " * 60 + "\r")
        if r.status == "ok":
            s = r.stages["service"]
            _progress(f"    {r.fps:8.1f} FPS   service p50 {s['p50']:.2f} ms  p99 {s['p99']:.2f} ms  "
                      f"(inference p50 {r.stages['inference']['p50']:.2f} ms)   [{time.perf_counter() - t0:.0f} s]")
        else:
            _progress(f"    {r.status}: {r.reason}")

    loaded: dict = {}

    def loader(spec, **kwargs):
        model = load_model(spec, spinning=args.spinning == "on", **kwargs)
        loaded.setdefault("path", str(model.path))
        loaded.setdefault("bodyparts", list(model.metadata.bodyparts))
        loaded.setdefault("stride", model.metadata.stride)
        return model

    results = run_sweep(args.model, cfg, on_start=on_start, on_done=on_done, on_status=_status if sys.stderr.isatty() else None,
                        loader=loader)
    config = {"sizes": [f"{w}x{h}" for w, h in cfg.sizes], "batches": list(cfg.batches),
              "providers": list(cfg.providers), "frames": cfg.frames, "warmup_frames": cfg.warmup_frames,
              "threads": cfg.threads, "spinning": args.spinning, "mode": "offline (lossless ring, unpaced replay of synthetic frames)"}
    return results, {"config": config, "model": loaded}


def _check_doc(doc_path: Path) -> str:
    if not doc_path.is_file():
        raise ConfigError(f"--update-doc {doc_path}: no such file")
    text = doc_path.read_text(encoding="utf-8")
    if GENERATED_BEGIN not in text or GENERATED_END not in text:
        raise ConfigError(f"{doc_path} has no '{GENERATED_BEGIN}' ... '{GENERATED_END}' block to replace")
    return text


def _update_doc(doc_path: Path, out: Path, document: dict, plots: dict) -> None:
    text = _check_doc(doc_path)
    try:  # image links: relative to the doc's folder
        rel = out.resolve().relative_to(doc_path.resolve().parent)
    except ValueError:
        rel = out.resolve()
    from ..benchmark.report import markdown_report

    markdown = markdown_report(document, plots=plots, title="Measured", level=2)
    body = re.sub(r"!\[([^\]]*)\]\(([^)/]+\.png)\)", lambda m: f"![{m.group(1)}]({(rel / m.group(2)).as_posix()})",
                  markdown)
    start = text.index(GENERATED_BEGIN) + len(GENERATED_BEGIN)
    end = text.index(GENERATED_END)
    doc_path.write_text(text[:start] + "\n" + body.strip() + "\n" + text[end:], encoding="utf-8")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (for the report)."""
    parts = ["rtpose", "benchmark", "--suite", args.suite]
    if args.model:
        parts += ["--model", args.model]
    if args.suite in ("sweep", "all"):
        parts += ["--sizes", args.sizes, "--batch", args.batch, "--providers", args.providers,
                  "--frames", str(args.frames), "--warmup", str(args.warmup)]
        if args.threads:
            parts += ["--threads", str(args.threads)]
        if args.spinning != "off":
            parts += ["--spinning", args.spinning]
    if args.suite in ("latency", "all"):
        if args.tests:
            parts += ["--tests", args.tests]
        if args.dlc_live:
            parts.append("--dlc-live")
        if args.quick:
            parts.append("--quick")
    parts += ["--out", args.out]
    if args.update_doc:
        parts += ["--update-doc", args.update_doc]
    return " ".join(shlex.quote(p) for p in parts)


def main(args: argparse.Namespace) -> int:
    from ..benchmark import report
    from ..benchmark.sysinfo import describe, system_info

    if args.update_doc:
        _check_doc(Path(args.update_doc))  # fail before measuring, not after
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    system = system_info()
    _progress(f"rtpose benchmark on {describe(system)}")
    doc: dict = {"command": command_line(args), "system": system}
    plots: dict[str, str] = {}
    failed = False
    if args.suite in ("sweep", "all"):
        from ..benchmark.plots import write_plots

        if args.model is None:
            from ..models import default_model_path

            default_model_path()  # a clear ModelError now rather than one "skipped" line per combination
        results, meta = run_sweep_from_args(args, out)
        doc.update(meta)
        doc["sweep"] = [r.to_json() for r in results]
        plots = write_plots(results, out)
        failed |= any(r.status == "failed" for r in results) or not any(r.status == "ok" for r in results)
    if args.suite in ("latency", "all"):
        from ..benchmark.latency_suite import OPTIONAL, TESTS, run_suite

        names = tuple(n.strip() for n in args.tests.split(",") if n.strip()) if args.tests else TESTS
        if args.dlc_live:
            names += tuple(n for n in OPTIONAL if n not in names)
        doc["latency"] = run_suite(names, quick=args.quick, model=args.model,
                                   on_start=lambda n: _progress(f"== latency test: {n}"))
        failed |= any(r.get("status") == "failed" for r in doc["latency"].values())
    after = system_info()
    doc["system_after"] = {k: after[k] for k in ("load_average", "busy_processes", "contended")}
    json_path = report.write_json(out / "benchmark.json", doc)
    written = report.read_json(json_path)
    md_path = out / "benchmark.md"
    md_path.write_text(report.markdown_report(written, plots=plots), encoding="utf-8")
    if args.update_doc:
        _update_doc(Path(args.update_doc), out, written, plots)
    _progress(f"wrote {json_path}, {md_path}" + "".join(f", {out / f}" for f in plots.values())
              + (f"; updated {args.update_doc}" if args.update_doc else ""))
    if "sweep" in doc:
        print(report.sweep_table(doc["sweep"]))
    return 1 if failed else 0
