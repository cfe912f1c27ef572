"""Executors: how cells are handed out. One interface, shaped like concurrent.futures:
`map_unordered(fn, items)` yields (item, result), or (item, exception) for an item whose
worker died, in completion order.

`serial` runs cells in this process in grid order. `process` runs them in a local pool of
worker processes with one torch thread each, forked from a fork server that imported the
runner and the installed plugins once (rather than once per worker: those imports are most
of a worker's start-up). `ray` makes each cell a Ray task (one
CPU, plus one GPU for cells that want one when the cluster has GPUs), on a local Ray instance
by default or on an existing cluster (`address`). In every case the artifact cache's per-key
locks make two workers that need the same generator train it once.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib.metadata import entry_points
from multiprocessing import forkserver
from typing import Any, Callable, Iterable, Iterator

from harness.contracts import ConfigError

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
RAY_MISSING = ("the ray executor needs Ray, an optional dependency: pip install 'fairgen-harness[ray]' "
               "(or pip install ray)")


class SerialExecutor:
    def __init__(self, workers: int = 1) -> None:
        self.workers = 1

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for item in items:
            yield item, fn(item)


def _init_worker(environ: dict[str, str] | None = None, cwd: str | None = None, parent: int | None = None) -> None:
    """One torch thread; the caller's environment and folder as they are now (a fork server
    keeps those of the moment it started); and, for a local pool, death with the run: the
    worker is killed when its fork server dies (which dies with the run, see worker_lifeline),
    and ignores Ctrl-C, which the run handles by stopping its workers itself."""
    if parent is not None:
        die_with_parent(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if cwd is not None:
        os.chdir(cwd)


def die_with_parent(run_pid: int | None = None) -> None:
    """Linux: SIGKILL this process when its parent exits, so that a killed run leaves no worker
    training on (and holding memory or a GPU); `run_pid`: exit now if that process is already
    gone (it may have died before this took effect). Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or run_pid is None:
        return
    try:
        os.kill(run_pid, 0)
    except ProcessLookupError:
        os._exit(1)


def _fork_server_context() -> multiprocessing.context.ForkServerContext:
    """Workers forked from a clean server process, not from this one, which may hold threads
    or CUDA. The server preloads the runner and those plugin modules that this process has
    already imported without error (a broken, blocked plugin must not break the server), and
    harness.worker_lifeline, which makes it die with this process; the preload list counts only
    when the server starts, once per process. The server starts with PYTHONSAFEPATH, so that it
    imports the installed harness rather than a `harness` folder in the working directory (a
    `python -c` process, which the server is, puts that folder first on its path)."""
    context = multiprocessing.get_context("forkserver")
    installed = {ep.module for ep in entry_points(group="harness")}
    context.set_forkserver_preload(["harness.worker_lifeline", "harness.runner",
                                    *sorted(m for m in installed if m in sys.modules)])
    saved = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        forkserver.ensure_running()
    finally:
        if saved is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = saved
    return context


class ProcessExecutor:
    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, workers)

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """On Ctrl-C (or when the caller stops early) the cells in flight are stopped at once:
        pending ones cancelled, workers killed; their cells have no record and rerun next time."""
        pool = ProcessPoolExecutor(self.workers, mp_context=_fork_server_context(), initializer=_init_worker,
                                   initargs=(dict(os.environ), os.getcwd(), os.getpid()))
        futures: dict = {}
        finished = False
        try:
            futures = {pool.submit(fn, item): item for item in items}
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except Exception as exc:  # a worker that died (e.g. out of memory) fails only its cell
                    yield futures[future], exc
            finished = True
        finally:
            if not finished:
                _stop(pool, futures)
            pool.shutdown(wait=True, cancel_futures=True)


def _stop(pool: ProcessPoolExecutor, futures: dict) -> None:
    """Cancel the pending calls and kill the workers, with the calls they are running."""
    for future in futures:
        future.cancel()
    # the pool has no public way to stop running calls before Python 3.14 (terminate_workers)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.join(timeout=5)


class RayExecutor:
    """Each item is a Ray task. `wants_gpu(item)` says whether an item should reserve a GPU;
    it gets one when the cluster has any (with device "cuda", a cluster without GPUs is an
    error rather than a hang). A task whose worker process dies is rerun up to `retries` times
    by Ray itself; results travel back to the caller, artifacts go through the shared cache."""

    def __init__(self, workers: int = 2, address: str | None = None, retries: int = 0,
                 wants_gpu: Callable[[Any], bool] | None = None, device: str = "auto") -> None:
        self.workers = max(1, workers)
        self.address = address
        self.retries = max(0, retries)
        self.wants_gpu = wants_gpu or (lambda item: False)
        self.device = device

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        ray = import_ray()
        started_here = self._connect(ray)
        pending: dict[Any, Any] = {}
        try:
            cluster_gpus = ray.cluster_resources().get("GPU", 0)
            task = ray.remote(_run_in_ray_worker)
            shared_fn = ray.put(fn)
            for item in items:
                options = {"num_cpus": 1, "num_gpus": self._gpus(item, cluster_gpus), "max_retries": self.retries}
                pending[task.options(**options).remote(shared_fn, item)] = item
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                item = pending.pop(done[0])
                try:
                    yield item, ray.get(done[0])
                except Exception as exc:  # a worker that died, after its retries: fails only its cell
                    yield item, _cause(ray, exc)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Join the running Ray instance or cluster, or start a local one; True if started here."""
        if ray.is_initialized():
            return False
        if self.address:
            try:
                ray.init(address=self.address, logging_level="WARNING")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"could not join the Ray cluster at '{self.address}': {exc}. Start one with "
                                  "`ray start --head`, or leave out --address for a local instance") from exc
        else:
            ray.init(num_cpus=self.workers, include_dashboard=False, logging_level="WARNING")
        return True

    def _gpus(self, item: Any, cluster_gpus: float) -> int:
        if not self.wants_gpu(item):
            return 0
        if cluster_gpus:
            return 1
        if self.device.startswith("cuda"):
            raise ConfigError(f"--device {self.device} was asked for, but the Ray cluster has no GPU; "
                              "run with --device auto or cpu, or join a cluster with GPUs (--address)")
        return 0


def _run_in_ray_worker(fn: Callable[[Any], Any], item: Any) -> Any:
    _init_worker()
    return fn(item)


def _cause(ray: Any, exc: Exception) -> BaseException:
    """The plugin's own exception rather than Ray's wrapper, when there is one."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        return exc.as_instanceof_cause()
    return exc


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(RAY_MISSING) from exc
    return ray


EXECUTORS: dict[str, type] = {"serial": SerialExecutor, "process": ProcessExecutor, "ray": RayExecutor}


def make_executor(name: str, workers: int, *, address: str | None = None, retries: int = 0,
                  wants_gpu: Callable[[Any], bool] | None = None,
                  device: str = "auto") -> SerialExecutor | ProcessExecutor | RayExecutor:
    """The executor `name`; `address`, `retries` (of dead workers), `wants_gpu` and `device`
    concern the ray executor only."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor '{name}'; choose one of {sorted(EXECUTORS)}")
    if name != "ray":
        if address:
            raise ConfigError(f"--address joins a Ray cluster and needs --executor ray (got --executor {name})")
        return EXECUTORS[name](workers)
    import_ray()  # fail before anything runs, with the install hint
    return RayExecutor(workers, address, retries, wants_gpu, device)
