"""The runner: expands a grid into cells, runs each cell's stages through the cache, and
writes one result record per (cell, seed, split).

A cell's stages, each an artifact keyed by what it depends on:
  splits (dataset) -> skewed train (scenario) -> trained generator -> synthetic set (sampling)
  -> classifier predictions on the real test splits (augmented, and synthetic-only for CAS).
A failing stage fails only its cell: the record names the stage, the plugin and the error,
and the grid goes on.

Every key covers what changes its output: plugin name, version, resolved parameters and source
digest, the core code of the stage (scenario cuts, sampling plans, metrics), upstream keys and
seeds. A cell's key adds the evaluation settings, the metric code and its plugins' versions and
source digests, so changing any of them recomputes the cell's records (from the cache where
the stages themselves did not change). A cell is done when every split it evaluates
has a record whose predictions files match their checksums.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import math
import os
import resource
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from harness import metrics as metrics_package
from harness import coverage, progress, records
from harness import sampling as sampling_module
from harness import scenarios as scenario_module
from harness.cache import Cache, file_sha256, files_digest, stable_hash, write_json_atomic
from harness.contracts import ConfigError, Dataset, Generator, check_sample_weight
from harness.data import DataError, ImageSet, Splits
from harness.devices import check_device_name, resolve_device, wants_gpu, with_device
from harness.executors import make_executor
from harness.grid import Cell, ConfigErrors, Grid, PluginSpec, check_only
from harness.manifest import build_manifest
from harness.metrics import EvalInput, MetricValue, compute_metrics, group_reports
from harness.metrics.features import default_extractor
from harness.metrics.fidelity import fidelity_report
from harness.registry import Registry
from harness.sampling import plan_requests

#: the dataset is realised once with this seed so every cell shares one test set; replicate
#: seeds vary the scenario cut, the generator and the classifier instead
DATA_SEED = 0
#: digests of the core code that shapes a stage's output (plugin code has its own digest)
SCENARIO_CODE = files_digest([scenario_module.__file__])
SAMPLING_CODE = files_digest([sampling_module.__file__])
METRICS_CODE = files_digest(sorted(Path(metrics_package.__file__).parent.glob("*.py")))


class PluginOutputError(RuntimeError):
    """A plugin returned something that breaks its contract."""


@dataclass(frozen=True)
class RunContext:
    """Everything a worker needs to run a cell; picklable so process workers can receive it."""

    cache_root: str
    run_dir: str
    plugin_files: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("test",)
    cas: bool = False
    min_group_n: int = 10
    fidelity: bool = False
    feature_extractor: str = ""
    fid_draws: int = 3
    device: str = "auto"  # given to plugins that declare a `device` parameter
    retries: int = 0  # times a failed cell is rerun within the run

    def evaluation(self) -> dict[str, Any]:
        """The settings a record's metrics depend on (beyond the cell's spec); part of the cell key."""
        return {"splits": list(self.splits), "cas": self.cas, "min_group_n": self.min_group_n,
                "fidelity": self.fidelity, "feature_extractor": self.feature_extractor, "fid_draws": self.fid_draws,
                "metrics_code": METRICS_CODE}


@dataclass
class RunSummary:
    run_dir: Path
    cells: int
    computed: int
    reused: int
    failed: list[dict] = field(default_factory=list)
    cache_misses: int = 0
    wall_s: float = 0.0


_REGISTRIES: dict[tuple, Registry] = {}


def _registry(ctx: RunContext) -> Registry:
    # the files' contents are in the key: an edited plugin file is loaded again, not served stale
    contents = tuple(file_sha256(Path(p)) if Path(p).is_file() else "" for p in ctx.plugin_files)
    key = (ctx.plugin_files, ctx.blocked, contents)
    if key not in _REGISTRIES:
        _REGISTRIES[key] = Registry(ctx.plugin_files, ctx.blocked)
    return _REGISTRIES[key]


# -- the run ---------------------------------------------------------------------------------
def run_grid(grid: Grid, run_dir: Path, cache_dir: Path, executor: str = "serial", workers: int = 2,
             plugin_files: list[str] = (), blocked: list[str] = (), only: dict | None = None,
             exit_on_error: bool = False, device: str = "auto", retries: int = 0,
             address: str | None = None) -> RunSummary:
    started = time.perf_counter()
    check_device_name(device)
    if device.startswith("cuda") and executor != "ray":
        resolve_device(device)  # no GPU here: fail now, not once per cell
    extractor = (grid.feature_extractor or default_extractor()) if grid.fidelity else ""
    # absolute paths: workers (on other nodes, with --executor ray) must find the same folders
    ctx = RunContext(str(Path(cache_dir).resolve()), str(Path(run_dir).resolve()),
                     tuple(str(Path(p).resolve()) for p in plugin_files), tuple(blocked),
                     tuple(grid.splits), grid.cas, grid.min_group_n, grid.fidelity, extractor, grid.fid_draws,
                     device, max(0, retries))
    registry = _registry(ctx)
    cells = _with_context(plan_cells(grid, registry, only), ctx, registry)
    run_dir = Path(run_dir)
    (run_dir / records.PREDICTIONS).mkdir(parents=True, exist_ok=True)
    run_lock = FileLock(str(run_dir / ".run.lock"))
    try:
        run_lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"another `harness run` is writing {run_dir}; wait for it to finish or use another --out")
    try:
        return _run_cells(grid, run_dir, cache_dir, ctx, registry, cells, executor, workers, only, exit_on_error,
                          device, retries, address, started)
    finally:
        run_lock.release()


def _keyed_cells(grid: Grid, ctx: RunContext, registry: Registry) -> list[Cell]:
    """Every cell of the grid (--only aside), keyed with its context (cell_context)."""
    produces_images = lambda spec: registry.get("generator", spec.name).cls.produces_images  # noqa: E731
    return _with_context(grid.cells(produces_images), ctx, registry)


def _with_context(cells: list[Cell], ctx: RunContext, registry: Registry) -> list[Cell]:
    return [dataclasses.replace(cell, context=cell_context(cell, ctx, registry)) for cell in cells]


def cell_context(cell: Cell, ctx: RunContext, registry: Registry) -> str:
    """What a cell's records depend on beyond its spec: the evaluation settings and the version and
    source digest of its three plugins (so an edited plugin's cells are recomputed on resume)."""
    plugins = [(info.name, info.version, info.source_digest) for info in
               (registry.get(kind, spec.name) for kind, spec in
                (("dataset", cell.dataset), ("generator", cell.generator), ("classifier", cell.classifier)))]
    return stable_hash(ctx.evaluation(), plugins)


def schedule(cells: list[Cell], registry: Registry) -> list[Cell]:
    """Order cells for parallel workers: first one cell per generator fit (so that workers train
    different generators instead of one waiting on another's cache lock), then the cells without
    a fit, then the cells that reuse a fit. Grid order within each wave; results do not depend on it."""
    seen: set[str] = set()
    waves: tuple[list[Cell], list[Cell], list[Cell]] = ([], [], [])
    for cell in cells:
        if not registry.get("generator", cell.generator.name).cls.produces_images:
            waves[1].append(cell)
            continue
        fit = stable_hash(cell.dataset.as_dict(), cell.scenario, cell.generator.as_dict(), cell.seed("generator"))
        waves[0 if fit not in seen else 2].append(cell)
        seen.add(fit)
    return [cell for wave in waves for cell in wave]


def _run_cells(grid: Grid, run_dir: Path, cache_dir: Path, ctx: RunContext, registry: Registry, cells: list[Cell],
               executor: str, workers: int, only: dict | None, exit_on_error: bool, device: str, retries: int,
               address: str | None, started: float) -> RunSummary:
    manifest = build_manifest(
        grid.source, grid.text, [{"kind": p.kind, "name": p.name, "version": p.version, "origin": p.origin,
                                  "source_digest": p.source_digest} for p in registry.all()],
        {"executor": executor, "workers": workers, "cache": str(cache_dir), "only": only or {},
         "device": device, "retries": retries, "address": address})
    manifest["cells"] = coverage.planned(cells, grid.splits)  # so tables can say which cells are missing
    write_json_atomic(run_dir / records.MANIFEST, manifest)

    grid_keys = {stable_hash(cell.spec()): cell.key for cell in _keyed_cells(grid, ctx, registry)}  # --only aside
    kept = _finished_records(run_dir, records.load(run_dir), ctx.splits, grid_keys)
    done = {r["cell_key"] for r in kept}
    todo = schedule([c for c in cells if c.key not in done], registry)
    summary = RunSummary(run_dir, len(cells), 0, len(cells) - len(todo))
    if summary.reused:
        progress.info(f"resuming: {summary.reused} of {len(cells)} cells already in {run_dir / records.RESULTS}")
    records.rewrite(run_dir, kept)

    pool = make_executor(executor, workers, address=address, retries=retries, device=device,
                         wants_gpu=partial(cell_wants_gpu, registry=registry, device=device))
    bar = progress.bar(len(todo), desc=grid.name)
    results = pool.map_unordered(partial(run_cell_retrying, ctx=ctx), todo)
    try:
        for cell, result in results:
            if isinstance(result, BaseException):
                result = [failure_record(cell, "worker", "", result)]
            records.append(run_dir, result)
            kept.extend(result)
            summary.computed += 1
            bar.set_postfix_str(cell.id + f" #s{cell.seed_index}", refresh=False)
            bar.update(1)
            if result and result[0]["status"] == "failed":
                summary.failed.append(result[0])
                progress.warn(f"cell {cell.id} seed {cell.seed_index} failed: {result[0]['error']}")
                if exit_on_error:
                    break
    finally:
        results.close()  # stops the cells still in flight (Ctrl-C, --exit-on-error) before the records are final
        bar.close()
        order = {c.key: i for i, c in enumerate(cells)}
        kept.sort(key=lambda r: (order.get(r["cell_key"], len(order)), r["cell_key"], r.get("split") or ""))
        records.rewrite(run_dir, kept)
    summary.wall_s = time.perf_counter() - started
    return summary


def _finished_records(run_dir: Path, existing: list[dict], splits: tuple[str, ...],
                      grid_keys: dict[str, str]) -> list[dict]:
    """The records to keep: cells that are done, i.e. every evaluated split has an ok record whose
    predictions files exist and match their checksums. Failed cells are retried; a cell with a
    missing split or a damaged predictions file is recomputed (from the cache, which restores it).
    A record of a grid cell (grid_keys: spec hash -> key in this run) made with other plugin code
    or evaluation settings is dropped, so old and new results are never pooled; records of cells
    outside the grid are kept."""
    by_cell: dict[str, list[dict]] = {}
    stale = 0
    for r in existing:
        if r.get("status") != "ok":
            continue
        if grid_keys.get(stable_hash(r["spec"]), r["cell_key"]) != r["cell_key"]:
            stale += 1
            continue
        by_cell.setdefault(r["cell_key"], []).append(r)
    if stale:
        progress.info(f"{stale} records in {run_dir / records.RESULTS} were made with other plugin code or "
                      f"evaluation settings; their cells are recomputed")
    kept = []
    for key, rows in by_cell.items():
        problems = [p for p in (records.predictions_problem(run_dir, r) for r in rows) if p]
        if problems:
            progress.warn(f"{problems[0]}; recomputing cell {rows[0]['cell_id']} seed {rows[0]['seed_index']}")
        elif set(splits) <= {r["split"] for r in rows}:
            kept += rows
    return kept


def check_grid(grid: Grid, registry: Registry, only: dict | None = None) -> None:
    """Resolve every plugin, parameter and scenario, and every --only value, before anything
    runs, so config errors surface at once (all of them, one line each, with the grid file
    and key), not hours into a run."""
    errors = ConfigErrors()

    def resolve(spec: PluginSpec, where: str) -> Any:
        try:
            info = registry.get(spec.kind, spec.name)
            info.cls.resolve_params(spec.params)
            return info
        except ConfigError as exc:
            errors.messages.append(f"{grid.source}: [[{where}]] '{spec.label}': {exc}")
            return None

    for dataset_spec, scenarios in grid.datasets:
        info = resolve(dataset_spec, "dataset")
        if info is None:
            continue
        with errors.collect():
            known = info.cls(**dataset_spec.params).scenarios()
            for name in scenarios:
                if name not in known:
                    close = difflib.get_close_matches(name, list(known), n=2)
                    hint = f" Did you mean {close}?" if close else ""
                    errors.messages.append(f"{grid.source}: dataset '{dataset_spec.label}' has no scenario "
                                           f"'{name}'.{hint} Its scenarios: {sorted(known)}")
    for spec in grid.generators:
        resolve(spec, "generator")
    for spec in grid.classifiers:
        resolve(spec, "classifier")
    with errors.collect():
        check_only(grid, only or {})
    errors.raise_if_any()


def plan_cells(grid: Grid, registry: Registry, only: dict | None = None) -> list[Cell]:
    """The cells a run of `grid` (after --only) would compute, after every check a run makes."""
    check_grid(grid, registry, only)
    cells = grid.cells(lambda spec: registry.get("generator", spec.name).cls.produces_images, only)
    if not cells:
        raise ConfigError(f"{grid.source}: the grid (after --only filters) has no cells")
    return cells


# -- one cell --------------------------------------------------------------------------------
def run_cell(cell: Cell, ctx: RunContext) -> list[dict]:
    stage, plugin = "setup", ""
    try:
        registry = _registry(ctx)
        cache = Cache(ctx.cache_root)
        stage, plugin = "dataset", f"dataset '{cell.dataset.name}'"
        dataset: Dataset = _create(registry, "dataset", cell.dataset, ctx.device)
        identities = {"dataset": _identity(registry, dataset)}
        splits_key, splits = _splits(cache, dataset, identities["dataset"])
        stage = "scenario"
        train_key, train, scenario_report = _scenario(cache, dataset, splits_key, splits, cell)
        generator_info: dict[str, Any] = {}
        synthetic_key, synthetic, real_weights = None, None, None
        stage, plugin = "generator fit", f"generator '{cell.generator.name}'"
        generator: Generator = _create(registry, "generator", cell.generator, ctx.device)
        identities["generator"] = _identity(registry, generator)
        if generator.produces_images:
            generator_key, generator_info = _fit_generator(cache, generator, identities["generator"], train_key,
                                                           train, splits, cell)
            stage = "generator sample"
            synthetic_key, synthetic, sample_info = _synthesise(cache, registry, cell, generator_key, train,
                                                                dataset.primary_attribute, ctx.device)
            generator_info = {**generator_info, **sample_info}
        else:
            stage = "generator sample_weight"
            real_weights = generator.sample_weight(train, cell.seed("generator"))
            if real_weights is not None:
                real_weights = check_sample_weight(real_weights, len(train), f"generator '{cell.generator.name}'")
        stage, plugin = "classifier", f"classifier '{cell.classifier.name}'"
        augmented = train if synthetic is None else train.concat(synthetic)
        # unweighted cells keep the key they had: the weights' digest joins it only when there are weights
        upstream = (train_key, synthetic_key) if real_weights is None else (train_key, stable_hash(real_weights.tolist()))
        predictions = _predict(cache, registry, cell, "augmented", upstream, augmented, splits, ctx, real_weights)
        cas_predictions = None
        if ctx.cas and synthetic is not None:
            stage = "classifier (synthetic only, for CAS)"
            cas_predictions = _predict(cache, registry, cell, "cas", (synthetic_key,), synthetic, splits, ctx)
        fidelity = {}
        if ctx.fidelity and synthetic is not None:
            stage, plugin = "fidelity", ""
            fidelity = _fidelity(cache, ctx, cell, synthetic_key, splits_key, splits, train, synthetic,
                                 dataset.primary_attribute)
        stage, plugin = "metrics", ""
        missing = [name for name in ctx.splits if name not in splits.test_splits()]
        if missing:
            raise DataError(f"dataset '{dataset.name}' has no split {missing}; the grid's `splits` may only list "
                            f"{sorted(splits.test_splits())}")
        identities["classifier"] = predictions["__info__"]["classifier"]
        return _records(cell, ctx, dataset, splits, train, synthetic, predictions, cas_predictions,
                        {"splits": splits_key, "train": train_key, "synthetic": synthetic_key},
                        scenario_report, generator_info, fidelity, identities)
    except (Exception, SystemExit) as exc:  # one cell's failure (even a plugin's sys.exit) must not stop the grid
        return [failure_record(cell, stage, plugin, exc)]


@contextlib.contextmanager
def plugin_cache_env(cache_root: str):
    """HARNESS_CACHE names the run's --cache while a cell runs, so plugin-side caches (frozen
    features, resized real images) live beside the run's artifacts in every executor."""
    previous = os.environ.get("HARNESS_CACHE")
    os.environ["HARNESS_CACHE"] = cache_root
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HARNESS_CACHE", None)
        else:
            os.environ["HARNESS_CACHE"] = previous


def run_cell_retrying(cell: Cell, ctx: RunContext) -> list[dict]:
    """run_cell, rerun up to ctx.retries times while it fails (for transient failures such as a
    GPU out of memory); the last attempt's records are kept, with `attempts` when it took more."""
    for attempt in range(1, ctx.retries + 2):
        with plugin_cache_env(ctx.cache_root):
            result = run_cell(cell, ctx)
        if result[0]["status"] == "ok":
            break
        if attempt <= ctx.retries:
            progress.warn(f"cell {cell.id} seed {cell.seed_index} failed, retry {attempt} of {ctx.retries}: "
                          f"{result[0]['error']}")
    if attempt > 1:
        for row in result:
            row["attempts"] = attempt
    return result


def cell_wants_gpu(cell: Cell, registry: Registry, device: str) -> bool:
    """Whether the cell should reserve a GPU on a scheduler (some plugin of it takes a device)."""
    specs = (("dataset", cell.dataset), ("generator", cell.generator), ("classifier", cell.classifier))
    return wants_gpu([registry.get(kind, spec.name).cls for kind, spec in specs], device)


def _create(registry: Registry, kind: str, spec: PluginSpec, device: str) -> Any:
    """The plugin, with the run's device when it takes one and the grid did not set it."""
    return registry.create(kind, spec.name, with_device(registry.get(kind, spec.name).cls, spec.params, device))


def failure_record(cell: Cell, stage: str, plugin: str, exc: BaseException) -> dict:
    who = f"{plugin} " if plugin else ""
    return records.Record(cell.id, cell.key, cell.seed_index, None, "failed", cell.spec(), stage=stage,
                          error=f"{who}failed in stage '{stage}': {type(exc).__name__}: {exc}",
                          traceback="".join(traceback.format_exception(exc))[-4000:]).to_dict()


def _identity(registry: Registry, plugin: Any) -> dict[str, Any]:
    """What a record says about a plugin: name, version, resolved parameters, source digest."""
    return {"name": plugin.name, "version": plugin.version, "params": plugin.params,
            "source_digest": registry.get(plugin.kind, plugin.name).source_digest}


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _splits(cache: Cache, dataset: Dataset, identity: dict) -> tuple[str, Splits]:
    key = stable_hash("splits", identity, DATA_SEED, dataset.data_digest())

    def compute(tmp: Path) -> dict:
        splits = dataset.load(DATA_SEED)
        if not isinstance(splits, Splits):
            raise PluginOutputError(f"load() must return harness.Splits, got {type(splits).__name__}")
        splits.validate(f"dataset '{dataset.name}'")
        for name, split in splits.items():
            split.save(tmp / f"{name}.npz")
        return {"sizes": {name: len(split) for name, split in splits.items()}}

    path, meta = cache.get_or_compute("splits", key, compute)
    return key, Splits(**{name: ImageSet.load(path / f"{name}.npz") for name in meta["info"]["sizes"]})


def _scenario(cache: Cache, dataset: Dataset, splits_key: str, splits: Splits, cell: Cell):
    scenario = dataset.scenarios()[cell.scenario]
    seed = cell.seed("scenario")
    key = stable_hash("scenario", splits_key, cell.scenario, scenario.spec, seed, SCENARIO_CODE)

    def compute(tmp: Path) -> dict:
        train, report = scenario.apply(splits.train, seed)
        if len(train) == 0:
            raise DataError(f"scenario '{cell.scenario}' removed every training sample")
        train.save(tmp / "train.npz")
        return {"report": report}

    path, meta = cache.get_or_compute("train", key, compute)
    return key, ImageSet.load(path / "train.npz"), meta["info"]["report"]


def _fit_generator(cache: Cache, generator: Generator, identity: dict, train_key: str, train: ImageSet,
                   splits: Splits, cell: Cell) -> tuple[str, dict]:
    seed = cell.seed("generator")
    key = stable_hash("generator", train_key, identity, seed)

    def compute(tmp: Path) -> dict:
        generator.stats = {}
        started = time.perf_counter()
        generator.fit(train, seed, splits.unlabeled)
        fit_s = time.perf_counter() - started
        (tmp / "state").mkdir()
        generator.save(tmp / "state")
        return {"fit_s": round(fit_s, 3), "peak_rss_mb": _peak_rss_mb(), "stats": dict(generator.stats)}

    _, meta = cache.get_or_compute("generator", key, compute)
    return key, {"generator_key": key, "fit_s": meta["info"]["fit_s"], "fit_peak_rss_mb": meta["info"]["peak_rss_mb"],
                 "fit_stats": meta["info"]["stats"]}


def _synthesise(cache: Cache, registry: Registry, cell: Cell, generator_key: str, train: ImageSet,
                attribute: str, device: str = "auto") -> tuple[str, ImageSet, dict]:
    seed = cell.seed("sampling")
    key = stable_hash("synthetic", generator_key, cell.sampling.as_dict(), seed, SAMPLING_CODE)

    def compute(tmp: Path) -> dict:
        generator: Generator = _create(registry, "generator", cell.generator, device)
        generator.stats = {}
        generator.load(cache.path("generator", generator_key) / "state")
        labels, attributes = plan_requests(train, attribute, cell.sampling, seed)
        started = time.perf_counter()
        images = generator.sample(labels, attributes, seed)
        sample_s = time.perf_counter() - started
        _check_images(images, len(labels), train.image_shape)
        ids = np.array([f"syn-{key[:8]}-{i}" for i in range(len(labels))])
        synthetic = ImageSet(images, labels, attributes, train.label_names, train.attribute_vocab, ids,
                             np.full(len(labels), f"synthetic:{cell.generator.label}"))
        synthetic.save(tmp / "synthetic.npz")
        return {"sample_s": round(sample_s, 3), "images_per_s": round(len(labels) / max(sample_s, 1e-9), 2),
                "stats": dict(generator.stats)}

    path, meta = cache.get_or_compute("synthetic", key, compute)
    info = meta["info"]
    return key, ImageSet.load(path / "synthetic.npz"), {
        "synthetic_key": key, "sample_s": info["sample_s"], "sample_images_per_s": info["images_per_s"],
        "sample_stats": info["stats"]}


def _check_images(images: Any, n: int, shape: tuple[int, int, int]) -> None:
    if not isinstance(images, np.ndarray):
        raise PluginOutputError(f"sample() must return a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise PluginOutputError(f"sample() must return uint8 images, got dtype {images.dtype}")
    if images.shape != (n, *shape):
        raise PluginOutputError(f"sample() returned images of shape {images.shape}; expected {(n, *shape)} "
                                f"({n} requested rows, training images {shape})")


def _predict(cache: Cache, registry: Registry, cell: Cell, mode: str, upstream: tuple, train: ImageSet,
             splits: Splits, ctx: RunContext, sample_weight: np.ndarray | None = None) -> dict[str, np.ndarray]:
    classifier_cls = registry.get("classifier", cell.classifier.name).cls
    # a method may ask something of the downstream classifier (Generator.classifier_params); it
    # applies where the classifier takes that parameter and the grid did not set it
    asked = registry.get("generator", cell.generator.name).cls.classifier_params
    extra = {k: v for k, v in asked.items() if k in classifier_cls.defaults and k not in cell.classifier.params}
    spec = PluginSpec("classifier", cell.classifier.name, cell.classifier.label, {**cell.classifier.params, **extra})
    classifier = _create(registry, "classifier", spec, ctx.device)
    seed = cell.seed("classifier")
    eval_splits = {name: s for name, s in splits.test_splits().items() if name in ctx.splits}
    identity = _identity(registry, classifier)
    key = stable_hash("predictions", mode, upstream, identity, seed, sorted(eval_splits))

    def compute(tmp: Path) -> dict:
        started = time.perf_counter()
        classifier.fit(train, splits.val, seed, sample_weight)
        fit_s = time.perf_counter() - started
        for name, split in eval_splits.items():
            proba = classifier.predict_proba(split)
            _check_proba(proba, len(split), train.num_classes, train.multilabel)
            np.save(tmp / f"proba_{name}.npy", np.asarray(proba, dtype=np.float64))
        return {"fit_s": round(fit_s, 3), "peak_rss_mb": _peak_rss_mb(), "n_train": len(train),
                "stats": records.to_json_value(dict(getattr(classifier, "stats", {})))}

    path, meta = cache.get_or_compute("predictions", key, compute)
    out = {name: np.load(path / f"proba_{name}.npy", allow_pickle=False) for name in eval_splits}
    out["__info__"] = {**meta["info"], "predictions_key": key, "classifier": identity}
    return out


def _fidelity(cache: Cache, ctx: RunContext, cell: Cell, synthetic_key: str, splits_key: str, splits: Splits,
              train: ImageSet, synthetic: ImageSet, attribute: str) -> dict[str, dict]:
    """FID/KID of the synthetic set against each evaluated real test split (never the
    generator's own training images, which would reward memorisation)."""
    out = {}
    seed = cell.seed("sampling")
    for name, real in splits.test_splits().items():
        if name not in ctx.splits:
            continue
        key = stable_hash("fidelity", synthetic_key, splits_key, name, ctx.feature_extractor, ctx.fid_draws, seed,
                          ctx.min_group_n, METRICS_CODE)

        def compute(tmp: Path, real: ImageSet = real) -> dict:
            report = fidelity_report(real, synthetic, attribute, ctx.feature_extractor, Path(ctx.cache_root),
                                     ctx.fid_draws, seed, train, ctx.min_group_n)
            write_json_atomic(tmp / "report.json", records.to_json_value(report))
            return {}

        path, _ = cache.get_or_compute("fidelity", key, compute)
        out[name] = json.loads((path / "report.json").read_text())
    return out


def _check_proba(proba: Any, n: int, k: int, multilabel: bool = False) -> None:
    """(N, K) finite probabilities; rows sum to 1 unless labels are multi-hot (one per label)."""
    if not isinstance(proba, np.ndarray):
        raise PluginOutputError(f"predict_proba() must return a numpy array, got {type(proba).__name__}")
    if proba.shape != (n, k):
        raise PluginOutputError(f"predict_proba() returned shape {proba.shape}; expected {(n, k)} (N images, K classes)")
    if not np.all(np.isfinite(proba)):
        raise PluginOutputError(f"predict_proba() returned {int(np.sum(~np.isfinite(proba)))} NaN/inf values")
    if np.any(proba < -1e-6) or np.any(proba > 1 + 1e-6):
        raise PluginOutputError("predict_proba() values must be probabilities in [0, 1]")
    if not multilabel and np.any(np.abs(proba.sum(axis=1) - 1) > 1e-3):
        raise PluginOutputError("predict_proba() rows must be probabilities in [0, 1] that sum to 1")


def _records(cell: Cell, ctx: RunContext, dataset: Dataset, splits: Splits, train: ImageSet,
             synthetic: ImageSet | None, predictions: dict, cas_predictions: dict | None, keys: dict,
             scenario_report: dict, generator_info: dict, fidelity: dict[str, dict],
             identities: dict[str, dict]) -> list[dict]:
    out = []
    attribute = dataset.primary_attribute
    high_risk = tuple(dataset.label_names.index(c) for c in dataset.high_risk_classes if c in dataset.label_names)
    info = predictions["__info__"]
    for split_name in ctx.splits:
        if split_name not in predictions:
            continue
        split = splits.test_splits()[split_name]
        inp = _eval_input(split, predictions[split_name], attribute, ctx.min_group_n, high_risk)
        values = compute_metrics(inp)
        if cas_predictions is not None:
            values.update(compute_metrics(_eval_input(split, cas_predictions[split_name], attribute,
                                                      ctx.min_group_n, high_risk), source="cas"))
        per_group = group_reports(inp, {a: split.group_codes(a) for a in dataset.sensitive_attributes},
                                  split.attribute_vocab)
        if split_name in fidelity:
            report = fidelity[split_name]
            values.update({name: MetricValue(math.nan if v is None else v, report["reasons"].get(name, ""))
                           for name, v in report["metrics"].items()})
        prediction_file, digest = _write_predictions(Path(ctx.run_dir), cell, split_name, "augmented", split,
                                                     predictions[split_name])
        digests = {"augmented": digest}
        if cas_predictions is not None:
            digests["cas"] = _write_predictions(Path(ctx.run_dir), cell, split_name, "cas", split,
                                                cas_predictions[split_name])[1]
        out.append(records.Record(
            cell.id, cell.key, cell.seed_index, split_name, "ok", cell.spec(),
            seeds={stage: cell.seed(stage) for stage in ("scenario", "generator", "sampling", "classifier")},
            replicate=records.replicate(cell.seed_index, cell.generator_seeds, synthetic is not None),
            plugins={**identities, "attribute": attribute, "label_names": dataset.label_names},
            eval={**ctx.evaluation(), "high_risk": list(high_risk), "attribute": attribute},
            metrics={name: v.value for name, v in values.items()},
            nan_reasons={name: v.reason for name, v in values.items() if v.reason},
            per_group=per_group,
            n={"eval": len(split), "train_real": len(train), "train_synthetic": len(synthetic) if synthetic else 0},
            scenario_report=scenario_report,
            artifacts={**keys, "generator": generator_info.get("generator_key"), "predictions": info["predictions_key"]},
            cost={"generator_fit_s": generator_info.get("fit_s"), "sample_s": generator_info.get("sample_s"),
                  "sample_images_per_s": generator_info.get("sample_images_per_s"),
                  "classifier_fit_s": info["fit_s"],
                  "peak_rss_mb": max(info["peak_rss_mb"], generator_info.get("fit_peak_rss_mb") or 0)},
            generator_stats={**generator_info.get("fit_stats", {}), **generator_info.get("sample_stats", {})},
            classifier_stats=info.get("stats"),
            predictions_file=prediction_file, predictions_sha256=digests,
            fidelity={k: fidelity[split_name][k] for k in ("extractor", "n", "draws", "per_group")}
            if split_name in fidelity else None,
        ).to_dict())
    return out


def _eval_input(split: ImageSet, proba: np.ndarray, attribute: str, min_group_n: int, high_risk: tuple) -> EvalInput:
    return EvalInput(split.labels, proba, split.group_codes(attribute), split.attribute_vocab[attribute],
                     min_group_n, high_risk, attribute)


def _write_predictions(run_dir: Path, cell: Cell, split_name: str, mode: str, split: ImageSet,
                       proba: np.ndarray) -> tuple[str, str]:
    """Per-sample predictions, so every metric can be recomputed without retraining: (path, sha256)."""
    relative = records.predictions_filename(cell.key, cell.seed_index, split_name, mode)
    groups = {attr: [split.attribute_vocab[attr][c] if c >= 0 else "unknown" for c in codes]
              for attr, codes in split.attributes.items()}
    return relative, records.write_predictions(run_dir, relative, split.ids, split.labels, proba, groups,
                                               split.provenance)
