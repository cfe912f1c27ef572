"""Device placement: `--device auto|cpu|cuda` for plugins, mixed precision, and which cells
ask a scheduler (Ray) for a GPU.

A plugin opts in by declaring a `device` parameter with the default "auto" and calling
`resolve_device(self.params["device"])` where it builds its model; the runner then passes the
run's `--device` to it (a `device` set explicitly in the grid file wins). Plugins that declare
no `device` run wherever they are called and never get a GPU reserved for them.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from harness.contracts import ConfigError, PluginBase

DEVICE_CHOICES = ("auto", "cpu", "cuda")
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_device_name(name: str) -> None:
    if name not in DEVICE_CHOICES and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(f"unknown device '{name}'; choose one of {list(DEVICE_CHOICES)} (or cuda:N)")


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when torch sees a GPU, else cpu. Asking for cuda without one is an error
    that says what to do. On CPU, torch is switched to deterministic algorithms so that a cpu
    run repeats bit for bit."""
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' was asked for, but torch {torch.__version__} sees no CUDA GPU "
                          f"(built for CUDA {torch.version.cuda}); run with --device cpu or --device auto, "
                          "or install a CUDA build of torch on this machine")
    device = torch.device(name)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for forward passes where the paper used it: fp16/bf16 autocast on CUDA.
    On CPU it is a no-op, so cpu configs stay fp32 and exact."""
    dtype = _precision_dtype(precision)
    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling, needed for fp16 training only (bf16 has fp32's range); disabled otherwise."""
    enabled = _precision_dtype(precision) is torch.float16 and device.type == "cuda"
    return torch.amp.GradScaler("cuda", enabled=enabled)


def _precision_dtype(precision: str) -> torch.dtype | None:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; choose one of {list(PRECISIONS)}")
    return PRECISIONS[precision]


# -- what the runner and the executors use ---------------------------------------------------
def uses_device(plugin_cls: type[PluginBase]) -> bool:
    return "device" in plugin_cls.defaults


def with_device(plugin_cls: type[PluginBase], params: dict[str, Any], device: str) -> dict[str, Any]:
    """The plugin's params with the run's device added, if the plugin takes one and the grid
    did not set it."""
    if not uses_device(plugin_cls) or "device" in params:
        return params
    return {**params, "device": device}


def wants_gpu(plugin_classes: list[type[PluginBase]], device: str) -> bool:
    """Whether a cell should reserve a GPU: some plugin of it runs on a device, and the run
    does not pin everything to the CPU."""
    return device != "cpu" and any(uses_device(cls) for cls in plugin_classes)
