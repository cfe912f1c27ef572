"""Preference pairs for FairGen's DPO stage: read physician choices, or build them automatically.

Physician pairs come from a JSONL file as in FairGen's released `physician_preferences.jsonl`:
one object per line, {"text": prompt, "image_w": path, "image_l": path} ("prompt" is accepted
for "text"); relative image paths are read from the JSONL file's folder. Without such a file an
automatic judge stands in (METHODS.md): a small CNN trained on the REAL training images predicts
the class and every prompted attribute, and of two samples of the same prompt the winner is the
one with the higher log-probability of the prompt's class and attributes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import ConfigError

JUDGE_SIZE = 32  # the judge looks at images resized to this size, whatever the generator's resolution


@dataclass
class PreferencePairs:
    prompts: list[str]
    winners: torch.Tensor  # float (N, 3, R, R) in [-1, 1]
    losers: torch.Tensor
    source: str  # "file" or "auto"

    def __len__(self) -> int:
        return len(self.prompts)


def read_pairs_jsonl(path: Path, resolution: int) -> PreferencePairs:
    """Physician preference pairs; the error names the line and what it lacks."""
    from PIL import Image

    from plugins.generators._sd_parts import to_model_pixels

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preferences file {path} does not exist; give a JSONL of "
                          '{"text": ..., "image_w": ..., "image_l": ...} lines or leave `preferences` empty')
    prompts, winners, losers = [], [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [key for key in ("image_w", "image_l") if key not in row] + ([] if {"text", "prompt"} & set(row) else ["text"])
        if missing:
            raise ConfigError(f"{path}:{number}: a preference pair needs {missing}")
        prompts.append(row.get("text", row.get("prompt")))
        for key, out in (("image_w", winners), ("image_l", losers)):
            image = Image.open(path.parent / row[key]).convert("RGB")
            out.append(np.asarray(image).transpose(2, 0, 1))
    if not prompts:
        raise ConfigError(f"{path} holds no preference pairs")
    # images of different sizes are resized one by one
    def stack(images: list[np.ndarray]) -> torch.Tensor:
        return torch.cat([to_model_pixels(image[None], resolution) for image in images])

    return PreferencePairs(prompts, stack(winners), stack(losers), "file")


class JudgeCNN(nn.Module):
    """One conv trunk, one head per judged field (the class and each prompted attribute)."""

    def __init__(self, head_sizes: list[int]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList(nn.Linear(64, size) for size in head_sizes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(F.interpolate(x, size=(JUDGE_SIZE, JUDGE_SIZE), mode="bilinear", antialias=True))
        return [head(features) for head in self.heads]

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sum over fields of log p(field = target); targets (N, fields), -1 = not judged."""
        total = torch.zeros(len(x))
        for field, logits in enumerate(self(x)):
            known = targets[:, field] >= 0
            log_p = logits.log_softmax(1).gather(1, targets[:, field].clamp(min=0)[:, None])[:, 0]
            total += torch.where(known, log_p, torch.zeros_like(log_p))
        return total


def train_judge(pixels: torch.Tensor, targets: torch.Tensor, head_sizes: list[int], epochs: int,
                seed: int) -> JudgeCNN:
    """Fit the judge on real images (float [-1, 1]) and their (N, fields) target codes."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    judge = JudgeCNN(head_sizes)
    optimizer = torch.optim.Adam(judge.parameters(), lr=2e-3)
    for _ in range(epochs):
        for rows in torch.randperm(len(pixels), generator=generator).split(64):
            loss = sum(F.cross_entropy(logits, targets[rows, field], ignore_index=-1)
                       for field, logits in enumerate(judge(pixels[rows])))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return judge.eval()


def judge_pairs(judge: JudgeCNN, prompts: list[str], first: torch.Tensor, second: torch.Tensor,
                targets: torch.Tensor) -> PreferencePairs:
    """Two samples per prompt (pixels in [0, 1]); the more likely one under the judge wins."""
    first, second = first * 2 - 1, second * 2 - 1
    first_wins = judge.log_likelihood(first, targets) >= judge.log_likelihood(second, targets)
    winners = torch.where(first_wins[:, None, None, None], first, second)
    losers = torch.where(first_wins[:, None, None, None], second, first)
    return PreferencePairs(list(prompts), winners, losers, "auto")
