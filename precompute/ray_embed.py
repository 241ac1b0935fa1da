"""`precompute build --ray [ADDRESS]`: the embedding step of a neural modality as Ray Data
`map_batches` over row shards. Each actor (`Embedder`) loads the model once and encodes
whole shards with the same encoder functions as a single-machine build; the shards come
back to the driver in row order and are written into the bundle's memory-mapped
embeddings, so the bundle equals the single-machine one to float tolerance (batches pad
differently). Neighbour search stays on the driver (faiss).

Every node needs this package installed (same environment) and, for image models, the
image folder at the same path. Ray is optional: `pip install 'shopee-explorer[cluster]'`."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from precompute.errors import InputError, one_line

LOCAL = "local"  # --ray without ADDRESS: start a Ray instance on this machine
EXTRA = "pip install 'shopee-explorer[cluster]'"
CONNECT_TIMEOUT_S = 60.0  # a first connection, in a child process (ray.init may hang)
PROBE_TIMEOUT_S = 5.0  # a TCP connect first: an unreachable address fails at once
SHARD_ROWS = 1024  # rows per map_batches call (one shard): about 1.5 MB of 384-d rows
CPUS_PER_ACTOR = 2  # CPU actors: torch threads each


def require_ray() -> None:
    """A one-line error naming the extra when Ray Data is not installed."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError(f"--ray needs Ray Data, which is not installed: {EXTRA}") from None


# ---- the actor ------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What every actor needs to load the model and encode its shards."""

    kind: str  # "text" or "image"
    spec: str
    device: str  # the actor's device: "cpu" or "cuda" (Ray gives it its own GPU)
    batch_size: int
    image_size: int | None = None
    threads: int = 1


class Embedder:
    """A Ray Data callable class: the model is loaded once per actor, in __init__."""

    def __init__(self, job: Job) -> None:
        import torch

        self.job = job
        if job.device == "cpu":
            torch.set_num_threads(max(1, job.threads))
        if job.kind == "text":
            from precompute.text_encoders import load_text_encoder

            self.encoder: Any = load_text_encoder(job.spec, device=job.device)
        else:
            from precompute.image_encoders import load_image_encoder

            self.encoder = load_image_encoder(job.spec, device=job.device,
                                              image_size=job.image_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = np.asarray(batch["row"], np.int64)
        items = list(batch["input"])
        n = len(rows)
        if self.job.kind == "text":
            from precompute.text_encoders import encode_texts

            out = encode_texts(self.encoder, items, batch_size=self.job.batch_size,
                               device=self.job.device, progress=False)
            ok, reason = np.ones(n, bool), np.full(n, "", dtype=object)
        else:
            from precompute.image_encoders import encode_images

            paths = [Path(p) if isinstance(p, str) else None for p in items]
            # CPU actors decode in their own process (parallelism is across actors); a GPU
            # actor keeps its GPU fed with decoding processes of its own
            workers = 0 if self.job.device == "cpu" else min(4, usable_cpus())
            out = encode_images(self.encoder, paths, batch_size=self.job.batch_size,
                                workers=workers, device=self.job.device, progress=False)
            ok, reason = out.present, np.full(n, "", dtype=object)
            for r, why in out.skipped:
                reason[r] = why
        return {"row": rows, "emb": out.emb, "ok": ok, "reason": reason}


# ---- connecting -----------------------------------------------------------------------

_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit)): (.+)$")


def _host_port(address: str) -> tuple[str, int] | None:
    """HOST:PORT of an address to probe; None for 'auto' (Ray finds its own cluster)."""
    if address == "auto":
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"--ray {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port)


def _probe(address: str) -> None:
    where = _host_port(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise InputError(f"--ray {address}: cannot reach the Ray head "
                         f"({exc.strerror or one_line(exc)})") from None


_TRY_CONNECT = """
import sys
import ray
ray.init(address=sys.argv[1], include_dashboard=False, logging_level="ERROR",
         log_to_driver=False)
ray.shutdown()
"""


def _try_connect(address: str) -> None:
    """Connect once in a child process, bounded in time: ray.init has no timeout of its
    own (minutes on a port that is not Ray's), prints its retries to stderr, and a
    connection given up on in a thread would linger in this process."""
    try:
        run = subprocess.run([sys.executable, "-c", _TRY_CONNECT, address],
                             capture_output=True, text=True, timeout=CONNECT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise InputError(f"--ray {address}: no Ray cluster answered within "
                         f"{CONNECT_TIMEOUT_S:g} s") from None
    if run.returncode != 0:
        lines = [ln.strip() for ln in run.stderr.splitlines() if _RAISED.match(ln.strip())]
        why = lines[-1] if lines else f"exit status {run.returncode}"
        raise InputError(f"--ray {address}: could not connect ({why[:300]})")


def _connect(address: str, num_cpus: int) -> None:
    import ray

    quiet = {"include_dashboard": False, "logging_level": logging.ERROR,
             "log_to_driver": False}
    if address == LOCAL:
        try:
            ray.init(address=LOCAL, num_cpus=num_cpus, **quiet)
        except Exception as exc:
            raise InputError(f"--ray: could not start a local Ray ({one_line(exc)})") from None
        return
    _probe(address)
    _try_connect(address)
    try:
        ray.init(address=address, **quiet)
    except Exception as exc:
        raise InputError(f"--ray {address}: could not connect ({one_line(exc)})") from None


@contextlib.contextmanager
def session(address: str, *, num_cpus: int | None = None) -> Iterator[None]:
    """Ray connected for the block: a local instance started here (`LOCAL`, with
    `num_cpus` CPUs, default this machine's) or the cluster at `address`. A session that
    was already connected (by the caller) is used and left connected."""
    require_ray()
    import ray

    if ray.is_initialized():
        yield
        return
    _connect(address, num_cpus or usable_cpus())
    try:
        yield
    finally:
        ray.shutdown()


def usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---- the embedding step ---------------------------------------------------------------


@dataclass
class Embedded:
    present: np.ndarray  # (N,) bool
    skipped: list[tuple[int, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _plan(device: str | None) -> tuple[str, int, dict[str, Any], dict[str, Any]]:
    """The actors' device, how many fit on the cluster's nodes, each one's resources, and
    what the cluster offers."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    cpus = [int(r.get("CPU", 0)) for r in nodes]
    gpus = [int(r.get("GPU", 0)) for r in nodes]
    cluster = {"nodes": len(nodes), "cpus": sum(cpus), "gpus": sum(gpus)}
    cuda = device.startswith("cuda") if device else sum(gpus) > 0
    if cuda:
        if not any(gpus):
            raise InputError(f"--ray with --device {device}: the Ray cluster has no GPU")
        # one GPU (and one CPU, which every node has) per actor; Ray sets
        # CUDA_VISIBLE_DEVICES, so the actor's own GPU is "cuda"
        fit = sum(min(g, c) for g, c in zip(gpus, cpus, strict=True))
        return "cuda", max(1, fit), {"num_gpus": 1, "num_cpus": 1}, cluster
    per = max(1, min(CPUS_PER_ACTOR, max(cpus, default=1)))
    # counted per node: an actor never spans nodes, and one that cannot be placed waits
    return "cpu", max(1, sum(c // per for c in cpus)), {"num_cpus": per}, cluster


def _shards(inputs: Sequence[Any]) -> list[Any]:
    import pandas as pd

    values = [v if isinstance(v, str) else None for v in inputs]  # NaN/None: no input
    return [pd.DataFrame({"row": np.arange(lo, min(lo + SHARD_ROWS, len(values)),
                                           dtype=np.int64),
                          "input": pd.Series(values[lo:lo + SHARD_ROWS], dtype=object)})
            for lo in range(0, len(values), SHARD_ROWS)]


def _failure(address: str, exc: BaseException) -> InputError:
    """One line for a failure on the cluster: what happened and the user-level cause
    (Ray wraps a shard's exception in its own; the original survives only as text)."""
    import ray.exceptions as rx

    what = ("a Ray worker died" if isinstance(exc, rx.RayActorError | rx.WorkerCrashedError)
            else "a shard failed")
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    own = text.split("The above exception was the direct cause")[0]
    raised = [m for ln in own.splitlines() if (m := _RAISED.match(ln.strip()))]
    if raised and "direct cause" in text:
        cause = f"{raised[-1].group(1).rsplit('.', 1)[-1]}: {raised[-1].group(2)}"
    else:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        cause = lines[0] if lines else type(exc).__name__
    return InputError(f"--ray {address}: {what} while embedding; nothing was written "
                      f"({cause[:300]})")


@contextlib.contextmanager
def _quiet_data(progress: bool) -> Iterator[Any]:
    """Rows in order, no Ray progress bars or failure tracebacks on the terminal (the
    build reports one line), restored afterwards."""
    import ray.data

    # Ray deprecates its own defaults (DataContext fields) and keyword remote args
    # (max_restarts has no named replacement yet): not the user's concern
    warnings.simplefilter("ignore", DeprecationWarning)
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    loggers = [logging.getLogger(n) for n in ("ray", "ray.data")]
    levels = [lg.level for lg in loggers]
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield ctx
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def embed(kind: str, spec: str, inputs: Sequence[Any], out: np.ndarray, *,
          address: str = LOCAL, workers: int | None = None, device: str | None = None,
          batch_size: int = 128, image_size: int | None = None,
          progress: bool = True) -> Embedded:
    """Encode `inputs` (titles, or image paths as str/None) on Ray into `out`, a
    zero-filled (N, dim) float32 array (the bundle's memory-mapped embeddings). Rows
    arrive shard by shard in row order. Any failure on the cluster is one InputError;
    the caller's bundle writer then removes everything written so far."""
    import ray.data
    import ray.exceptions as rx

    n = len(inputs)
    with warnings.catch_warnings(), session(address, num_cpus=workers), _quiet_data(progress):
        actor_device, actors, resources, cluster = _plan(device)
        job = Job(kind=kind, spec=spec, device=actor_device, batch_size=batch_size,
                  image_size=image_size, threads=resources["num_cpus"])
        present = np.zeros(n, bool)
        written = np.zeros(n, bool)
        skipped: list[tuple[int, str]] = []
        start = time.perf_counter()
        try:
            # max_restarts=0: Ray Data's default restarts a dead actor forever, so a
            # shard that kills its worker would never end the build
            data = ray.data.from_pandas(_shards(inputs)).map_batches(
                Embedder, fn_constructor_args=(job,), batch_size=SHARD_ROWS,
                batch_format="numpy", concurrency=min(actors, max(1, -(-n // SHARD_ROWS))),
                max_restarts=0, **resources)
            unit = "title" if kind == "text" else "img"
            with tqdm(total=n, desc=f"{kind}s on ray", unit=unit, disable=not progress) as bar:
                for b in data.iter_batches(batch_size=None, batch_format="numpy"):
                    rows = np.asarray(b["row"], np.int64)
                    if written[rows].any():
                        raise InputError(f"--ray {address}: row {int(rows[0])} came back "
                                         "twice")
                    out[rows] = b["emb"]
                    written[rows] = True
                    present[rows] = b["ok"]
                    skipped += [(int(r), str(why)) for r, ok, why
                                in zip(rows, b["ok"], b["reason"], strict=True) if not ok]
                    bar.update(len(rows))
        except rx.RayError as exc:
            raise _failure(address, exc) from None
        seconds = time.perf_counter() - start
    if not written.all():
        raise InputError(f"--ray {address}: {int((~written).sum())} rows never came back "
                         f"(first: row {int(np.flatnonzero(~written)[0])})")
    rate = round(int(present.sum()) / seconds, 2) if seconds > 0 else None
    info = {"device": actor_device, "batch_size": batch_size, "seconds": round(seconds, 3),
            f"{'titles' if kind == 'text' else 'images'}_per_s": rate,
            "ray": {"address": address, "actors": actors, "shard_rows": SHARD_ROWS,
                    **cluster}}
    return Embedded(present=present, skipped=sorted(skipped), info=info)
