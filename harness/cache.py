"""Content-addressed artifact cache with atomic writes, checksums and per-key locks.

An artifact is a directory named by the hash of everything it depends on. It is built in a
temporary directory, its files' SHA-256 sums are written to meta.json last, and the directory
is renamed into place in one step, so a reader never sees a partial artifact. meta.json carries
a checksum of itself (its `info`, which readers use, included). On read the sums are verified; a
corrupted artifact is reported, removed and recomputed. A process killed
mid-build leaves only a `.tmp-` directory, which is never read and which the next builder of
that key removes. A file lock per key makes two processes sharing a cache compute each
artifact once, and only the lock holder ever removes an artifact.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
from filelock import FileLock

from harness import progress

META = "meta.json"
#: building directories: `.tmp-KEY-PID-RANDOM`, renamed to KEY when complete
TMP_PREFIX = ".tmp-"


def stable_hash(*parts: Any) -> str:
    """Hash of JSON-serialisable parts; equal inputs give equal keys across runs and machines."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def to_json_value(value: Any) -> Any:
    """`value` with what JSON cannot hold made JSON: non-finite floats -> None, numpy -> lists and numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json_value(value.tolist())
    if isinstance(value, np.generic):
        return to_json_value(value.item())
    return value


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(paths) -> str:
    """One digest (20 hex digits) of the contents of some files, independent of their paths and order."""
    digests = sorted(file_sha256(Path(path)) for path in paths)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:20]


class Cache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def get_or_compute(self, kind: str, key: str, compute: Callable[[Path], dict]) -> tuple[Path, dict]:
        """Return (artifact dir, meta). `compute(tmp_dir)` writes files and returns metadata."""
        final = self.path(kind, key)
        meta, _ = self.verify(final)
        if meta is not None:
            self.hits += 1
            return final, meta
        lock_dir = self.root / "locks"
        lock_dir.mkdir(exist_ok=True)
        with FileLock(str(lock_dir / f"{kind}-{key}.lock")):
            # Re-check under the lock: another process may have built it meanwhile. Only the lock
            # holder removes a bad artifact, so no reader loses a good one that was just renamed in.
            meta, problem = self.verify(final)
            if meta is not None:
                self.hits += 1
                return final, meta
            if problem:
                progress.warn(f"cache artifact {final} is corrupted ({problem}); recomputing it")
            self._discard(final, key)
            self.misses += 1
            tmp = final.parent / f"{TMP_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            try:
                started = time.perf_counter()
                info = json.loads(json.dumps(to_json_value(compute(tmp) or {}), default=str))  # as readers see it
                meta = {"kind": kind, "key": key, "info": info, "compute_s": round(time.perf_counter() - started, 3),
                        "files": {p.relative_to(tmp).as_posix(): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}}
                meta["meta_sha256"] = _meta_digest(meta)
                write_json_atomic(tmp / META, meta)
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            return final, meta

    @staticmethod
    def verify(final: Path) -> tuple[dict | None, str]:
        """(meta, "") for a complete artifact whose checksums match; (None, problem) otherwise,
        with problem "" when the artifact simply does not exist. Changes nothing on disk."""
        if not final.exists():
            return None, ""
        meta_path = final / META
        if not meta_path.is_file():
            return None, f"no {META}: an incomplete or tampered artifact"
        try:
            meta = json.loads(meta_path.read_text())
            if meta["key"] != final.name:
                return None, f"{META} belongs to artifact {meta['key']}, not {final.name}"
            if meta.get("meta_sha256") != _meta_digest(meta):
                return None, f"{META} does not match its checksum"
            for name, digest in meta["files"].items():
                if file_sha256(final / name) != digest:
                    return None, f"checksum mismatch in {name}"
            return meta, ""
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _discard(final: Path, key: str) -> None:
        """Remove a bad artifact and the temporary directories of killed builders of this key.
        Called with the key's lock held, so no live process owns any of them."""
        leftovers = list(final.parent.glob(f"{TMP_PREFIX}{key}-*")) if final.parent.is_dir() else []
        if final.exists():
            quarantine = final.parent / f".corrupt-{final.name}-{uuid.uuid4().hex[:6]}"
            os.replace(final, quarantine)
            leftovers.append(quarantine)
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)


def _meta_digest(meta: dict) -> str:
    """Checksum of everything in meta.json but the build time and the checksum itself."""
    checked = {k: v for k, v in meta.items() if k not in ("compute_s", "meta_sha256")}
    return hashlib.sha256(json.dumps(checked, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
