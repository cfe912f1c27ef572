"""FairGen (Krisocer/FairGen) and its released ablations as generator plugins on SD fine-tuning.

On the same fine-tuning code as "sd" (sd.py), FairGen changes three things:
1. resampling over prompt cells (one prompt = one class x attribute cell, n_c rows): CBRS draws
   rows with weight 1/n_c, SQRS with 1/sqrt(n_c), with replacement, as the released scripts'
   WeightedRandomSampler. The paper's gradient-aware form (not in the released code) is an
   option: per-row weight n_c^-p * g_c^lambda, g_c the cell's mean gradient norm over the last
   `grad_window` steps, measured at the UNet output (the per-sample gradient of the epsilon-MSE
   with respect to the prediction, a cheap proxy for the parameter-gradient norm);
2. the class-diversity loss: CBDM's regulariser on latents against the prediction for another
   cell's prompt c' (tau * t/T * [||e(c) - sg e(c')||^2 + gamma ||sg e(c) - e(c')||^2]);
3. the preference loss as released: (winner, loser) pairs noised independently at one shared t,
   L_DPO = -mean log sigmoid(beta (l_l - l_w)) + mean l_w, added with weight 1 and no reference
   UNet; Diffusion-DPO (Wallace et al.: frozen reference, shared noise, beta 5000) is an option.
   Pairs come from a physician JSONL file or, without one, from the automatic judge
   (_preferences.py); DPO starts at `dpo_start` x train_steps, when the auto pairs are sampled.
4. the downstream inverse-performance group reweighting belongs to the classifier, not to this
   generator: any cell turns it on with the classifier parameter group_reweighting =
   "inverse_performance" (the standard grid runs fairgen and sd with and without it).

Ablations from the released scripts: cbrs, sqrs (resampling only), cbdm-sd (shuffle + the
diversity loss), cbcb (CBRS + the diversity loss).
"""
from __future__ import annotations

import copy
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from harness import ConfigError, ImageSet, hookimpl
from plugins.generators._preferences import PreferencePairs, judge_pairs, read_pairs_jsonl, train_judge
from plugins.generators._sd_parts import to_model_pixels
from plugins.generators.sd import PAPER, Batch, StableDiffusionFinetune, TrainingData

RESAMPLING_POWER = {"shuffle": 0.0, "cbrs": 1.0, "sqrs": 0.5}
DPO_MODES = ("released", "diffusion-dpo", "none")


# -- the three training additions, as pure functions --------------------------------------------------
def resampling_weights(cell_of_row: np.ndarray, power: float, cell_factor: np.ndarray | None = None) -> np.ndarray:
    """Per-row sampling weights n_c^-power (x an optional per-cell factor, e.g. g_c^lambda),
    normalised to sum to 1. power 1 = CBRS (every cell equally likely), 0.5 = SQRS."""
    counts = np.bincount(cell_of_row)
    per_cell = np.where(counts > 0, np.maximum(counts, 1).astype(float) ** -power, 0.0)
    if cell_factor is not None:
        per_cell = per_cell * cell_factor
    weights = per_cell[cell_of_row]
    return weights / weights.sum()


def class_diversity_loss(eps_cell: torch.Tensor, eps_other: torch.Tensor, timesteps: torch.Tensor,
                         num_train_timesteps: int, active: torch.Tensor, tau: float, gamma: float) -> torch.Tensor:
    """CBDM's regulariser on latents, as FairGen releases it: mean over rows of
    tau * t/T * [mse(e(c), sg e(c')) + gamma * mse(sg e(c), e(c'))]; rows without a prompt
    (dropped caption, unlabeled) are inactive."""
    def per_row(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b) ** 2).flatten(1).mean(1)

    weight = tau * timesteps.float() / num_train_timesteps * active.float()
    regulariser = per_row(eps_cell, eps_other.detach()) + gamma * per_row(eps_cell.detach(), eps_other)
    return (weight * regulariser).mean()


def preference_loss(loss_winner: torch.Tensor, loss_loser: torch.Tensor, beta: float) -> torch.Tensor:
    """FairGen's released DPO term: -mean log sigmoid(beta (l_l - l_w)) + mean l_w."""
    return -F.logsigmoid(beta * (loss_loser - loss_winner)).mean() + loss_winner.mean()


def diffusion_dpo_loss(loss_winner: torch.Tensor, loss_loser: torch.Tensor, ref_winner: torch.Tensor,
                       ref_loser: torch.Tensor, beta: float) -> torch.Tensor:
    """Diffusion-DPO (Wallace et al., train.py): -mean log sigmoid(-beta/2 ((l_w - l_l) - (ref_w - ref_l)))."""
    inside = -0.5 * beta * ((loss_winner - loss_loser) - (ref_winner - ref_loser))
    return -F.logsigmoid(inside).mean()


class FairGen(StableDiffusionFinetune):
    name = "fairgen"
    version = "1"
    defaults = {
        **StableDiffusionFinetune.defaults,
        "resampling": "sqrs",  # shuffle | cbrs | sqrs (FairGen's released script uses SQRS)
        "grad_aware": False,  # the paper's gradient-aware weights (not in the released code)
        "grad_lambda": 1.0,
        "grad_window": 50,
        "diversity_tau": 1.0,  # 0 switches the class-diversity loss off
        "diversity_gamma": 0.25,
        "diversity_other": "different",  # c' uniform over the other cells; "any": over all (as released)
        "dpo": "released",  # released | diffusion-dpo | none
        "preferences": "",  # physician pairs JSONL; "" = the automatic judge builds pairs
        "dpo_beta": 0.5,
        "diffusion_dpo_beta": 5000.0,
        "dpo_weight": 1.0,
        "dpo_batch_size": 16,  # pairs per step (the released script uses its train batch size, 8)
        "dpo_start": 0.5,  # fraction of train_steps after which the DPO term is on
        "auto_pairs_per_cell": 8,
        "judge_epochs": 10,
    }
    configs: ClassVar[dict[str, dict[str, Any]]] = {"cpu": {}, "paper": {**PAPER, "dpo_batch_size": 8}}

    def _check_params(self) -> None:
        super()._check_params()
        p = self.params
        for key, allowed in (("resampling", tuple(RESAMPLING_POWER)), ("dpo", DPO_MODES),
                             ("diversity_other", ("different", "any"))):
            if p[key] not in allowed:
                raise ConfigError(f"generator '{self.name}': {key} must be one of {list(allowed)}, got '{p[key]}'")
        if not 0 <= p["dpo_start"] < 1:
            raise ConfigError(f"generator '{self.name}': dpo_start is a fraction of train_steps in [0, 1)")

    # -- setup ------------------------------------------------------------------------------------
    def prepare_training(self, train: ImageSet, data: TrainingData, seed: int) -> None:
        self._train, self._seed = train, seed
        self._cells = torch.tensor([i for i, prompt in enumerate(data.prompts) if prompt])
        self._cell_of_prompt = torch.full((len(data.prompts),), -1, dtype=torch.long)
        self._cell_of_prompt[self._cells] = torch.arange(len(self._cells))
        cells = self._cell_of_prompt[data.prompt_index]  # rows without a prompt (unlabeled) form one more group
        self._cell_of_row = torch.where(cells < 0, len(self._cells), cells).numpy()
        self._grad_history = [deque(maxlen=self.params["grad_window"]) for _ in range(len(self._cells))]
        self._row_weights = torch.from_numpy(self._static_weights())
        self._pairs: dict[str, torch.Tensor] | None = None
        self._reference = None
        self.stats["cells"] = float(len(self._cells))
        if self.params["dpo"] != "none":
            self.stats["auto_preferences"] = float(not self.params["preferences"])

    def _static_weights(self, cell_factor: np.ndarray | None = None) -> np.ndarray:
        return resampling_weights(self._cell_of_row, RESAMPLING_POWER[self.params["resampling"]], cell_factor)

    # -- hooks ------------------------------------------------------------------------------------
    def draw_rows(self, data: TrainingData, generator: torch.Generator, n: int) -> torch.Tensor:
        if self.params["resampling"] == "shuffle" and not self.params["grad_aware"]:
            return super().draw_rows(data, generator, n)
        return torch.multinomial(self._row_weights, n, replacement=True, generator=generator)

    def on_step(self, step: int, data: TrainingData, generator: torch.Generator) -> None:
        p = self.params
        if p["grad_aware"] and step and step % p["grad_window"] == 0:
            self._refresh_gradient_weights()
        if p["dpo"] != "none" and self._pairs is None and step >= int(p["dpo_start"] * p["train_steps"]):
            self._start_dpo(generator)

    def training_loss(self, batch: Batch, data: TrainingData, generator: torch.Generator) -> dict[str, torch.Tensor]:
        eps = self.predict_noise(batch.noisy, batch.timesteps, batch.cond)
        losses = {"mse": F.mse_loss(eps, batch.noise)}
        if self.params["grad_aware"]:
            self._record_gradient_norms(eps.detach(), batch)
        if self.params["diversity_tau"] > 0 and len(self._cells) > 1:
            other = self._other_prompts(batch.prompt_index, generator).to(self.device)
            eps_other = self.predict_noise(batch.noisy, batch.timesteps, data.embeddings[other])
            losses["diversity"] = class_diversity_loss(eps, eps_other, batch.timesteps,
                                                       self.noise_scheduler.config.num_train_timesteps,
                                                       ~batch.is_null, self.params["diversity_tau"],
                                                       self.params["diversity_gamma"])
        if self._pairs is not None:
            losses["dpo"] = self.params["dpo_weight"] * self._dpo_loss(generator)
        return losses

    # -- class-diversity loss ------------------------------------------------------------------------
    def _other_prompts(self, prompt_index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """c': a uniformly drawn different cell (or any cell, as the released code draws)."""
        n_cells = len(self._cells)
        if self.params["diversity_other"] == "any":
            return self._cells[torch.randint(0, n_cells, (len(prompt_index),), generator=generator)]
        own = self._cell_of_prompt[prompt_index].clamp(min=0)
        draw = torch.randint(0, n_cells - 1, (len(prompt_index),), generator=generator)
        return self._cells[draw + (draw >= own).long()]

    # -- gradient-aware resampling -------------------------------------------------------------------
    def _record_gradient_norms(self, eps: torch.Tensor, batch: Batch) -> None:
        """Per-row norm of d mse / d prediction = 2 (e_pred - e) / D."""
        norms = (2 * (eps - batch.noise) / eps[0].numel()).flatten(1).norm(dim=1).cpu()
        cells = self._cell_of_prompt[batch.prompt_index]
        for cell, norm in zip(cells.tolist(), norms.tolist()):
            if cell >= 0:
                self._grad_history[cell].append(norm)

    def _refresh_gradient_weights(self) -> None:
        means = np.array([np.mean(h) if h else np.nan for h in self._grad_history])
        means = np.where(np.isnan(means), np.nanmean(means) if np.isfinite(means).any() else 1.0, means)
        factor = (means / means.mean()) ** self.params["grad_lambda"]
        factor = np.append(factor, np.ones(self._cell_of_row.max() + 1 - len(factor)))  # the no-prompt group
        self._row_weights = torch.from_numpy(self._static_weights(factor))

    # -- preference (DPO) loss -----------------------------------------------------------------------
    def _start_dpo(self, generator: torch.Generator) -> None:
        p = self.params
        if p["preferences"]:
            pairs = read_pairs_jsonl(Path(p["preferences"]), p["resolution"])
        else:
            pairs = self._auto_pairs()
        self._pairs = self._encode_pairs(pairs)
        self.stats["preference_pairs"] = float(len(pairs))
        if p["dpo"] == "diffusion-dpo":
            self._reference = copy.deepcopy(self.pipe.unet).eval().requires_grad_(False)

    def _auto_pairs(self) -> PreferencePairs:
        """Two samples of every training cell's prompt from the current model, judged by a CNN
        trained on the real training images."""
        p, train = self.params, self._train
        fields = self.prompt_book.fields
        codes = np.stack([train.labels if f == "label" else train.attributes[f] for f in fields], axis=1)
        head_sizes = [train.num_classes if f == "label" else len(train.attribute_vocab[f]) for f in fields]
        judge = train_judge(to_model_pixels(train.images, p["resolution"]), torch.from_numpy(codes), head_sizes,
                            p["judge_epochs"], self._seed)
        prompts = self.prompt_book.prompts(train.labels, train.attributes)
        first_row = {prompt: row for row, prompt in reversed(list(enumerate(prompts)))}
        cell_prompts = sorted(first_row) * p["auto_pairs_per_cell"]
        targets = torch.from_numpy(codes[[first_row[prompt] for prompt in cell_prompts]])
        self.pipe.unet.eval()
        first = self.generate(cell_prompts, self._seed + 1)
        second = self.generate(cell_prompts, self._seed + 2)
        self.pipe.unet.train()
        return judge_pairs(judge, cell_prompts, first, second, targets)

    @torch.no_grad()
    def _encode_pairs(self, pairs: PreferencePairs) -> dict[str, torch.Tensor]:
        vae, scale = self.pipe.vae, self.pipe.vae.config.scaling_factor
        encoded = {"embeddings": self.encode(pairs.prompts)}
        for key, pixels in (("winner", pairs.winners), ("loser", pairs.losers)):
            posterior = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist
            encoded[f"{key}_mean"] = (posterior.mean * scale).float().cpu()
            encoded[f"{key}_std"] = (posterior.std * scale).float().cpu()
        return encoded

    def _dpo_loss(self, generator: torch.Generator) -> torch.Tensor:
        """A batch of pairs, one t per pair shared by winner and loser; independent noise (as
        released) or shared noise (Diffusion-DPO)."""
        pairs, n = self._pairs, self.params["dpo_batch_size"]
        rows = torch.randint(0, len(pairs["embeddings"]), (n,), generator=generator)
        latents = torch.cat([pairs[f"{k}_mean"][rows] + pairs[f"{k}_std"][rows] *
                             torch.randn(pairs[f"{k}_mean"][rows].shape, generator=generator)
                             for k in ("winner", "loser")]).to(self.device)
        shared_noise = self.params["dpo"] == "diffusion-dpo"
        noise = torch.randn((n,) + latents.shape[1:], generator=generator)
        noise = torch.cat([noise, noise if shared_noise else torch.randn(noise.shape, generator=generator)])
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (n,), generator=generator).repeat(2)
        noise, t = noise.to(self.device), t.to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        cond = pairs["embeddings"][rows.to(self.device)].repeat(2, 1, 1)
        per_row = ((self.predict_noise(noisy, t, cond) - noise) ** 2).flatten(1).mean(1)
        loss_w, loss_l = per_row.chunk(2)
        if not shared_noise:
            return preference_loss(loss_w, loss_l, self.params["dpo_beta"])
        with torch.no_grad():
            ref = ((self._reference(noisy, t, cond).sample.float() - noise) ** 2).flatten(1).mean(1)
        ref_w, ref_l = ref.chunk(2)
        return diffusion_dpo_loss(loss_w, loss_l, ref_w, ref_l, self.params["diffusion_dpo_beta"])


class CBRS(FairGen):
    """Released train_text_to_imagecbrs.py: class-balanced resampling only."""
    name = "cbrs"
    defaults = {**FairGen.defaults, "resampling": "cbrs", "diversity_tau": 0.0, "dpo": "none"}


class SQRS(FairGen):
    """Released train_text_to_imagesqrs.py: square-root resampling only."""
    name = "sqrs"
    defaults = {**FairGen.defaults, "resampling": "sqrs", "diversity_tau": 0.0, "dpo": "none"}


class CBDMSD(FairGen):
    """Released train_text_to_imagecbdm.py: shuffled batches + the class-diversity loss."""
    name = "cbdm-sd"
    defaults = {**FairGen.defaults, "resampling": "shuffle", "dpo": "none"}


class CBCB(FairGen):
    """Released train_text_to_imagecbcb.py: CBRS + the class-diversity loss."""
    name = "cbcb"
    defaults = {**FairGen.defaults, "resampling": "cbrs", "dpo": "none"}


@hookimpl
def harness_generators() -> list[type]:
    return [FairGen, CBRS, SQRS, CBDMSD, CBCB]
