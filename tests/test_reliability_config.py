"""Bad configuration: every mistake in a grid file is a one-line ConfigError that names the file
and the key, found before anything runs; property-based tests (hypothesis) over grid files
check that random documents never fail any other way and that valid ones expand fully."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.contracts import ConfigError
from harness.grid import TOP_KEYS, load_grid, parse_grid
from harness.registry import Registry
from harness.runner import check_grid, run_grid

from reliability_support import PLUGIN_FILES, builtin_entry_points, run_command

BASE = """name = "cfg"
seeds = 1

[[dataset]]
name = "toy"
scenarios = ["natural"]

[[generator]]
name = "noisy_copy"
params = { noise = 10 }

[[sampling]]
strategy = "fair"

[[classifier]]
name = "centroid"
"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(PLUGIN_FILES, builtin_entry_points())


def _error(tmp_path: Path, registry: Registry, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        grid = load_grid(str(path))
        check_grid(grid, registry)
        run_grid(grid, tmp_path / "run", tmp_path / "cache", plugin_files=PLUGIN_FILES, blocked=builtin_entry_points())
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


#: mistake -> (replace this, with this, the message must contain)
MISTAKES = {
    "unknown generator": ('name = "noisy_copy"', 'name = "noisy_cpy"', "Did you mean 'noisy_copy'"),
    "unknown dataset": ('name = "toy"', 'name = "tyo"', "Did you mean 'toy'"),
    "unknown classifier": ('name = "centroid"', 'name = "centriod"', "Did you mean 'centroid'"),
    "unknown parameter": ("noise = 10", "noize = 10", "[[generator]] 'noisy_copy': generator 'noisy_copy': "
                                                      "unknown parameter 'noize'; did you mean 'noise'"),
    "wrong parameter type": ("noise = 10", 'noise = "loud"', "parameter 'noise' expects int, got str 'loud'"),
    "unknown named config": ("noise = 10", 'config = "gpu"', "unknown config 'gpu'"),
    "unknown scenario": ('["natural"]', '["natral"]', "has no scenario 'natral'. Did you mean ['natural']"),
    "unknown top-level key": ("seeds = 1", "seed = 1", "unknown key 'seed'; did you mean 'seeds'"),
    "unknown entry key": ('strategy = "fair"', 'stratgy = "fair"', "unknown key 'sampling[0].stratgy'"),
    "wrong key type": ("seeds = 1", "seeds = 1.5", "key 'seeds' must be int, got float 1.5"),
    "zero seeds": ("seeds = 1", "seeds = 0", "key 'seeds' must be >= 1"),
    "no classifier": ('[[classifier]]\nname = "centroid"\n', "", "needs at least one [[classifier]] entry"),
    "empty scenario list": ('["natural"]', "[]", "dataset[0].scenarios is empty"),
    "single brackets for a list of tables": ("[[classifier]]", "[classifier]", "key 'classifier' must be list, got dict"),
    "scenario that is not a name": ('["natural"]', '[["natural"]]', "scenarios must list scenario names"),
    "proportions that are not numbers": ('strategy = "fair"', 'strategy = "proportions"\nproportions = ["half"]',
                                         "'sampling[0].proportions' must list numbers"),
    "the same sampling twice": ('[[classifier]]', '[[sampling]]\nstrategy = "fair"\n[[classifier]]',
                                "two [[sampling]] entries are the same"),
    "bad split name": ("seeds = 1", 'seeds = 1\nsplits = ["tset"]', "key 'splits' must list"),
    "non-positive ratio": ('strategy = "fair"', 'strategy = "fair"\nratio = 0', "ratio must be > 0"),
    "NaN ratio": ('strategy = "fair"', 'strategy = "fair"\nratio = nan', "ratio must be > 0"),
    "proportions without the proportions strategy": (
        'strategy = "fair"', 'strategy = "fair"\nproportions = [0.5, 0.5]', "`proportions` only applies to strategy"),
    "proportions strategy without proportions": ('strategy = "fair"', 'strategy = "proportions"', "needs `proportions"),
    "min_group_n below 1": ("seeds = 1", "seeds = 1\nmin_group_n = 0", "key 'min_group_n' must be >= 1"),
    "two entries with one label": ('[[classifier]]', '[[classifier]]\nname = "centroid"\n[[classifier]]',
                                   "share the label ['centroid']"),
    "not TOML": ("seeds = 1", "seeds = = 1", "not valid TOML"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_is_a_one_line_error_naming_the_file_and_key(tmp_path, registry, mistake):
    old, new, expected = MISTAKES[mistake]
    assert old in BASE
    message = _error(tmp_path, registry, BASE.replace(old, new, 1))
    assert expected in message, message


def test_an_entry_that_is_not_a_table_is_an_error(tmp_path, registry):
    text = "classifier = [1]\n" + BASE.replace('[[classifier]]\nname = "centroid"\n', "")
    assert "classifier[0] must be a table" in _error(tmp_path, registry, text)


def test_an_only_filter_that_selects_nothing_is_an_error(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(BASE)
    with pytest.raises(ConfigError, match="--only generator=nothing: no generator 'nothing'"):
        run_grid(load_grid(str(path)), tmp_path / "run", tmp_path / "cache", plugin_files=PLUGIN_FILES,
                 blocked=builtin_entry_points(), only={"generator": ["nothing"]})
    with pytest.raises(ConfigError, match="has no cells"):  # each value exists, their combination does not
        run_grid(load_grid(str(path)), tmp_path / "run", tmp_path / "cache", plugin_files=PLUGIN_FILES,
                 blocked=builtin_entry_points(), only={"generator": ["noisy_copy"], "sampling": ["real"]})


def test_the_command_line_reports_config_errors_in_one_line_with_exit_2(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(BASE.replace("noise = 10", "noize = 10"))
    args = run_command(path, tmp_path / "run", tmp_path / "cache")[1:]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {path}") and "did you mean 'noise'" in err
    assert not (tmp_path / "run").exists()  # found before anything ran


def test_a_split_the_dataset_lacks_fails_its_cells_with_a_clear_error(tmp_path):
    """Which splits a dataset has is known only once it is loaded, so the cells fail, clearly."""
    path = tmp_path / "grid.toml"
    path.write_text(BASE.replace("seeds = 1", 'seeds = 1\nsplits = ["test_ood"]'))
    summary = run_grid(load_grid(str(path)), tmp_path / "run", tmp_path / "cache", plugin_files=PLUGIN_FILES,
                       blocked=builtin_entry_points())
    assert summary.failed and len(summary.failed) == summary.cells
    assert all("has no split ['test_ood']" in f["error"] for f in summary.failed)


# -- property-based: random grid documents ---------------------------------------------------
def _toml_string(text: str) -> str:
    escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in text)
    return f'"{escaped}"'


def to_toml_value(value) -> str:
    """The few TOML value forms a grid uses (inline tables and arrays are enough)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(to_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_string(k)} = {to_toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(document: dict) -> str:
    return "".join(f"{_toml_string(k)} = {to_toml_value(v)}\n" for k, v in document.items())


scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
plugin_names = st.sampled_from(["toy", "noisy_copy", "none", "centroid", "faulty_gen", "", "x y"])
entry_keys = st.sampled_from(["name", "label", "params", "scenarios", "strategy", "ratio", "proportions", "nmae"])
random_entries = st.dictionaries(entry_keys, st.one_of(plugin_names, values), max_size=4)
sections = st.one_of(st.lists(random_entries, max_size=3), values)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_parses_or_raises_config_error_only(text):
    try:
        parse_grid(text, "random.toml")
    except ConfigError:
        pass


def _valid_entries(names: list[str], kind: str):
    return st.lists(st.sampled_from(names), min_size=1, max_size=3).map(
        lambda picked: [{"name": n, "label": f"{kind}{i}"} for i, n in enumerate(picked)])


valid_documents = st.fixed_dictionaries({
    "seeds": st.integers(1, 4),
    "dataset": st.lists(st.lists(st.sampled_from(["natural", "cap100", "skew"]), min_size=1, max_size=3, unique=True),
                        min_size=1, max_size=2).map(
        lambda scenario_lists: [{"name": "toy", "label": f"d{i}", "scenarios": s} for i, s in enumerate(scenario_lists)]),
    "generator": _valid_entries(["none", "noisy_copy", "faulty_gen"], "g"),
    "sampling": st.lists(st.fixed_dictionaries({"strategy": st.sampled_from(["fair", "fill", "replicate"]),
                                                "ratio": st.floats(0.1, 4.0)}), min_size=1, max_size=3,
                         unique_by=lambda s: (s["strategy"], s["ratio"])),
    "classifier": _valid_entries(["centroid", "faulty_clf"], "c"),
})


@settings(max_examples=150, deadline=None)
@given(valid_documents)
def test_valid_grids_expand_to_the_product_of_their_axes(document):
    grid = parse_grid(to_toml(document), "valid.toml")
    image_generators = sum(g["name"] != "none" for g in document["generator"])
    real_only = len(document["generator"]) - image_generators
    scenarios = sum(len(d["scenarios"]) for d in document["dataset"])
    expected = (scenarios * (image_generators * len(document["sampling"]) + real_only)
                * len(document["classifier"]) * document["seeds"])
    cells = grid.cells(lambda spec: spec.name != "none")
    assert len(cells) == expected
    assert len({c.key for c in cells}) == expected  # every cell is distinct, so none is silently merged


@st.composite
def mutated_documents(draw) -> dict:
    """A valid grid document with one to three places (a top-level key, an entry, or a key of an
    entry) replaced by a random value, deleted, or given an unknown key."""
    document = draw(valid_documents)
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(TOP_KEYS)))
        entries = document.get(section)
        if isinstance(entries, list) and entries and isinstance(entries[0], dict) and draw(st.booleans()):
            i = draw(st.integers(0, len(entries) - 1))
            if draw(st.booleans()):
                entries[i] = draw(st.one_of(values, random_entries))
            else:
                entries[i] = {**entries[i], draw(entry_keys): draw(st.one_of(plugin_names, values))}
        elif draw(st.booleans()):
            document.pop(section, None)
        else:
            document[section] = draw(st.one_of(sections, values))
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_random_grid_documents_parse_or_raise_config_error_only(document):
    try:
        grid = parse_grid(to_toml(document), "random.toml")
    except ConfigError as exc:  # one line per mistake, each naming the file
        assert all(line.startswith("random.toml: ") for line in str(exc).splitlines()), str(exc)
        return
    assert grid.seeds >= 1 and grid.datasets and grid.generators and grid.classifiers
