"""The shipped grids for the papers' settings resolve: `harness run GRID --dry-run` lists the cells
each paper's method needs (skin-diff on its no-dark-skin scenarios, Khosravi et al.'s multi-label
supplementation on chest X-rays, the real-data tier), with plugins that accept their data."""
from __future__ import annotations

from harness.cli import main
from harness.grid import load_grid
from harness.registry import Registry


def dry_run(grid: str, capsys) -> list[str]:
    assert main(["run", grid, "--dry-run"]) == 0
    return capsys.readouterr().out.strip().splitlines()


def test_skindiff_runs_on_its_no_dark_skin_scenarios(capsys):
    cells = dry_run("skindiff-derm", capsys)
    for scenario in ("skindiff_none", "skindiff_few8"):
        assert {f"derm/{scenario}/skindiff/fair-1/small_cnn #s{seed}" for seed in range(3)} <= set(cells)
        assert f"derm/{scenario}/none/real/small_cnn #s0" in cells  # the real-only baseline it is tested against


def test_khosravi_supplementation_grid_uses_multi_hot_chest_xrays_and_replicas(capsys):
    cells = dry_run("khosravi-cxr", capsys)
    for generator in ("ddpm", "medi", "oversample"):
        for ratio in (1, 5):
            assert f"cxr/natural/{generator}/replicate-{ratio}/small_cnn #s2" in cells
    grid = load_grid("khosravi-cxr")
    assert [dataset.params for dataset, _ in grid.datasets] == [{"multilabel": True}]
    registry = Registry()
    for spec in grid.generators:  # a single-label generator would fail every cell at run time
        cls = registry.get("generator", spec.name).cls
        assert spec.name in ("none", "oversample") or cls.supports_multilabel, spec.name
    assert {s.strategy for s in grid.samplings} == {"replicate"}  # the other strategies refuse multi-hot labels


def test_standard_real_has_replicates_for_the_significance_test(capsys):
    cells = dry_run("standard-real", capsys)
    grid = load_grid("standard-real")
    assert grid.seeds >= 3
    assert {dataset.name for dataset, _ in grid.datasets} == {"isic2017", "covid"}
    for dataset in ("isic2017", "covid"):
        for classifier in ("small_cnn", "linear_probe"):
            assert f"{dataset}/natural/none/real/{classifier} #s2" in cells
    assert {c.split("/")[2] for c in cells if c.startswith("isic2017/")} >= {"none", "oversample", "ddpm", "medi", "cbdm"}
