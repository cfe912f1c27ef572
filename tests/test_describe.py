"""`harness describe`: per-group / per-class counts before and after a scenario."""
from __future__ import annotations

import pytest

from harness.cli import main
from harness.contracts import ConfigError
from harness.describe import dataset_overview, describe
from plugins.datasets.derm import Derm
from plugins.datasets.histo import Histo


def test_counts_before_and_after_cap_match_the_data():
    dataset = Derm(n_train=1000, n_val=50, n_test=90, resolution=16)
    text = describe(dataset, "cap100", seed=0)
    train = dataset.load(0).train
    tones = train.attributes["skin_tone"]
    medium_psoriasis = int(((tones == 1) & (train.labels == 0)).sum())
    assert "800 of 1000 kept" in text
    medium_row = [line for line in text.splitlines() if line.startswith("medium") and "/" in line][0]
    assert medium_row.split()[-1] == "100/300" and medium_row.split()[1].endswith(f"/{medium_psoriasis}")
    assert "removed_per_group: {'light': 0, 'medium': 200, 'dark': 0}" in text


def test_unknown_scenario_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'cap100'"):
        describe(Derm(n_train=100, n_val=10, n_test=30, resolution=16), "cap10")


def test_cli_describe_prints_the_table(capsys):
    code = main(["describe", "histo", "--scenario", "one_site_per_class", "--param", "n_train=300",
                 "--param", "n_val=30", "--param", "n_test=60", "--param", "resolution=16"])
    out = capsys.readouterr().out
    assert code == 0 and "site_per_class" in out and "hospital_a" in out


def test_cli_describe_missing_real_data_is_a_clear_error(capsys, tmp_path):
    assert main(["describe", "covid", "--root", str(tmp_path / "nowhere")]) == 2
    assert "Get it from" in capsys.readouterr().err


def test_overview_lists_attributes_classes_and_scenarios():
    text = dataset_overview([Derm, Histo])
    assert "skin_tone" in text and "melanoma" in text and "one_site_per_class" in text
