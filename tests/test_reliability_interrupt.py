"""Interrupted runs and damaged files: a run killed with SIGKILL at seeded random points resumes
to the records of an uninterrupted run, no partial artifact is ever visible under its final
name, and every kind of damage to the cache or to results.jsonl is detected and recomputed."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import harness.cache
from harness import records
from harness.cache import META, Cache
from harness.grid import load_grid
from harness.runner import run_grid

from conftest import TOY_PLUGINS
from reliability_support import PLUGIN_FILES, TEST_PLUGIN_CELLS, TEST_PLUGIN_GRID, builtin_entry_points, comparable, run_command

KINDS = ("splits", "train", "generator", "synthetic", "predictions")


def _run(grid_path: Path, out: Path, cache: Path):
    return run_grid(load_grid(str(grid_path)), out, cache, plugin_files=[str(TOY_PLUGINS)])


# -- the cache, one artifact at a time -------------------------------------------------------
def _two_files(tmp: Path) -> dict:
    (tmp / "a.bin").write_bytes(bytes(range(256)) * 40)
    (tmp / "sub").mkdir()
    (tmp / "sub" / "b.json").write_text(json.dumps({"value": 42}))
    return {"n": 2}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))


def _foreign_meta(artifact: Path) -> None:
    meta = json.loads((artifact / META).read_text())
    meta["key"] = "somebody-else"
    (artifact / META).write_text(json.dumps(meta))


def _contents(artifact: Path) -> dict:
    """The artifact's files; meta.json without its wall-clock compute time, which differs per build."""
    files = {p.relative_to(artifact): p.read_bytes() for p in artifact.rglob("*") if p.is_file() and p.name != META}
    meta = json.loads((artifact / META).read_text())
    meta.pop("compute_s")
    return {**files, META: meta}


#: damage -> (how, what the warning must say)
DAMAGE = {
    "truncated file": (lambda a: _truncate(a / "a.bin"), "checksum mismatch in a.bin"),
    "flipped byte": (lambda a: _flip_byte(a / "sub" / "b.json"), "checksum mismatch in sub/b.json"),
    "missing meta.json": (lambda a: (a / META).unlink(), "no meta.json"),
    "truncated meta.json": (lambda a: _truncate(a / META), "JSONDecodeError"),
    "meta.json of another artifact": (_foreign_meta, "belongs to artifact somebody-else"),
    "missing file": (lambda a: (a / "a.bin").unlink(), "FileNotFoundError"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_artifact_is_reported_and_recomputed(tmp_path, capsys, damage):
    cache, calls = Cache(tmp_path), []
    compute = lambda tmp: calls.append(1) or _two_files(tmp)  # noqa: E731
    path, _ = cache.get_or_compute("kind", "key1", compute)
    original = _contents(path)
    how, reason = DAMAGE[damage]
    how(path)
    assert Cache.verify(path)[0] is None and path.exists()  # verifying alone changes nothing
    path, meta = cache.get_or_compute("kind", "key1", compute)
    assert len(calls) == 2 and cache.misses == 2
    err = capsys.readouterr().err
    assert f"cache artifact {path} is corrupted" in err and reason in err and "recomputing" in err
    assert Cache.verify(path)[0] == meta
    assert _contents(path) == original
    assert [p.name for p in path.parent.iterdir()] == ["key1"]  # the damaged copy is gone


def test_a_sound_artifact_is_read_not_recomputed(tmp_path):
    cache, calls = Cache(tmp_path), []
    cache.get_or_compute("kind", "key1", lambda tmp: calls.append(1) or _two_files(tmp))
    _, meta = cache.get_or_compute("kind", "key1", lambda tmp: calls.append(1) or _two_files(tmp))
    assert calls == [1] and cache.hits == 1 and meta["info"] == {"n": 2}


def test_a_stale_build_directory_of_a_killed_process_is_never_read_and_is_removed(tmp_path):
    cache = Cache(tmp_path)
    stale = tmp_path / "kind" / f"{harness.cache.TMP_PREFIX}key1-99999-deadbeef"
    stale.mkdir(parents=True)
    (stale / "a.bin").write_bytes(b"half of a file")
    (stale / META).write_text("{}")
    other = tmp_path / "kind" / f"{harness.cache.TMP_PREFIX}key2-99999-deadbeef"  # another key's: not ours to judge
    other.mkdir()
    path, _ = cache.get_or_compute("kind", "key1", _two_files)
    assert (path / "a.bin").read_bytes() == bytes(range(256)) * 40
    assert not stale.exists() and other.exists()


def test_a_failing_computation_leaves_nothing_behind(tmp_path):
    cache = Cache(tmp_path)

    def half_then_fail(tmp: Path) -> dict:
        (tmp / "a.bin").write_bytes(b"partial")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        cache.get_or_compute("kind", "key1", half_then_fail)
    assert list((tmp_path / "kind").iterdir()) == []
    path, _ = cache.get_or_compute("kind", "key1", _two_files)
    assert Cache.verify(path)[0] is not None


# -- damage to a real run's cache and records -------------------------------------------------
def test_each_damaged_stage_artifact_is_detected_on_the_next_run(tiny_grid, tmp_path, capsys):
    """The acceptance check: a hand-corrupted cache file is detected and recomputed, for every stage."""
    reference = _run(tiny_grid, tmp_path / "run", tmp_path / "cache")
    damages = [lambda a: _truncate(next(p for p in a.iterdir() if p.name != META)),
               lambda a: _flip_byte(next(p for p in a.rglob("*") if p.is_file() and p.name != META)),
               lambda a: (a / META).unlink(), lambda a: _truncate(a / META), _foreign_meta]
    damaged = []
    for kind, damage in zip(KINDS, damages):
        artifact = sorted((tmp_path / "cache" / kind).iterdir())[0]
        damage(artifact)
        damaged.append(artifact)
    capsys.readouterr()
    again = _run(tiny_grid, tmp_path / "run2", tmp_path / "cache")
    err = capsys.readouterr().err
    assert again.failed == []
    for artifact in damaged:
        assert f"cache artifact {artifact} is corrupted" in err
        assert Cache.verify(artifact)[0] is not None
    assert comparable(records.load(again.run_dir)) == comparable(records.load(reference.run_dir))


def test_a_cut_or_garbled_results_line_is_recomputed(tiny_grid, tmp_path, capsys):
    reference = _run(tiny_grid, tmp_path / "run", tmp_path / "cache")
    path = reference.run_dir / records.RESULTS
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = b"42\n"  # valid JSON, not a record
    lines[5] = lines[5][:40] + b"\x00\xff not UTF-8\n"
    lines[-1] = lines[-1][: len(lines[-1]) // 2]  # a killed run's last line, without its newline
    path.write_bytes(b"".join(lines))
    capsys.readouterr()
    resumed = _run(tiny_grid, reference.run_dir, tmp_path / "cache")
    assert "is not a complete record" in capsys.readouterr().err
    assert resumed.computed == 3 and resumed.reused == reference.cells - 3
    fresh = _run(tiny_grid, tmp_path / "fresh", tmp_path / "cache-fresh")
    assert comparable(records.load(resumed.run_dir)) == comparable(records.load(fresh.run_dir))


def test_appending_after_a_cut_line_keeps_the_new_record(tmp_path):
    (tmp_path / records.RESULTS).write_text('{"cell_key": "a"}\n{"cell_key": "b", "sta')
    records.append(tmp_path, [{"cell_key": "c"}])
    assert [r["cell_key"] for r in records.load(tmp_path)] == ["a", "c"]


# -- kill -9 at seeded random points ----------------------------------------------------------
#: runs the CLI and SIGKILLs itself at the KILL_AT-th "point": a rename, an fsync or a checksum
#: (cache build or verification), i.e. just before a file becomes visible, just after its bytes
#: are written, or in the middle of building or reading an artifact
KILL_DRIVER = r"""
import os, signal, sys
import harness.cache as cache
kill_at, calls = int(os.environ["KILL_AT"]), [0]
def point(fn):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapped
os.replace, os.fsync, cache.file_sha256 = point(os.replace), point(os.fsync), point(cache.file_sha256)
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""
#: a longer soak: RELIABILITY_KILLS=30 RELIABILITY_SEED=7 pytest tests/test_reliability_interrupt.py -k random_points
KILL_SEED = int(os.environ.get("RELIABILITY_SEED", 20240611))
KILLS_WANTED = int(os.environ.get("RELIABILITY_KILLS", 5))


def _count_points(monkeypatch, grid: Path, tmp_path: Path):
    """An uninterrupted in-process run that counts the kill points it passes."""
    calls = [0]

    def counted(fn):
        def wrapped(*args, **kwargs):
            calls[0] += 1
            return fn(*args, **kwargs)
        return wrapped

    with monkeypatch.context() as m:
        m.setattr(os, "replace", counted(os.replace))
        m.setattr(os, "fsync", counted(os.fsync))
        m.setattr(harness.cache, "file_sha256", counted(harness.cache.file_sha256))
        summary = run_grid(load_grid(str(grid)), tmp_path / "reference", tmp_path / "cache-reference",
                           plugin_files=PLUGIN_FILES, blocked=builtin_entry_points())
    return summary, calls[0]


def _assert_nothing_partial_is_visible(cache: Path, out: Path) -> None:
    for kind in KINDS:
        for artifact in (cache / kind).glob("[!.]*") if (cache / kind).is_dir() else []:
            meta, problem = Cache.verify(artifact)
            assert meta is not None, f"partial artifact visible: {artifact}: {problem}"
    if (out / records.RESULTS).is_file():
        lines = (out / records.RESULTS).read_text().splitlines()
        assert all(isinstance(json.loads(line), dict) for line in lines)  # appends are whole lines


def test_runs_killed_at_random_points_resume_to_the_uninterrupted_records(tmp_path, monkeypatch):
    grid = tmp_path / "grid.toml"
    grid.write_text(TEST_PLUGIN_GRID)
    reference, total_points = _count_points(monkeypatch, grid, tmp_path)
    assert reference.failed == [] and reference.cells == TEST_PLUGIN_CELLS
    out, cache = tmp_path / "run", tmp_path / "cache"
    command = run_command(grid, out, cache, python=[sys.executable, "-c", KILL_DRIVER])
    rng, kill_points = random.Random(KILL_SEED), []
    while len(kill_points) < KILLS_WANTED:
        done = sum(r["status"] == "ok" for r in records.load(out))
        remaining = max(2, int(total_points * (1 - done / reference.cells)))  # points a resumed run still passes
        kill_at = rng.randint(1, remaining)
        proc = subprocess.run(command, env={**os.environ, "KILL_AT": str(kill_at)}, capture_output=True, timeout=300)
        if proc.returncode == 0:
            break  # finished before reaching the point
        assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
        kill_points.append(kill_at)
        _assert_nothing_partial_is_visible(cache, out)
    print(f"{total_points} kill points in an uninterrupted run; killed at {kill_points}")
    assert len(kill_points) >= KILLS_WANTED - 1, kill_points
    final = subprocess.run(command, env={**os.environ, "KILL_AT": "0"}, capture_output=True, timeout=300)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert comparable(records.load(out)) == comparable(records.load(reference.run_dir))
    assert not list(cache.rglob(".tmp-*")) and not list(cache.rglob(".corrupt-*"))  # every killed build was cleaned
