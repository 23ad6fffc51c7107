"""alpha = Var(noisy - clean logits) / Var(clean logits) per prompt, draw and position, under teacher forcing.

Each prompt gets a clean greedy continuation once; then, per noise setting, the clean and the noisy model
each run one forward over prompt + continuation and alpha is taken at every position whose logits choose
a continuation token. Position 0 is the last prompt token, so it is also the "last prompt position" alpha
that `hf-noisy`'s temperature compensation uses.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from lm_eval_noise.noise import NoiseConfig, NoiseRuntime, NoiseState
from lm_eval_noise.noise.sampling import alpha
from lm_eval_noise.seeding import doc_key, sample_seed

# The seeds' task name: keeps these draws apart from any evaluation task's.
SEED_TASK = "alpha"


def draw_seed(noise_seed: int, prompt: str, prompt_idx: int, draw: int, task: str = SEED_TASK) -> int:
    """The 63-bit noise seed of one prompt's draw (`task` keeps one analysis' draws apart from another's)."""
    return sample_seed(noise_seed, task, doc_key(prompt, prompt), prompt_idx, draw)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One measured noise configuration: a type (or '+' combination) at one scale."""

    noise: str
    scale: float
    noise_layer: int | None = None
    # Further hf-noisy noise arguments as (name, value) pairs, e.g. (("noise_targets", "mlp"),).
    options: tuple[tuple[str, object], ...] = ()

    def config(self, noise_seed: int) -> NoiseConfig:
        """The validated NoiseConfig of this setting."""
        return NoiseConfig.from_args(
            noise=self.noise, noise_scale=self.scale, noise_layer=self.noise_layer, noise_seed=noise_seed,
            **dict(self.options),
        )


@dataclasses.dataclass
class Measurement:
    """alpha of one setting: alphas[prompt, draw, position], position 0 being the last prompt token."""

    setting: Setting
    alphas: np.ndarray

    @property
    def last(self) -> np.ndarray:
        """alpha at the last prompt position, [prompt, draw]."""
        return self.alphas[:, :, 0]


@dataclasses.dataclass(frozen=True)
class PromptCase:
    """A tokenized prompt and its clean greedy continuation (1-D token id tensors on the model's device)."""

    prompt: str
    prompt_ids: torch.Tensor
    continuation: torch.Tensor

    def teacher_forced(self, positions: int) -> torch.Tensor:
        """[1, L] ids whose last `positions` logits predict continuation tokens 0..positions-1."""
        return torch.cat([self.prompt_ids, self.continuation[: positions - 1]])[None]


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def prepare(model: nn.Module, tokenizer, prompt: str, positions: int) -> PromptCase:
    """Tokenize `prompt` and greedily continue it with the clean model for `positions` tokens (EOS suppressed)."""
    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(_model_device(model))
    if ids.shape[1] == 0:
        raise ValueError(f"prompt {prompt!r} tokenizes to no tokens")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # min_new_tokens keeps every prompt at exactly `positions` measured positions.
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=positions,
        min_new_tokens=positions,
        do_sample=False,
        pad_token_id=pad,
    )
    return PromptCase(prompt, ids[0], out[0, ids.shape[1] :])


def _keeps_logits(model: nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


@torch.no_grad()
def last_logits(model: nn.Module, ids: torch.Tensor, keep: int) -> torch.Tensor:
    """float32 logits [B, keep, V] of the last `keep` positions of one unpadded forward over ids [B, L]."""
    # Only the measured positions go through the head: full-vocabulary logits for every token are large.
    extra = {"logits_to_keep": keep} if _keeps_logits(model) else {}
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **extra)
    return out.logits[:, -keep:].float()


def _alphas(
    model: nn.Module, runtime: NoiseRuntime, case: PromptCase, seeds: list[int], positions: int
) -> torch.Tensor:
    """alpha [draws, positions] of one prompt; clean logits come from a forward of the same shape as the noisy one."""
    ids = case.teacher_forced(positions)
    config = runtime.config
    seed_tensor = torch.tensor(seeds, dtype=torch.int64, device=ids.device)
    if runtime.weight is None:  # hook-based noise: all draws in one batch, one row per seed
        batch = ids.expand(len(seeds), -1)
        clean = last_logits(model, batch, positions)
        with runtime.attached(NoiseState(config, seed_tensor, torch.ones_like(batch), positions)):
            noisy = last_logits(model, batch, positions)
        return alpha(clean, noisy)
    # Weight noise is one draw per forward: each seed perturbs the weights on its own.
    clean = last_logits(model, ids, positions)
    rows = []
    for seed in seed_tensor:
        with runtime.weight.perturbed(int(seed)), runtime.attached(
            NoiseState(config, seed[None], torch.ones_like(ids), positions)
        ):
            rows.append(alpha(clean, last_logits(model, ids, positions))[0])
    return torch.stack(rows)


def measure(
    model: nn.Module,
    cases: Sequence[PromptCase],
    settings: Sequence[Setting],
    draws: int,
    noise_seed: int = 0,
    on_step: Callable[[], None] | None = None,
) -> list[Measurement]:
    """alpha[prompt, draw, position] for every setting; `on_step` is called after each (setting, prompt)."""
    positions = min(len(case.continuation) for case in cases)
    seeds = [[draw_seed(noise_seed, case.prompt, i, d) for d in range(draws)] for i, case in enumerate(cases)]
    results = []
    for setting in settings:
        # One runtime at a time: weight noise keeps a host copy of the weights while its runtime lives.
        runtime = NoiseRuntime(model, setting.config(noise_seed))
        per_prompt = []
        for case, case_seeds in zip(cases, seeds, strict=True):
            per_prompt.append(_alphas(model, runtime, case, case_seeds, positions).cpu().numpy())
            if on_step is not None:
                on_step()
        results.append(Measurement(setting, np.stack(per_prompt).astype(np.float64)))
        del runtime
    return results
