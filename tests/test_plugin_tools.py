"""The plugin authors' helpers: uint8 <-> float conversion, grayscale to RGB, resizing, device."""
import numpy as np
import pytest
import torch

from harness import ConfigError
from harness.plugin_tools import as_rgb, resize, resolve_device, to_float, to_uint8

LEVELS = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)


@pytest.mark.parametrize("value_range", [(0, 1), (-1, 1)])
def test_every_uint8_level_survives_a_round_trip_through_float(value_range):
    x = to_float(LEVELS, value_range)
    assert x.dtype == torch.float32
    assert x.min().item() == value_range[0] and x.max().item() == value_range[1]
    assert np.array_equal(to_uint8(x, value_range).numpy(), LEVELS)


def test_arrays_and_tensors_convert_alike_and_out_of_range_floats_are_clamped():
    assert torch.equal(to_float(LEVELS), to_float(torch.from_numpy(LEVELS)))
    assert to_uint8(torch.tensor([-0.5, 0.5, 1.5])).tolist() == [0, 128, 255]
    assert to_uint8(torch.tensor([-3.0, 0.0, 3.0]), (-1, 1)).tolist() == [0, 128, 255]


def test_an_unknown_value_range_is_refused():
    with pytest.raises(ValueError, match=r"use one of \[\(0, 1\), \(-1, 1\)\]"):
        to_float(LEVELS, (0, 255))


def test_grayscale_becomes_rgb_and_resize_keeps_a_matching_size():
    gray = to_float(LEVELS)
    rgb = as_rgb(gray)
    assert rgb.shape == (1, 3, 16, 16) and torch.equal(rgb[:, 2], gray[:, 0])
    assert as_rgb(rgb) is rgb
    assert resize(gray, 16) is gray
    small = resize(gray, (4, 8))
    assert small.shape == (1, 1, 4, 8) and 0 <= small.min() and small.max() <= 1


def test_device_choice_is_the_harness_one():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
