"""``rtpose analyze --cluster ADDRESS|local:N``: videos fanned out over Dask distributed workers.

Each video is one task. A worker process loads the model once (kept for the
process's later tasks) and runs exactly what a single-machine run does for a
job (:class:`~rtpose.offline.engine.Analyzer`): the same per-video outputs and
``.status.json``, so skipping finished videos, continuing interrupted ones and
the final summary work unchanged. A worker that dies mid-video (killed, out of
memory, a node lost) has its task rescheduled by the Dask scheduler; the new
attempt finds the ``.partial`` recording and continues after its last complete
chunk, so no row is duplicated or missing.

``local:N`` starts N worker processes on this machine (one thread each; the
model's CPU threads split the usable cores between them). Any other value is
the address of a running scheduler, e.g. one started by ``dask-jobqueue`` on
SLURM/PBS/SGE (docs/offline.md). Needs the ``cluster`` extra.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError, MissingDependencyError, RtposeError
from .engine import AnalyzeOptions, Analyzer
from .inputs import Job

INSTALL_HINT = ("`--cluster` needs Dask distributed: `pip install 'rtpose[cluster]'` (and, to start workers "
                "through SLURM, PBS or SGE, `pip install dask-jobqueue`; see docs/offline.md)")


def import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(INSTALL_HINT) from exc
    return distributed


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the model (the options of ``--model``, ``--providers``, ``--threads``, ``--spinning``)."""

    model: str | None
    providers: tuple[str, ...] | None
    threads: int | None
    spinning: bool


#: Per worker process: the loaded model and its analyzer, by (model spec, options).
_ANALYZERS: dict = {}
#: One video at a time per worker process: its tasks share the loaded model (its buffers are not
#: thread-safe); a worker with several Dask threads queues them here.
_ONE_AT_A_TIME = threading.Lock()


def _analyzer(spec: ModelSpec, options: AnalyzeOptions) -> Analyzer:
    key = (spec, options)
    if key not in _ANALYZERS:
        from ..model import load_model

        model = next((a.model for (s, _), a in _ANALYZERS.items() if s == spec), None)
        if model is None:
            model = load_model(spec.model, providers=list(spec.providers) if spec.providers else None,
                               threads=spec.threads, spinning=spec.spinning)
        _ANALYZERS[key] = Analyzer(model, options)
    return _ANALYZERS[key]


def _run_pipeline(pipeline, *, total_frames=None, finish=None, on_status=None):
    """A worker's run: no status line (worker logs), no signal handling (the scheduler stops workers)."""
    error = None
    try:
        pipeline.run()
    except BaseException as exc:
        error = exc
        raise
    finally:
        if pipeline.summary is not None and finish is not None:
            finish(pipeline.summary, error)
    return pipeline.summary


def analyze_on_worker(job: Job, spec: ModelSpec, options: AnalyzeOptions) -> dict:
    """The task: analyse one job on this worker; returns what the driver reports."""
    with _ONE_AT_A_TIME:
        analyzer = _analyzer(spec, options)
        t0 = time.perf_counter()
        try:
            decision = analyzer.decide(job)
        except RtposeError as exc:
            return {"status": f"failed: {exc}", "error": str(exc), "note": ""}
        analyzer.run(job, decision, run_pipeline=_run_pipeline)
    error = job.result.get("error")
    return {"status": job.status, "note": decision.note if decision.action == "resume" else "",
            "error": str(error) if error is not None else None, "state": job.result.get("state"),
            "frames_written": job.result.get("frames_written"), "processed": job.result.get("processed", 0),
            "seconds": time.perf_counter() - t0,
            "skipped": decision.action == "skip"}


def connect(address: str, *, threads: int | None):
    """A Dask client for ``local:N`` (a new local cluster) or a scheduler address; returns (client, threads
    per model, cluster or None)."""
    distributed = import_distributed()
    if address.startswith("local:"):
        try:
            n = int(address[len("local:"):])
            if n < 1:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--cluster {address}: give local:N with N >= 1 worker processes, or a scheduler "
                              "address such as tcp://10.0.0.5:8786") from None
        from ..model import default_threads

        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
        return distributed.Client(cluster), threads or max(1, default_threads() // n), cluster
    try:
        client = distributed.Client(address, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--cluster {address}: no Dask scheduler answers there ({exc}); start one (docs/offline.md) "
                          "or use --cluster local:N") from exc
    return client, threads, None


def run_on_cluster(address: str, jobs: list[Job], spec: ModelSpec, options: AnalyzeOptions, *,
                   stop_requested: Callable[[], bool], report: Callable[[int, dict], None]) -> bool:
    """Run every job as a task; ``report(job index, result)`` as each ends. Returns False when stopped
    (a stop signal: unfinished tasks are cancelled; their partial results are continued by a rerun)."""
    distributed = import_distributed()
    client, threads, cluster = connect(address, threads=spec.threads)
    spec = dataclasses.replace(spec, threads=threads)
    try:
        futures = {}
        for i, job in enumerate(jobs):  # absolute paths: workers may run elsewhere
            remote = dataclasses.replace(job, files=[f.resolve() for f in job.files], stem=job.stem.resolve())
            futures[client.submit(analyze_on_worker, remote, spec, options, pure=False,
                                  key=f"rtpose-analyze-{i}-{time.time_ns()}")] = i
        pending = set(futures)
        while pending:
            if stop_requested():
                client.cancel(list(pending))
                return False
            try:
                done, pending = distributed.wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for fut in done:
                try:
                    result = fut.result()
                except Exception as exc:  # the task itself failed (e.g. a worker died too often)
                    result = {"status": f"failed: {type(exc).__name__}: {exc}", "error": str(exc)}
                report(futures[fut], result)
        return True
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
