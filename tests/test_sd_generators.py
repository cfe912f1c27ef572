"""Stable Diffusion generators (sd, fairgen and ablations): losses, resampling, prompts, state.

A tiny pipeline saved with save_pretrained stands in for SD v1-4, so the `paper` code path
(loading a checkpoint directory offline) runs here in seconds.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from harness import ConfigError
from harness.registry import Registry
from plugins.datasets.derm import Derm
from plugins.generators._sd_parts import PromptBook, check_distinct_ids, write_char_tokenizer
from plugins.generators.fairgen import (FairGen, class_diversity_loss, diffusion_dpo_loss, preference_loss,
                                        resampling_weights)
from plugins.generators.sd import StableDiffusionFinetune

FAST = dict(resolution=16, train_steps=2, batch_size=4, grad_accum=1, sample_steps=3, sample_batch=64,
            device="cpu", precision="fp32", grad_checkpointing=False, lr_warmup_steps=0)


def fast(**changes):
    return {**FAST, **changes}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train():
    return Derm(config="cpu", n_train=90, n_val=10, n_test=15).load(0).train


# -- resampling ------------------------------------------------------------------------------------
def test_cbrs_and_sqrs_weights_on_a_toy_count_table():
    cells = np.array([0] * 1 + [1] * 4 + [2] * 16)  # n_c = 1, 4, 16
    def cell_mass(weights):
        return np.bincount(cells, weights=weights)

    cbrs = resampling_weights(cells, 1.0)
    np.testing.assert_allclose(cbrs[[0, 1, 5]] / cbrs[0], [1, 1 / 4, 1 / 16])  # 1/n_c per row
    np.testing.assert_allclose(cell_mass(cbrs), [1 / 3] * 3)  # every cell equally likely
    sqrs = resampling_weights(cells, 0.5)
    np.testing.assert_allclose(sqrs[[0, 1, 5]] / sqrs[0], [1, 1 / 2, 1 / 4])  # 1/sqrt(n_c)
    np.testing.assert_allclose(cell_mass(sqrs), np.array([1, 2, 4]) / 7)  # mass ~ sqrt(n_c)
    np.testing.assert_allclose(resampling_weights(cells, 0.0), 1 / 21)  # shuffle: uniform rows
    factor = resampling_weights(cells, 1.0, cell_factor=np.array([1.0, 1.0, 2.0]))  # gradient-aware term
    np.testing.assert_allclose(cell_mass(factor), [0.25, 0.25, 0.5])


def test_gradient_aware_weights_favour_cells_with_larger_gradients(checkpoint, train):
    generator = FairGen(**fast(pretrained=str(checkpoint), grad_aware=True, grad_window=2, train_steps=3,
                             diversity_tau=0.0, dpo="none"))
    generator.fit(train, 0)
    weights = generator._row_weights.numpy()
    static = generator._static_weights()
    assert not np.allclose(weights, static) and weights.sum() == pytest.approx(1.0)


# -- losses ----------------------------------------------------------------------------------------
def test_released_dpo_loss_value_and_gradient_sign():
    loss_w = torch.tensor([0.2, 0.5], requires_grad=True)
    loss_l = torch.tensor([0.4, 0.1], requires_grad=True)
    beta = 0.5
    value = preference_loss(loss_w, loss_l, beta)
    expected = -np.mean(np.log(1 / (1 + np.exp(-beta * np.array([0.4 - 0.2, 0.1 - 0.5]))))) + np.mean([0.2, 0.5])
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    assert torch.all(loss_w.grad > 0)  # gradient descent lowers the winner's denoising loss
    assert torch.all(loss_l.grad < 0)  # ... and raises the loser's


def test_diffusion_dpo_loss_value_and_gradient_sign():
    loss_w = torch.tensor([0.30, 0.20], requires_grad=True)
    loss_l = torch.tensor([0.25, 0.40], requires_grad=True)
    ref_w, ref_l = torch.tensor([0.3, 0.3]), torch.tensor([0.3, 0.3])
    value = diffusion_dpo_loss(loss_w, loss_l, ref_w, ref_l, beta=10.0)
    inside = -0.5 * 10.0 * (np.array([0.30 - 0.25, 0.20 - 0.40]) - 0.0)
    assert value.item() == pytest.approx(-np.mean(np.log(1 / (1 + np.exp(-inside)))), rel=1e-6)
    value.backward()
    assert torch.all(loss_w.grad > 0) and torch.all(loss_l.grad < 0)


def test_diversity_loss_matches_the_cbdm_hand_computation():
    """The pixel CBDM test's case (tests/test_diffusion_generators.py): mse + regulariser."""
    g = torch.Generator().manual_seed(0)
    shape = (3, 1, 2, 2)
    eps_y = torch.randn(shape, generator=g, requires_grad=True)
    eps_other = torch.randn(shape, generator=g, requires_grad=True)
    noise = torch.randn(shape, generator=g)
    t = torch.tensor([100, 500, 900])
    active = ~torch.tensor([False, True, False])
    tau, gamma, T = 1.0, 0.25, 1000

    loss = torch.nn.functional.mse_loss(eps_y, noise) + class_diversity_loss(eps_y, eps_other, t, T, active, tau, gamma)
    loss.backward()

    y, o, e = eps_y.detach().numpy(), eps_other.detach().numpy(), noise.numpy()
    w = tau * np.array([0.1, 0.0, 0.9])
    rows = [((y[i] - e[i]) ** 2).mean() + w[i] * (1 + gamma) * ((y[i] - o[i]) ** 2).mean() for i in range(3)]
    assert loss.item() == pytest.approx(np.mean(rows), rel=1e-6)
    scale = 2.0 / (3 * 4)
    np.testing.assert_allclose(eps_y.grad.numpy(), scale * ((y - e) + w[:, None, None, None] * (y - o)), rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(eps_other.grad.numpy(), scale * gamma * w[:, None, None, None] * (o - y), rtol=1e-5,
                               atol=1e-7)


# -- prompts and tokenizer -------------------------------------------------------------------------
def test_fairgen_prompt_templates_for_skin_and_chest(train):
    skin = PromptBook.for_dataset("auto", {}, train.label_names, train.attribute_vocab)
    assert skin.prompts(np.array([1, 0]), {"skin_tone": np.array([2, -1])}) == ["African people melanoma",
                                                                              "people psoriasis"]
    chest = PromptBook.for_dataset("auto", {}, ["no_finding", "effusion"], {"sex": ["female", "male"]})
    assert chest.prompts(np.array([0, 1]), {"sex": np.array([1, 0])}) == ["male no finding", "female effusion"]
    custom = PromptBook.for_dataset("a photo of {label}", {}, train.label_names, train.attribute_vocab)
    assert custom.prompts(np.array([2]), {"skin_tone": np.array([0])}) == ["a photo of nevus"]
    with pytest.raises(ConfigError, match="unknown fields"):
        PromptBook.for_dataset("{sex} {label}", {}, train.label_names, train.attribute_vocab)


def test_char_tokenizer_gives_distinct_ids_for_distinct_prompts(tmp_path, train):
    tokenizer = write_char_tokenizer(tmp_path, 48)
    book = PromptBook.for_dataset("auto", {}, train.label_names, train.attribute_vocab)
    labels, tones = np.meshgrid(np.arange(5), np.arange(3))
    prompts = book.prompts(labels.ravel(), {"skin_tone": tones.ravel()})
    ids = tokenizer(prompts, padding="max_length", max_length=48).input_ids
    assert len({tuple(row) for row in ids}) == len(set(prompts)) == 15
    assert (tmp_path / "vocab.json").read_text().startswith("{") and (tmp_path / "merges.txt").exists()
    check_distinct_ids(tokenizer, prompts)
    short = write_char_tokenizer(tmp_path / "short", 10)  # "african pe..." for every African prompt
    with pytest.raises(ConfigError, match="same token ids"):
        check_distinct_ids(short, prompts)


# -- paper config from a local checkpoint, offline ---------------------------------------------------------
def test_paper_config_builds_from_a_local_checkpoint_offline(checkpoint, train, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    saved = StableDiffusionPipeline.from_pretrained(checkpoint, local_files_only=True)
    generator = StableDiffusionFinetune(config="paper", **fast(pretrained=str(checkpoint), precision="fp16"))
    assert generator.params["lr"] == 1e-5 and generator.params["guidance_scale"] == 7.5
    generator.fit(train, 0)
    pipe = generator.pipe
    for name in ("vae", "text_encoder"):  # frozen parts come from the checkpoint unchanged
        for key, value in getattr(saved, name).state_dict().items():
            assert torch.equal(getattr(pipe, name).state_dict()[key], value), f"{name}.{key}"
    assert any(not torch.equal(value, saved.unet.state_dict()[key]) for key, value in pipe.unet.state_dict().items())
    images = generator.sample(np.array([0, 4]), {"skin_tone": np.array([0, 2])}, seed=0)
    assert images.shape == (2,) + train.image_shape and images.dtype == np.uint8


def test_missing_checkpoint_offline_says_how_to_get_one(monkeypatch, train):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    generator = StableDiffusionFinetune(config="paper", **fast(pretrained="nobody/no-such-model"))
    with pytest.raises(ConfigError, match="local\\s+checkpoint directory"):
        generator.fit(train, 0)


def test_tiny_pipeline_refuses_a_vae_that_does_not_reconstruct(train):
    generator = StableDiffusionFinetune(**fast(vae_steps=2))
    with pytest.raises(RuntimeError, match="did not learn to reconstruct"):
        generator.fit(train, 0)


# -- state -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("lora_rank", [0, 4])
def test_save_load_round_trip_gives_identical_samples(checkpoint, train, tmp_path, lora_rank):
    generator = StableDiffusionFinetune(**fast(pretrained=str(checkpoint), lora_rank=lora_rank, lr=1e-2))
    generator.fit(train, 0)
    request = (np.array([0, 1, 2, 3]), {"skin_tone": np.array([0, 1, 2, 2])})
    before = generator.sample(*request, seed=3)
    generator.save(tmp_path)
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pkl"))
    loaded = StableDiffusionFinetune(**fast(pretrained=str(checkpoint), lora_rank=lora_rank))
    loaded.load(tmp_path)
    np.testing.assert_array_equal(loaded.sample(*request, seed=3), before)
    if lora_rank:
        # the base was saved before adapters: its attention weights are the checkpoint's, not re-initialised
        base = StableDiffusionPipeline.from_pretrained(tmp_path / "base", local_files_only=True).unet.state_dict()
        original = StableDiffusionPipeline.from_pretrained(checkpoint, local_files_only=True).unet.state_dict()
        assert base.keys() == original.keys() and all(torch.equal(base[k], original[k]) for k in base)
        assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").exists()


# -- FairGen ---------------------------------------------------------------------------------------
def test_fairgen_builds_auto_preferences_and_records_them(checkpoint, train, tmp_path):
    generator = FairGen(**fast(pretrained=str(checkpoint), train_steps=2, dpo_start=0.5, auto_pairs_per_cell=1,
                             judge_epochs=1, dpo_batch_size=4))
    generator.fit(train, 0)
    cells = len(set(generator.prompt_book.prompts(train.labels, train.attributes)))
    assert generator.stats["auto_preferences"] == 1.0 and generator.stats["preference_pairs"] == cells
    assert FairGen.classifier_params == {}  # its classifier-side reweighting is the cell's classifier option
    generator.save(tmp_path)
    assert json.loads((tmp_path / "state.json").read_text())["stats"]["auto_preferences"] == 1.0


@pytest.mark.parametrize("dpo", ["released", "diffusion-dpo"])
def test_fairgen_reads_physician_pairs_from_jsonl(checkpoint, train, tmp_path, dpo):
    lines = []
    for i in range(3):
        for side in ("w", "l"):
            Image.fromarray(train.images[2 * i + (side == "l")].transpose(1, 2, 0)).save(tmp_path / f"{i}{side}.png")
        lines.append(json.dumps({"text": "African people melanoma", "image_w": f"{i}w.png", "image_l": f"{i}l.png"}))
    (tmp_path / "physician_preferences.jsonl").write_text("\n".join(lines))
    generator = FairGen(**fast(pretrained=str(checkpoint), dpo=dpo, dpo_start=0.0, dpo_batch_size=4,
                             preferences=str(tmp_path / "physician_preferences.jsonl")))
    generator.fit(train, 0)
    assert generator.stats["auto_preferences"] == 0.0 and generator.stats["preference_pairs"] == 3


def test_ablations_are_registered_with_the_released_settings():
    names = {info.name: info.cls for info in Registry().all() if info.kind == "generator"}
    for name in ("sd", "fairgen", "cbrs", "sqrs", "cbdm-sd", "cbcb"):
        assert name in names
    settings = {name: (names[name].defaults["resampling"], names[name].defaults["diversity_tau"],
                       names[name].defaults["dpo"]) for name in ("cbrs", "sqrs", "cbdm-sd", "cbcb", "fairgen")}
    assert settings == {"cbrs": ("cbrs", 0.0, "none"), "sqrs": ("sqrs", 0.0, "none"),
                        "cbdm-sd": ("shuffle", 1.0, "none"), "cbcb": ("cbrs", 1.0, "none"),
                        "fairgen": ("sqrs", 1.0, "released")}
    assert all(names[n].classifier_params == {} for n in ("fairgen", "cbrs", "sqrs", "cbdm-sd", "cbcb"))


# -- conditioning (slow) ---------------------------------------------------------------------------
@pytest.mark.slow
def test_sd_and_fairgen_samples_follow_their_prompts():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "check_sd_conditioning.py"
    spec = importlib.util.spec_from_file_location("check_sd_conditioning", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = script.check(["sd", "fairgen"])
    for name in ("sd", "fairgen"):
        assert results[name]["class_acc"] > results["chance"]["class_acc"] + 0.1, results[name]
        assert results[name]["tone_acc"] > results["chance"]["tone_acc"] + 0.1, results[name]
