"""FairDiffusion and skin-diff on the SD fine-tuning path: the method's formulas, state, and smoke runs.

A tiny StableDiffusionPipeline saved with save_pretrained stands in for SD v1-4 / 2.1-base, so
the `paper` code path (a local checkpoint directory, offline) runs here in seconds.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from harness import ConfigError
from harness.registry import Registry
from plugins.datasets.derm import Derm
from plugins.generators.fairdiffusion import (FairDiffusion, decay_sigma, fairness_objective, perturbation_weights,
                                              ucb_maximiser)
from plugins.generators.skindiff import SkinDiff, pick_sources

FAST = dict(resolution=16, train_steps=2, batch_size=4, grad_accum=1, sample_steps=4, sample_batch=64,
            device="cpu", precision="fp32", grad_checkpointing=False, lr_warmup_steps=0)
REQUEST = (np.array([0, 1, 1, 4]), {"skin_tone": np.array([0, 2, 2, 1])})


def fast(checkpoint, **changes):
    return {**FAST, "pretrained": str(checkpoint), **changes}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train():
    return Derm(config="cpu", n_train=60, n_val=10, n_test=15).load(0).train


# -- FairDiffusion: the formulas on fixed draws --------------------------------------------------------
def test_perturbation_weights_and_sigma_decay_match_hand_computation():
    # two attributes: tone (3 groups, sigma entries 0..2) and sex (2 groups, entries 3..4)
    sigma = np.array([0.1, 0.5, 0.9, 0.2, 0.4])
    offsets = np.array([0, 3])
    groups = np.array([[0, 1], [2, 0], [1, -1]])  # row 2: sex unknown
    xi = np.array([[1.0, -2.0], [0.5, 0.25], [-1.0, 3.0]])
    weights = perturbation_weights(sigma, offsets, groups, xi)
    expected = [1 + 0.1 * 1.0 + 0.4 * -2.0,  # tone light, sex group 1
                1 + 0.9 * 0.5 + 0.2 * 0.25,  # tone dark, sex group 0
                1 + 0.5 * -1.0]  # tone medium, unknown sex adds nothing
    np.testing.assert_allclose(weights, expected)

    uniform = np.array([0.0, 1.0, 0.5, 0.2, 0.8])
    np.testing.assert_allclose(decay_sigma(sigma, uniform), [0.095, 0.525, 0.88, 0.2, 0.42])


def test_fairness_objective_is_minus_the_summed_group_loss_ranges():
    loss = np.array([1.0, 3.0, 2.0, 6.0, 4.0])
    groups = np.array([[0, 0], [0, 1], [1, 1], [2, 0], [-1, 1]])
    # tone: means 2 (g0), 2 (g1), 6 (g2) -> range 4; second attribute: means 3.5 (g0), 3 (g1) -> range 0.5
    assert fairness_objective(loss, groups) == pytest.approx(-4.5)
    assert fairness_objective(loss[:2], np.array([[0], [0]])) == 0.0  # one group present: no gap


def test_ucb_step_moves_sigma_toward_the_best_objective():
    rng = np.random.default_rng(0)
    history = rng.uniform(0, 1, (40, 2))
    objective = -((history - np.array([0.2, 0.7])) ** 2).sum(1)
    candidates = rng.uniform(0, 1, (500, 2))
    chosen = ucb_maximiser(history, objective, candidates, beta=0.1, seed=0)
    assert chosen.tolist() in candidates.tolist()
    np.testing.assert_allclose(chosen, [0.2, 0.7], atol=0.1)


def test_fairdiffusion_fit_records_sigma_decay_and_gp_steps(checkpoint, train):
    generator = FairDiffusion(**fast(checkpoint, train_steps=5, window=2))
    generator.fit(train, 0)
    sigmas = [record[0] for record in generator._history]  # the sigma each step used
    assert len(sigmas) == 5 and generator.stats["gp_fits"] == 2  # GP at steps 2 and 4
    rng = np.random.default_rng(0)  # the generator's sigma stream for seed 0
    first = rng.uniform(0, 1, 3)
    np.testing.assert_allclose(sigmas[0], first)
    np.testing.assert_allclose(sigmas[1], 0.95 * first + 0.05 * rng.uniform(0, 1, 3))
    candidates, after = _draws_around_the_gp_step(2048)
    assert sigmas[2].tolist() in candidates.tolist()  # step 2: the UCB maximiser over seeded candidates
    np.testing.assert_allclose(sigmas[3], 0.95 * sigmas[2] + 0.05 * after)
    assert all(record[1] <= 0 for record in generator._history)
    assert set(generator.stats) >= {"sigma_skin_tone_light", "sigma_skin_tone_dark", "final_objective"}


def _draws_around_the_gp_step(n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed-0 stream: sigma0, decay draw at step 1, UCB candidates at step 2, decay draw at step 3."""
    rng = np.random.default_rng(0)
    rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    return rng.uniform(0, 1, (n_candidates, 3)), rng.uniform(0, 1, 3)


def test_fairdiffusion_refuses_an_unknown_fair_attribute(checkpoint, train):
    with pytest.raises(ConfigError, match="fair_attributes"):
        FairDiffusion(**fast(checkpoint, fair_attributes=["sex"])).fit(train, 0)


def test_fairdiffusion_save_load_round_trip(checkpoint, train, tmp_path):
    generator = FairDiffusion(**fast(checkpoint, lr=1e-2))
    generator.fit(train, 0)
    before = generator.sample(*REQUEST, seed=3)
    generator.save(tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["sigma"] == generator.sigma.tolist() and state["fair_attributes"] == ["skin_tone"]
    loaded = FairDiffusion(**fast(checkpoint))
    loaded.load(tmp_path)
    np.testing.assert_array_equal(loaded.sample(*REQUEST, seed=3), before)


# -- skin-diff -----------------------------------------------------------------------------------------
def test_pick_sources_retargets_majority_images_and_reuses_each_source():
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    tones = np.array([0, 0, 2, 0, 0, 1, 0])  # tone 0 is the majority
    requested = np.array([0] * 6 + [1] * 2 + [2])
    requested_tones = np.array([2] * 6 + [1] * 2 + [0])
    rows = pick_sources(labels, tones, requested, requested_tones, "majority", 3, np.random.default_rng(0))
    assert set(rows[:6]) <= {0, 1, 3} and len(set(rows[:3])) == 1 and len(set(rows[3:6])) == 1  # 3 per source
    assert set(rows[6:8]) <= {4, 6}
    assert rows[8] in range(7)  # a class without training images falls back to any image
    same = pick_sources(labels, tones, requested, requested_tones, "same", 3, np.random.default_rng(0))
    assert set(same[:6]) == {2} and set(same[6:8]) == {5}


def test_skindiff_learns_class_tokens_with_distinct_ids(checkpoint, train):
    saved = StableDiffusionPipeline.from_pretrained(checkpoint, local_files_only=True)
    generator = SkinDiff(**fast(checkpoint, lora_rank=0, lr=1e-2, train_steps=3))
    generator.fit(train, 0)
    tokenizer, encoder = generator.pipe.tokenizer, generator.pipe.text_encoder
    ids = tokenizer.convert_tokens_to_ids(generator.class_tokens)
    assert generator.class_tokens[1] == "<melanoma>" and len(set(ids)) == 5 and min(ids) >= len(saved.tokenizer)
    assert tokenizer.tokenize("An image of <melanoma> on")[-4:] == ["f</w>", "<melanoma>", "o", "n</w>"]
    weight = encoder.get_input_embeddings().weight
    original = saved.text_encoder.get_input_embeddings().weight
    assert torch.equal(weight[:len(original)], original)  # only the new rows moved
    init = original[tokenizer("skin", add_special_tokens=False).input_ids].mean(0)
    assert all(not torch.allclose(weight[i], init) for i in ids)  # each class token was trained
    assert generator.prompt_book.prompts(*REQUEST)[1] == "An image of <melanoma> on the skin of dark individual"


def test_skindiff_paper_config_builds_from_a_local_checkpoint_offline_with_lora(checkpoint, train, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    generator = SkinDiff(config="paper", **fast(checkpoint, precision="fp16"))
    p = generator.params
    assert (p["lora_rank"], p["strength"], p["guidance_scale"], p["images_per_source"]) == (8, 0.5, 2.0, 5)
    generator.fit(train, 0)
    assert getattr(generator.pipe.unet, "peft_config", None) and generator.stats["lora"] == 1.0
    images = generator.sample(*REQUEST, seed=1)
    assert images.shape == (4,) + train.image_shape and images.dtype == np.uint8
    generator.save(tmp_path)
    assert (tmp_path / "sources.safetensors").exists() and not list(tmp_path.rglob("*.bin"))
    loaded = SkinDiff(config="paper", **fast(checkpoint, precision="fp16"))
    loaded.load(tmp_path)
    assert loaded.pipe.tokenizer.convert_tokens_to_ids("<melanoma>") == \
        generator.pipe.tokenizer.convert_tokens_to_ids("<melanoma>")
    np.testing.assert_array_equal(loaded.sample(*REQUEST, seed=1), images)


def test_later_generators_are_registered():
    names = {info.name for info in Registry().all() if info.kind == "generator"}
    assert {"fairdiffusion", "skindiff"} <= names
