"""Grid files: TOML lists of datasets x scenarios x generators x sampling x classifiers x seeds.

    name = "smoke"
    seeds = 2                   # replicates per cell
    generator_seeds = 1         # optional: scenario cuts, generator fits and samples per cell (<= seeds);
                                # the seeds cycle through them (default: one per seed)
    vary_cut = true             # optional: false trains every seed on one scenario cut
    primary_endpoints = ["worst_acc", "gap_acc", "auc_gap"]  # optional: Holm over the run for these
    executor = "process"        # optional defaults for `harness run` (its --executor/--workers win)
    workers = 2
    splits = ["test"]           # real test splits to evaluate
    cas = false                 # also train on synthetic only and report `cas`
    fidelity = false            # FID/KID (overall and per group) of each synthetic set
    feature_extractor = ""      # for fidelity; "" = the machine's default (small CNN on CPU)

    [[dataset]]
    name = "derm"               # plugin name; `label` optional, defaults to the name
    scenarios = ["natural", "cap100"]
    params = { n = 3000 }

    [[generator]]
    name = "oversample"
    params = {}

    [[sampling]]
    strategy = "fair"
    ratio = 1.0                 # or a sweep: ratio = [0.25, 0.5, 1, 2, 4, 8], one sampling per ratio

    [[classifier]]
    name = "small_cnn"

    [[classifier]]              # generator and classifier entries may be restricted to some
    name = "small_cnn"          # datasets and scenarios; classifier entries also to some generators
    label = "small_cnn_gr"
    params = { group_reweighting = "inverse_performance" }
    generators = ["sd", "fairgen"]

Every cell gets seeds derived by hashing its spec (never drawn at random), one per stage so
that a generator trained once serves every classifier and sampling choice.
"""
from __future__ import annotations

import difflib
import json
import re
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.cache import stable_hash
from harness.contracts import ConfigError
from harness.sampling import SamplingSpec

TOP_KEYS = {"name": str, "description": str, "seeds": int, "generator_seeds": int, "executor": str, "workers": int, "splits": list, "cas": bool, "min_group_n": int,
            "fidelity": bool, "feature_extractor": str, "fid_draws": int, "primary_endpoints": list, "vary_cut": bool,
            "dataset": list, "generator": list, "sampling": list, "classifier": list}
PLUGIN_KEYS = {"name": str, "label": str, "params": dict}
DATASET_KEYS = {**PLUGIN_KEYS, "scenarios": list}
#: a generator or classifier entry may be limited to some datasets / scenarios (e.g. ablations),
#: a classifier entry also to some generators (e.g. a reweighted classifier beside the plain one)
RESTRICTED_KEYS = {**PLUGIN_KEYS, "datasets": list, "scenarios": list}
CLASSIFIER_KEYS = {**RESTRICTED_KEYS, "generators": list}
#: a list of ratios is a sweep: one sampling per ratio
SAMPLING_KEYS = {"strategy": str, "ratio": (int, float, list), "proportions": list}
#: a grid name becomes the folder runs/<name>: one path component, no leading dot
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
ONLY_KEYS = ("dataset", "scenario", "generator", "sampling", "classifier")


class ConfigErrors:
    """Collects the config errors of several independent checks, so that one invocation
    reports all of them: `with errors.collect(): check()`, then `errors.raise_if_any()`."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        try:
            yield
        except ConfigError as exc:
            self.messages.extend(str(exc).splitlines())

    def raise_if_any(self) -> None:
        if self.messages:
            raise ConfigError("\n".join(self.messages))


@dataclass(frozen=True)
class PluginSpec:
    kind: str
    name: str
    label: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    #: {"datasets": [labels], "scenarios": [names], "generators": [labels]}: run this entry only
    #: there (not part of the spec)
    restrict: dict = field(default_factory=dict, hash=False, compare=False)

    def runs_on(self, dataset_label: str, scenario: str, generator_label: str | None = None) -> bool:
        return (dataset_label in self.restrict.get("datasets", [dataset_label])
                and scenario in self.restrict.get("scenarios", [scenario])
                and (generator_label is None or generator_label in self.restrict.get("generators", [generator_label])))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "params": self.params}


@dataclass(frozen=True)
class Cell:
    dataset: PluginSpec
    scenario: str
    generator: PluginSpec
    sampling: SamplingSpec | None
    classifier: PluginSpec
    seed_index: int
    generator_seeds: int = 0  # 0: every seed has its own scenario cut, generator fit and samples
    #: digest of what else the cell's records depend on: evaluation settings, plugin versions and
    #: source digests (set by the runner); part of the key, not of the spec
    context: str = ""
    fixed_cut: bool = False  # every seed trains on the scenario cut of replicate 0 (grid key vary_cut = false)

    @property
    def id(self) -> str:
        sampling = self.sampling.label if self.sampling else "real"
        return f"{self.dataset.label}/{self.scenario}/{self.generator.label}/{sampling}/{self.classifier.label}"

    def spec(self) -> dict[str, Any]:
        return {"dataset": self.dataset.as_dict(), "scenario": self.scenario, "generator": self.generator.as_dict(),
                "sampling": self.sampling.as_dict() if self.sampling else None,
                "classifier": self.classifier.as_dict(), "seed_index": self.seed_index,
                **({"generator_seeds": self.generator_seeds} if self.generator_seeds else {}),
                **({"fixed_cut": True} if self.fixed_cut else {})}

    @property
    def key(self) -> str:
        return stable_hash(self.spec(), self.context) if self.context else stable_hash(self.spec())

    # Seeds per stage, derived from exactly what the stage depends on (common random numbers:
    # every generator sees the same skewed split, every method the same classifier seed).
    # With generator_seeds = g, seed i reuses the cut, fit and samples of replicate i mod g, so the
    # seeds beyond g vary only the classifier (a cheaper grid, with a narrower spread).
    def seed(self, stage: str) -> int:
        replicate = self.seed_index
        if self.generator_seeds and stage in ("scenario", "generator", "sampling"):
            replicate = self.seed_index % self.generator_seeds
        if self.fixed_cut and stage == "scenario":
            replicate = 0
        parts: dict[str, Any] = {"dataset": self.dataset.as_dict(), "scenario": self.scenario, "seed_index": replicate}
        if stage in ("generator", "sampling"):
            parts["generator"] = self.generator.as_dict()
        if stage == "sampling":
            parts["sampling"] = self.sampling.as_dict() if self.sampling else None
        if stage == "classifier":
            parts["classifier"] = self.classifier.as_dict()
        return int(stable_hash(stage, parts), 16) % (2**31 - 1)


@dataclass
class Grid:
    name: str
    source: str  # file path or "builtin:NAME"
    text: str
    seeds: int
    splits: list[str]
    cas: bool
    min_group_n: int
    datasets: list[tuple[PluginSpec, list[str]]]
    generators: list[PluginSpec]
    samplings: list[SamplingSpec]
    classifiers: list[PluginSpec]
    fidelity: bool = False  # FID/KID per group of each synthetic set against the real test split
    feature_extractor: str = ""  # "" = the default for this machine (small CNN on CPU)
    fid_draws: int = 3
    generator_seeds: int = 0  # 0: one per seed
    executor: str = "serial"  # defaults for `harness run`; its --executor and --workers override them
    workers: int = 2
    #: metrics whose baseline tests are corrected together over the whole run (the rest: per table)
    primary_endpoints: tuple[str, ...] = ("worst_acc", "gap_acc", "auc_gap")
    vary_cut: bool = True  # False: one scenario cut for all seeds (inference is then conditional on it)

    def cells(self, produces_images: Callable[[PluginSpec], bool],
              only: dict[str, list[str]] | None = None) -> list[Cell]:
        """Expand the grid; generators that produce no images (real-only) get no sampling axis."""
        cells = []
        for dataset, scenarios in self.datasets:
            for scenario in scenarios:
                for generator in self.generators:
                    samplings = self.samplings if produces_images(generator) else [None]
                    for sampling in samplings:
                        for classifier in self.classifiers:
                            for seed_index in range(self.seeds):
                                cell = Cell(dataset, scenario, generator, sampling, classifier, seed_index,
                                            self.generator_seeds, fixed_cut=not self.vary_cut)
                                if _selected(cell, only or {}) and generator.runs_on(dataset.label, scenario) \
                                        and classifier.runs_on(dataset.label, scenario, generator.label):
                                    cells.append(cell)
        return cells


def _selected(cell: Cell, only: dict[str, list[str]]) -> bool:
    values = {"dataset": cell.dataset.label, "scenario": cell.scenario, "generator": cell.generator.label,
              "classifier": cell.classifier.label, "sampling": cell.sampling.label if cell.sampling else "real"}
    return all(values[key] in allowed for key, allowed in only.items())


def parse_only(items: list[str]) -> dict[str, list[str]]:
    """--only dataset=derm --only generator=none,oversample -> {"dataset": [...], ...}"""
    only: dict[str, list[str]] = {}
    errors = ConfigErrors()
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in ONLY_KEYS:
            errors.messages.append(f"--only expects KEY=VALUE[,VALUE] with KEY one of {ONLY_KEYS}, got '{item}'")
            continue
        only.setdefault(key, []).extend(v for v in value.split(",") if v)
    errors.raise_if_any()
    return only


def check_only(grid: Grid, only: dict[str, list[str]]) -> None:
    """Every --only value must name something in the grid: a typo would otherwise just run less."""
    known = {"dataset": [d.label for d, _ in grid.datasets],
             "scenario": list(dict.fromkeys(s for _, names in grid.datasets for s in names)),
             "generator": [g.label for g in grid.generators], "classifier": [c.label for c in grid.classifiers],
             "sampling": [s.label for s in grid.samplings] + ["real"]}
    errors = ConfigErrors()
    for key, values in only.items():
        for value in values:
            if value not in known[key]:
                close = difflib.get_close_matches(value, known[key], n=1)
                hint = f"; did you mean '{close[0]}'?" if close else "."
                errors.messages.append(f"--only {key}={value}: no {key} '{value}' in {grid.source}{hint} "
                                       f"Its {key} values: {known[key]}")
    errors.raise_if_any()


def builtin_grids() -> dict[str, str]:
    folder = resources.files("harness") / "grids"
    return {p.name[:-5]: p.name for p in folder.iterdir() if p.name.endswith(".toml")}


def load_grid(name_or_path: str | None = None) -> Grid:
    """A path to a TOML file, or the name of a grid shipped with the package (default: smoke)."""
    name_or_path = name_or_path or "smoke"
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"grid file not found: {path}")
        return parse_grid(path.read_text(), str(path))
    grids = builtin_grids()
    if name_or_path not in grids:
        close = difflib.get_close_matches(name_or_path, list(grids), n=2)
        hint = f" Did you mean {close}?" if close else ""
        raise ConfigError(f"no grid file '{name_or_path}' and no built-in grid of that name.{hint} Built-in grids: {sorted(grids)}")
    text = (resources.files("harness") / "grids" / grids[name_or_path]).read_text()
    return parse_grid(text, f"builtin:{name_or_path}")


def parse_grid(text: str, source: str = "<grid>") -> Grid:
    """A Grid from TOML text. Mistakes are reported together, one line each, except that text
    that is not TOML, or has unknown or mistyped top-level keys, stops there."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _check_keys(data, TOP_KEYS, source, "")
    errors = ConfigErrors()
    _check_settings(data, source, errors)
    datasets = _entries(data.get("dataset", []), "dataset", source, errors, _dataset_entry)
    generators = _entries(data.get("generator", []), "generator", source, errors, _plugin)
    classifiers = _entries(data.get("classifier", []), "classifier", source, errors, _plugin)
    samplings = [spec for sweep in _entries(data.get("sampling", [{"strategy": "fair", "ratio": 1.0}]), "sampling",
                                            source, errors, _sampling_entry) for spec in sweep]
    errors.raise_if_any()  # the checks across entries below need every entry
    _check_across(datasets, generators, classifiers, samplings, source, errors)
    errors.raise_if_any()
    seeds, generator_seeds = data.get("seeds", 3), data.get("generator_seeds", 0)
    return Grid(_run_name(data, source), source, text, seeds, list(data.get("splits", ["test"])),
                data.get("cas", False), data.get("min_group_n", 10), datasets, generators, samplings, classifiers,
                data.get("fidelity", False), data.get("feature_extractor", ""), data.get("fid_draws", 3),
                # generator_seeds == seeds is the default behaviour: store 0 so cell keys stay as without the key
                generator_seeds if generator_seeds != seeds else 0, data.get("executor", "serial"),
                data.get("workers", 2), tuple(data.get("primary_endpoints", Grid.primary_endpoints)),
                data.get("vary_cut", True))


def _check_settings(data: dict, source: str, errors: ConfigErrors) -> None:
    """The top-level values (their types are already checked)."""
    problems = [f"the grid needs at least one [[{section}]] entry"
                for section in ("dataset", "generator", "classifier") if not data.get(section)]
    seeds = data.get("seeds", 3)
    if seeds < 1:
        problems.append(f"key 'seeds' must be >= 1, got {seeds}")
    if "generator_seeds" in data and not 1 <= data["generator_seeds"] <= seeds:
        problems.append(f"key 'generator_seeds' must be between 1 and seeds ({seeds}), got {data['generator_seeds']}")
    if data.get("executor", "serial") not in ("serial", "process", "ray"):
        problems.append(f"key 'executor' must be 'serial', 'process' or 'ray', got '{data['executor']}'")
    if data.get("workers", 2) < 1:
        problems.append(f"key 'workers' must be >= 1, got {data['workers']}")
    splits = data.get("splits", ["test"])
    if not splits or any(s not in ("test", "test_ood") for s in splits):
        problems.append(f"key 'splits' must list 'test' and/or 'test_ood', got {splits}")
    if data.get("min_group_n", 10) < 1:
        problems.append(f"key 'min_group_n' must be >= 1, got {data['min_group_n']}")
    if data.get("fid_draws", 3) < 1:
        problems.append("key 'fid_draws' must be >= 1")
    if "primary_endpoints" in data:
        from harness.metrics import METRICS  # imported here: parsing a grid needs no metric code otherwise

        allowed = sorted(name for name, metric in METRICS.items() if metric.source == "predictions")
        unknown = [m for m in data["primary_endpoints"] if m not in allowed]
        if not data["primary_endpoints"] or unknown:
            problems.append(f"key 'primary_endpoints' must list prediction metrics, got unknown {unknown or '[]'}; "
                            f"choose from {allowed}")
    with errors.collect():
        _run_name(data, source)
    errors.messages.extend(f"{source}: {problem}" for problem in problems)


def _entries(entries: list, kind: str, source: str, errors: ConfigErrors, parse: Callable) -> list:
    """Each [[kind]] entry parsed; the errors of every entry are collected, not just the first."""
    parsed = []
    for i, entry in enumerate(entries):
        with errors.collect():
            parsed.append(parse(entry, kind, source, f"{kind}[{i}]"))
    return parsed


def _dataset_entry(entry: dict, kind: str, source: str, where: str) -> tuple[PluginSpec, list[str]]:
    _check_keys(entry, DATASET_KEYS, source, where)
    scenarios = entry.get("scenarios", ["natural"])
    if not scenarios:
        raise ConfigError(f"{source}: {where}.scenarios is empty; list at least one scenario")
    if not all(isinstance(name, str) for name in scenarios):
        raise ConfigError(f"{source}: {where}.scenarios must list scenario names (strings), got {scenarios!r}")
    return _plugin(entry, kind, source, where), list(scenarios)


def _sampling_entry(entry: dict, kind: str, source: str, where: str) -> list[SamplingSpec]:
    """One sampling, or one per ratio of a sweep (`ratio = [0.25, 0.5, 1, 2]`)."""
    _check_keys(entry, SAMPLING_KEYS, source, where)
    if not all(_type_ok(p, (int, float)) for p in entry.get("proportions", [])):
        raise ConfigError(f"{source}: key '{where}.proportions' must list numbers, got {entry['proportions']!r}")
    ratios = entry.get("ratio", 1.0)
    if isinstance(ratios, list) and (not ratios or not all(_type_ok(r, (int, float)) for r in ratios)):
        raise ConfigError(f"{source}: key '{where}.ratio' must be a number or a non-empty list of numbers (a "
                          f"sweep), got {ratios!r}")
    try:
        return [SamplingSpec(entry.get("strategy", "fair"), float(ratio), tuple(entry.get("proportions", ())))
                for ratio in (ratios if isinstance(ratios, list) else [ratios])]
    except ConfigError as exc:
        raise ConfigError(f"{source}: {where}: {exc}") from exc


def _check_across(datasets: list, generators: list[PluginSpec], classifiers: list[PluginSpec],
                  samplings: list[SamplingSpec], source: str, errors: ConfigErrors) -> None:
    """Restrictions name entries of the grid; labels and samplings are distinct."""
    known = {"datasets": {d.label for d, _ in datasets}, "scenarios": {s for _, names in datasets for s in names},
             "generators": {g.label for g in generators}}
    for spec in generators + classifiers:
        for key, values in spec.restrict.items():
            unknown = sorted(set(values) - known[key])
            if unknown:
                errors.messages.append(f"{source}: [[{spec.kind}]] '{spec.label}' {key} = {unknown}: not in the "
                                       f"grid's {key} {sorted(known[key])}")
    for kind, specs in (("generator", generators), ("classifier", classifiers), ("dataset", [d for d, _ in datasets])):
        labels = [s.label for s in specs]
        dupes = sorted({l for l in labels if labels.count(l) > 1})
        if dupes:
            errors.messages.append(f"{source}: two [[{kind}]] entries share the label {dupes}; give one a "
                                   "distinct `label`")
    repeated = [s.as_dict() for i, s in enumerate(samplings) if s in samplings[:i]]
    if repeated:
        errors.messages.append(f"{source}: two [[sampling]] entries are the same ({repeated[0]}); remove one")


def _run_name(data: dict, source: str) -> str:
    """The grid's name, which names its run folder runs/<name>: refused when it is not one plain
    path component (an explicit name), made into one (a file name)."""
    if "name" not in data:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).stem).lstrip(".") or "grid"
    name = data["name"]
    if not SAFE_NAME.fullmatch(name):
        raise ConfigError(f"{source}: key 'name' must be a plain folder name (letters, digits, '-', '_', '.'; "
                          f"not starting with '.'), got {name!r}; choose where the run goes with --out")
    return name


def _plugin(entry: dict, kind: str, source: str, where: str) -> PluginSpec:
    allowed = {"dataset": DATASET_KEYS, "generator": RESTRICTED_KEYS, "classifier": CLASSIFIER_KEYS}[kind]
    _check_keys(entry, allowed, source, where)
    if "name" not in entry:
        raise ConfigError(f"{source}: {where} needs a `name` (the {kind} plugin to use)")
    restrict = {} if kind == "dataset" else {k: list(entry[k]) for k in ("datasets", "scenarios", "generators")
                                             if k in entry}
    return PluginSpec(kind, entry["name"], entry.get("label", entry["name"]), dict(entry.get("params", {})), restrict)


def _check_keys(entry: dict, allowed: dict, source: str, where: str) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{source}: {where or 'the grid'} must be a table, e.g. [[{where.split('[')[0]}]] "
                          f"with `name = ...`; got {type(entry).__name__} {entry!r}")
    prefix = f"{where}." if where else ""
    errors = ConfigErrors()
    for key, value in entry.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed keys: {sorted(allowed)}"
            shown = key if key.isprintable() else repr(key)[1:-1]  # one line per error, even for a key with '\n'
            errors.messages.append(f"{source}: unknown key '{prefix}{shown}'{hint}")
        elif not _type_ok(value, allowed[key]):
            expected = allowed[key]
            name = expected.__name__ if isinstance(expected, type) else "number"
            errors.messages.append(f"{source}: key '{prefix}{key}' must be {name}, got {type(value).__name__} "
                                   f"{value!r}")
    errors.raise_if_any()


def _type_ok(value: Any, expected: type | tuple) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    return not isinstance(value, bool) and isinstance(value, expected)


def apply_overrides(grid: Grid, items: list[str]) -> Grid:
    """--param LABEL.KEY=VALUE sets a plugin parameter of the grid entry with that label,
    e.g. --param covid.root=/data/covid-chestxray or --param derm.resolution=16.
    VALUE is read as JSON (numbers, booleans, lists), else taken as a string. The valid items
    are applied even when others are refused (the grid is changed in place), so that later
    checks can still report their own errors."""
    errors = ConfigErrors()
    for item in items:
        with errors.collect():
            _apply_override(grid, item)
    errors.raise_if_any()
    return grid


def _apply_override(grid: Grid, item: str) -> None:
    target, sep, raw = item.partition("=")
    label, dot, key = target.partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"--param expects LABEL.KEY=VALUE (e.g. derm.n_train=1000), got '{item}'")
    value = _parse_value(raw)
    labels = [s.label for s, _ in grid.datasets] + [s.label for s in grid.generators + grid.classifiers]
    if label not in labels:
        close = difflib.get_close_matches(label, labels, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; entries are {labels}"
        raise ConfigError(f"--param {item}: no dataset, generator or classifier labelled '{label}' in {grid.source}{hint}")
    grid.datasets = [(_with_param(spec, key, value) if spec.label == label else spec, scenarios)
                     for spec, scenarios in grid.datasets]
    grid.generators = [_with_param(s, key, value) if s.label == label else s for s in grid.generators]
    grid.classifiers = [_with_param(s, key, value) if s.label == label else s for s in grid.classifiers]


def add_generators(grid: Grid, names: list[str]) -> Grid:
    """--add-generator NAME puts a generator into a grid (e.g. yours into `standard`), on every
    dataset and scenario; use --only to run fewer, and --param NAME.KEY=VALUE for its parameters."""
    for name in names:
        if any(spec.label == name for spec in grid.generators):
            raise ConfigError(f"--add-generator {name}: {grid.source} already has a generator labelled '{name}'")
        grid.generators = [*grid.generators, PluginSpec("generator", name, name)]
    return grid


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _with_param(spec: PluginSpec, key: str, value: Any) -> PluginSpec:
    return replace(spec, params={**spec.params, key: value})
