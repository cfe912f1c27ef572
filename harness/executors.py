"""Executors: how cells are handed out. One interface, shaped like concurrent.futures.

`serial` runs cells in this process in grid order. `process` runs them in a local pool of
spawned worker processes with one torch thread each; the artifact cache's per-key locks make
two workers that need the same generator train it once.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterable, Iterator


class SerialExecutor:
    def __init__(self, workers: int = 1) -> None:
        self.workers = 1

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for item in items:
            yield item, fn(item)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


class ProcessExecutor:
    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, workers)

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            try:
                for future in as_completed(futures):
                    try:
                        yield futures[future], future.result()
                    except Exception as exc:  # a worker that died (e.g. out of memory) fails only its cell
                        yield futures[future], exc
            finally:
                for future in futures:
                    future.cancel()


EXECUTORS: dict[str, type] = {"serial": SerialExecutor, "process": ProcessExecutor}


def make_executor(name: str, workers: int) -> SerialExecutor | ProcessExecutor:
    if name not in EXECUTORS:
        from harness.contracts import ConfigError

        raise ConfigError(f"unknown executor '{name}'; choose one of {sorted(EXECUTORS)}")
    return EXECUTORS[name](workers)
