"""Grid files: parsing, clear errors, expansion and seed derivation."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.contracts import ConfigError
from harness.grid import load_grid, parse_grid, parse_only

from conftest import TINY_GRID


def produces_images(spec):
    return spec.name != "none"


def test_expansion_counts_and_real_only_has_no_sampling_axis():
    grid = parse_grid(TINY_GRID)
    cells = grid.cells(produces_images)
    # 2 scenarios x (none + 2 generators x 1 sampling) x 1 classifier x 2 seeds
    assert len(cells) == 2 * 3 * 2
    assert {c.sampling is None for c in cells if c.generator.name == "none"} == {True}


def test_seeds_are_derived_from_the_spec_not_drawn():
    a = parse_grid(TINY_GRID).cells(produces_images)
    b = parse_grid(TINY_GRID).cells(produces_images)
    assert [c.seed("classifier") for c in a] == [c.seed("classifier") for c in b]
    assert len({c.key for c in a}) == len(a)


def test_stage_seeds_depend_only_on_their_upstream():
    cells = parse_grid(TINY_GRID).cells(produces_images)
    s0 = [c for c in cells if c.scenario == "natural" and c.seed_index == 0]
    # every generator sees the same scenario cut and every method the same classifier seed
    assert len({c.seed("scenario") for c in s0}) == 1
    assert len({c.seed("classifier") for c in s0}) == 1
    assert len({c.seed("generator") for c in s0}) == len(s0)
    seed1 = [c for c in cells if c.scenario == "natural" and c.seed_index == 1]
    assert seed1[0].seed("scenario") != s0[0].seed("scenario")


@pytest.mark.parametrize("text, message", [
    ("seeds = 2\n[[dataset]]\nname='toy'\n[[generator]]\nname='none'\n", "at least one [[classifier]]"),
    (TINY_GRID.replace("seeds = 2", "seedz = 2"), "unknown key 'seedz'; did you mean 'seeds'"),
    (TINY_GRID.replace("seeds = 2", "seeds = 'two'"), "key 'seeds' must be int"),
    (TINY_GRID.replace('strategy = "fair"', 'strategy = "fairest"'), "unknown sampling strategy 'fairest'"),
    (TINY_GRID.replace("ratio = 1.0", "ratio = -1.0"), "ratio must be > 0"),
    ("[[dataset", "not valid TOML"),
])
def test_bad_grid_files_get_one_line_errors_naming_the_key(text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_grid(text, "grid.toml")


def test_only_filters_cells():
    grid = parse_grid(TINY_GRID)
    cells = grid.cells(produces_images, parse_only(["generator=none,oversample", "scenario=natural"]))
    assert {c.generator.name for c in cells} == {"none", "oversample"}
    assert {c.scenario for c in cells} == {"natural"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_only(["generator"])


def test_builtin_grid_is_addressed_by_name():
    grid = load_grid("smoke")
    assert grid.source == "builtin:smoke"
    with pytest.raises(ConfigError, match="Did you mean"):
        load_grid("smok")


def test_param_overrides_set_plugin_parameters_by_label():
    from harness.grid import apply_overrides

    grid = apply_overrides(parse_grid(TINY_GRID, "g.toml"), ["toy.n_train=60", "centroid.temperature=2.5"])
    assert grid.datasets[0][0].params == {"n_train": 60}
    assert grid.classifiers[0].params == {"temperature": 2.5}
    with pytest.raises(ConfigError, match="did you mean 'toy'"):
        apply_overrides(parse_grid(TINY_GRID, "g.toml"), ["tyo.n_train=60"])
    with pytest.raises(ConfigError, match="LABEL.KEY=VALUE"):
        apply_overrides(parse_grid(TINY_GRID, "g.toml"), ["n_train=60"])


def test_an_entry_can_be_limited_to_some_scenarios():
    text = TINY_GRID.replace('name = "oversample"', 'name = "oversample"\nscenarios = ["cap100"]')
    cells = parse_grid(text).cells(produces_images)
    assert {c.scenario for c in cells if c.generator.name == "oversample"} == {"cap100"}
    assert {c.scenario for c in cells if c.generator.name == "noisy_copy"} == {"natural", "cap100"}
    with pytest.raises(ConfigError, match="unknown key 'generator\\[2\\].scenarioz'"):
        parse_grid(TINY_GRID.replace('name = "oversample"', 'name = "oversample"\nscenarioz = ["cap100"]'))
    with pytest.raises(ConfigError, match="not in the grid's scenarios"):
        parse_grid(TINY_GRID.replace('name = "oversample"', 'name = "oversample"\nscenarios = ["cap10"]'))


@pytest.mark.parametrize("name", ["smoke", "standard", "standard-covid", "paper", "sd-family", "ratio-sweep"])
def test_every_shipped_grid_names_real_plugins_parameters_and_scenarios(name):
    from harness.registry import Registry
    from harness.runner import check_grid

    grid = load_grid(name)
    registry = Registry()
    check_grid(grid, registry)
    assert grid.cells(lambda s: registry.get("generator", s.name).cls.produces_images)


def test_generator_seeds_share_one_fit_across_classifier_seeds():
    plain = parse_grid(TINY_GRID.replace("seeds = 2", "seeds = 3")).cells(produces_images)
    shared = parse_grid(TINY_GRID.replace("seeds = 2", "seeds = 3\ngenerator_seeds = 1")).cells(produces_images)
    copies = [c for c in shared if c.scenario == "cap100" and c.generator.name == "noisy_copy"]
    assert [c.seed_index for c in copies] == [0, 1, 2]
    for stage in ("scenario", "generator", "sampling"):
        assert len({c.seed(stage) for c in copies}) == 1, stage
    assert len({c.seed("classifier") for c in copies}) == 3
    # seed 0 is the same experiment either way; the cell keys differ, so records never mix
    assert copies[0].seed("generator") == next(c for c in plain if c.id == copies[0].id).seed("generator")
    assert {c.key for c in shared}.isdisjoint({c.key for c in plain})
    with pytest.raises(ConfigError, match="'generator_seeds' must be between 1 and seeds"):
        parse_grid(TINY_GRID.replace("seeds = 2", "seeds = 2\ngenerator_seeds = 5"))


def test_schedule_starts_every_generator_fit_before_reusing_one():
    from harness.registry import Registry
    from harness.runner import schedule
    registry = Registry(plugin_files=[str(Path(__file__).parent / "fixtures" / "toy_plugins.py")])
    cells = parse_grid(TINY_GRID.replace("seeds = 2", "seeds = 3\ngenerator_seeds = 1")).cells(produces_images)
    ordered = schedule(cells, registry)
    assert sorted(c.key for c in ordered) == sorted(c.key for c in cells)
    fits = [(c.scenario, c.generator.name) for c in ordered if c.generator.name != "none"]
    first_wave = fits[:len(set(fits))]
    assert len(set(first_wave)) == len(first_wave)  # one cell per distinct fit comes first


def test_a_grid_can_set_the_default_executor_and_workers():
    grid = parse_grid(TINY_GRID.replace("seeds = 2", 'seeds = 2\nexecutor = "process"\nworkers = 3'))
    assert (grid.executor, grid.workers) == ("process", 3)
    assert (parse_grid(TINY_GRID).executor, parse_grid(TINY_GRID).workers) == ("serial", 2)
    with pytest.raises(ConfigError, match="'executor' must be"):
        parse_grid(TINY_GRID.replace("seeds = 2", 'seeds = 2\nexecutor = "threads"'))
    assert load_grid("standard").executor == "process"


def test_vary_cut_false_trains_every_seed_on_one_cut_and_keys_the_cells_apart():
    fixed = parse_grid("vary_cut = false\n" + TINY_GRID).cells(produces_images)
    varied = parse_grid(TINY_GRID).cells(produces_images)
    natural = [c for c in fixed if c.scenario == "natural" and c.generator.name == "none"]
    assert len({c.seed("scenario") for c in natural}) == 1
    assert len({c.seed("classifier") for c in natural}) == len(natural)  # the classifier still varies
    assert len({c.seed("scenario") for c in varied if c.scenario == "natural" and c.generator.name == "none"}) > 1
    assert {c.key for c in fixed}.isdisjoint({c.key for c in varied})  # a cached result of the other cut never returns
    assert [c.key for c in parse_grid("vary_cut = true\n" + TINY_GRID).cells(produces_images)] == [c.key for c in varied]


def test_primary_endpoints_default_and_are_checked_against_the_prediction_metrics():
    assert parse_grid(TINY_GRID).primary_endpoints == ("worst_acc", "gap_acc", "auc_gap")
    assert parse_grid('primary_endpoints = ["acc", "eo"]\n' + TINY_GRID).primary_endpoints == ("acc", "eo")
    for bad in ('["acc", "fid"]', '["accuracy"]', "[]"):
        with pytest.raises(ConfigError, match="primary_endpoints"):
            parse_grid(f"primary_endpoints = {bad}\n" + TINY_GRID)
