"""Pixel-space diffusion generators (ddpm, medi, cbdm): loss, conditioning, state, shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import ConfigError, ImageSet
from plugins.generators.cbdm import CBDM, cbdm_loss
from plugins.generators.ddpm import ClassConditionalDDPM
from plugins.generators.medi import MeDi

TINY = dict(resolution=8, block_out_channels=[8, 16], norm_num_groups=4, layers_per_block=1, batch_size=8,
            train_steps=2, warmup_steps=1, sample_steps=2, sample_batch_size=3)


def toy_set(n: int = 24, channels: int = 3, height: int = 12, width: int = 10, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(
        images=rng.integers(0, 256, (n, channels, height, width), dtype=np.uint8),
        labels=np.arange(n) % 3,
        attributes={"tone": rng.integers(-1, 2, n), "sex": rng.integers(0, 2, n)},
        label_names=["a", "b", "c"], attribute_vocab={"tone": ["light", "dark"], "sex": ["m", "f"]},
        ids=[f"r{i}" for i in range(n)],
    )


REQUEST = (np.array([0, 1, 2, 2]), {"tone": np.array([0, 1, -1, 1]), "sex": np.array([1, 0, 1, 0])})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fitted(one_torch_thread) -> dict[str, object]:
    """One tiny fitted generator per method (with unlabeled images), shared to keep the file fast."""
    generators = {cls.name: cls(**TINY) for cls in (ClassConditionalDDPM, MeDi, CBDM)}
    for generator in generators.values():
        generator.fit(toy_set(), seed=0, unlabeled=toy_set(n=5, seed=1))
    return generators


# -- CBDM loss ---------------------------------------------------------------------------------------
def test_cbdm_loss_equals_hand_computation_and_stops_gradients_where_the_formula_says():
    g = torch.Generator().manual_seed(0)
    shape = (3, 1, 2, 2)
    eps_y = torch.randn(shape, generator=g, requires_grad=True)
    eps_other = torch.randn(shape, generator=g, requires_grad=True)
    noise = torch.randn(shape, generator=g)
    t = torch.tensor([100, 500, 900])
    is_null = torch.tensor([False, True, False])
    tau, gamma, T = 1.0, 0.25, 1000

    loss = cbdm_loss(eps_y, eps_other, noise, t, T, is_null, tau, gamma)
    loss.backward()

    y, o, e = eps_y.detach().numpy(), eps_other.detach().numpy(), noise.numpy()
    w = tau * np.array([0.1, 0.0, 0.9])  # t / T, zero on the null row
    per_pixel = 4
    rows = [((y[i] - e[i]) ** 2).mean() + w[i] * (1 + gamma) * ((y[i] - o[i]) ** 2).mean() for i in range(3)]
    assert loss.item() == pytest.approx(np.mean(rows), rel=1e-6)
    # d/d eps_y: the denoising term + the first regulariser term (its partner is stopped)
    scale = 2.0 / (3 * per_pixel)
    want_y = scale * ((y - e) + w[:, None, None, None] * (y - o))
    # d/d eps(y'): only the gamma-weighted commitment term reaches it
    want_o = scale * gamma * w[:, None, None, None] * (o - y)
    np.testing.assert_allclose(eps_y.grad.numpy(), want_y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(eps_other.grad.numpy(), want_o, rtol=1e-5, atol=1e-7)
    assert torch.all(eps_other.grad[1] == 0)  # null condition: no regulariser


def test_cbdm_loss_with_gamma_zero_sends_no_gradient_to_the_other_condition():
    eps_y = torch.randn(2, 1, 2, 2, requires_grad=True)
    eps_other = torch.randn(2, 1, 2, 2, requires_grad=True)
    cbdm_loss(eps_y, eps_other, torch.randn(2, 1, 2, 2), torch.tensor([10, 999]), 1000,
              torch.tensor([False, False]), 1.0, 0.0).backward()
    assert torch.all(eps_other.grad == 0) and torch.any(eps_y.grad != 0)


def test_cbdm_cells_and_target_distributions(fitted):
    train, empirical = toy_set(), fitted["cbdm"]
    cells = empirical.encode(train.labels, train.attributes)[:, 0]
    tone = np.where(train.attributes["tone"] < 0, 2, train.attributes["tone"])
    np.testing.assert_array_equal(cells, train.labels * 3 + tone)  # label x (2 tones + unknown)
    counts = np.bincount(cells, minlength=9)
    np.testing.assert_allclose(empirical.target.numpy() / empirical.target.sum().item(), counts / counts.sum())
    uniform = CBDM(**TINY, target="uniform")
    uniform.state = empirical.state
    np.testing.assert_array_equal(uniform.target_distribution(torch.from_numpy(cells)).numpy() > 0,
                                  [1, 1, 0] * 3)  # unknown-tone cells excluded


# -- conditioning ----------------------------------------------------------------------------------
def test_medi_maps_unknown_and_missing_attributes_to_the_unknown_index(fitted):
    medi = fitted["medi"]
    assert [f["size"] for f in medi.state["factors"]] == [3, 3, 3]  # label; tone + unknown; sex + unknown
    cond = medi.encode(np.array([0, 1, 2]), {"tone": np.array([1, -1, 0])})  # sex not requested
    np.testing.assert_array_equal(cond, [[0, 1, 2], [1, 2, 2], [2, 0, 2]])
    with pytest.raises(ValueError, match="codes must be"):
        medi.encode(np.array([0]), {"tone": np.array([2])})


def test_medi_class_balanced_sampler_gives_every_class_equal_mass():
    train = toy_set(n=30).subset(np.r_[np.arange(0, 30, 3), np.arange(1, 30, 3)[:4], [2]])
    weights = MeDi(**TINY).row_weights(train)
    mass = np.bincount(train.labels, weights=weights)
    np.testing.assert_allclose(mass, mass[0])


def test_ddpm_ignores_attributes_and_medi_uses_them(fitted):
    ddpm, medi = fitted["ddpm"], fitted["medi"]
    labels = np.array([1, 1])
    attributes = {"tone": np.array([0, 1]), "sex": np.array([0, 0])}
    assert ddpm.encode(labels, attributes).tolist() == [[1], [1]]
    assert medi.encode(labels, attributes).tolist() == [[1, 0, 0], [1, 1, 0]]


def test_guidance_pair_in_one_forward_equals_two_separate_forwards(fitted, monkeypatch):
    medi = fitted["medi"]
    monkeypatch.setitem(medi.params, "guidance_scale", 3.0)
    x = torch.randn(2, 3, 8, 8)
    cond = torch.from_numpy(medi.encode(*REQUEST)[:2])
    with torch.inference_mode():
        guided = medi._guided_eps(x, torch.tensor(500), cond)
        eps_y = medi.model(x, torch.tensor(500), cond, torch.tensor([False, False]))
        eps_null = medi.model(x, torch.tensor(500), cond, torch.tensor([True, True]))
    torch.testing.assert_close(guided, eps_null + 3.0 * (eps_y - eps_null), rtol=1e-4, atol=1e-5)


def test_guidance_without_a_trained_null_condition_is_refused():
    with pytest.raises(ConfigError, match="p_uncond"):
        MeDi(**TINY, p_uncond=0.0, guidance_scale=2.0).fit(toy_set(), seed=0)


# -- shapes, state, determinism --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ddpm", "medi", "cbdm"])
def test_sample_returns_uint8_images_of_the_training_shape(fitted, name):
    images = fitted[name].sample(*REQUEST, seed=3)
    assert images.dtype == np.uint8 and images.shape == (4, 3, 12, 10)  # trained at 8 px, returned at 12 x 10
    assert {"train_images_per_s", "sample_images_per_s", "train_steps", "train_seconds"} <= set(fitted[name].stats)


def test_grayscale_training_set_gives_grayscale_samples():
    generator = ClassConditionalDDPM(**{**TINY, "train_steps": 1})
    generator.fit(toy_set(channels=1, height=9, width=9), seed=0)
    assert generator.sample(*REQUEST, seed=0).shape == (4, 1, 9, 9)


@pytest.mark.parametrize("name", ["ddpm", "medi", "cbdm"])
def test_save_load_round_trip_gives_identical_samples(fitted, name, tmp_path):
    generator = fitted[name]
    generator.save(tmp_path)
    restored = type(generator)(**TINY)
    restored.load(tmp_path)
    np.testing.assert_array_equal(generator.sample(*REQUEST, seed=5), restored.sample(*REQUEST, seed=5))
    assert restored.state["attribute_vocab"] == {"tone": ["light", "dark"], "sex": ["m", "f"]}


def test_fit_is_deterministic_in_the_seed(fitted):
    again, other = ClassConditionalDDPM(**TINY), ClassConditionalDDPM(**TINY)
    again.fit(toy_set(), seed=0, unlabeled=toy_set(n=5, seed=1))
    other.fit(toy_set(), seed=1, unlabeled=toy_set(n=5, seed=1))
    a, b, c = (g.sample(*REQUEST, seed=0) for g in (fitted["ddpm"], again, other))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_loading_another_generators_state_is_refused(fitted, tmp_path):
    fitted["ddpm"].save(tmp_path)
    with pytest.raises(ConfigError, match="'ddpm'"):
        MeDi(**TINY).load(tmp_path)


def test_generators_are_registered_as_entry_points():
    from harness.registry import Registry

    registry = Registry()
    for cls in (ClassConditionalDDPM, MeDi, CBDM):
        assert registry.get("generator", cls.name).cls is cls
        assert set(cls.configs) == {"cpu", "paper"}
        cls(config="paper")  # every paper value is a known, well-typed parameter
