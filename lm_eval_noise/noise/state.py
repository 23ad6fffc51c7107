"""Per-call bookkeeping shared by the hooks: which sample each row is and where each token sits."""

from __future__ import annotations

import math

import torch

from lm_eval_noise.noise.config import NoiseConfig


def schedule_factor(config: NoiseConfig, step: int, horizon: int) -> float:
    """sigma(step) / noise_scale: the schedule from noise_scale to noise_scale_end over `horizon` steps."""
    start = config.noise_scale
    if config.noise_schedule == "constant" or config.noise_scale_end is None:
        return 1.0
    end = config.noise_scale_end
    frac = min(max(step, 0) / max(horizon - 1, 1), 1.0)
    if config.noise_schedule == "linear":
        sigma = start + (end - start) * frac
    elif config.noise_schedule == "cosine":
        sigma = end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * frac))
    else:  # exp: geometric interpolation
        sigma = start * (end / start) ** frac
    return sigma / start if start > 0 else sigma


class NoiseState:
    """Rows' seeds and token positions for one generation call (left-padded batch).

    A forward over `width` columns sees positions `col .. col+width-1` of the padded layout; a row's own
    position is that minus its left padding, so a token's noise never depends on the batch it sits in.
    """

    def __init__(self, config: NoiseConfig, seeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int):
        self.config = config
        self.seeds = seeds.to(device=attention_mask.device, dtype=torch.int64)
        self.pads = (attention_mask == 0).sum(dim=1).to(torch.int64)
        self.prompt_width = attention_mask.shape[1]
        self.prompt_lens = self.prompt_width - self.pads
        self.max_new_tokens = max_new_tokens
        self.col = 0
        self.enabled = True
        self.positions = torch.zeros(len(seeds), 0, dtype=torch.int64, device=attention_mask.device)
        self.step = 0
        self.scale = config.noise_scale
        # Set at prefill by embedding noise with embed_norm=input: per-row mean prompt-embedding norm.
        self.input_norm: torch.Tensor | None = None
        self._mask_cache: torch.Tensor | None = None

    @property
    def is_prefill(self) -> bool:
        return self.col == 0

    def begin_forward(self, width: int) -> None:
        """Called before each model forward over `width` new columns."""
        cols = torch.arange(self.col, self.col + width, device=self.pads.device)
        self.positions = cols[None, :] - self.pads[:, None]
        # The forward over columns ending at `col+width` produces generated token number `step`.
        self.step = self.col + width - self.prompt_width
        self.scale = self.config.noise_scale * schedule_factor(self.config, self.step, self.max_new_tokens)
        self._mask_cache = None

    def end_forward(self, width: int) -> None:
        self.col += width

    def positions_for(self, width: int) -> torch.Tensor:
        """Positions of the last `width` columns of the current forward (lm_head may see only the last)."""
        return self.positions[:, -width:] if width <= self.positions.shape[1] else self.positions

    def position_mask(self, width: int) -> torch.Tensor:
        """[B, width] float mask: 1 where structured injection puts noise, 0 on padding and skipped positions."""
        if self._mask_cache is not None and self._mask_cache.shape[1] == width:
            return self._mask_cache
        pos = self.positions_for(width)
        keep = pos >= 0
        if self.config.noise_positions == "prompt":
            keep &= pos < self.prompt_lens[:, None]
        elif self.config.noise_positions == "generated":
            keep &= pos >= self.prompt_lens[:, None]
        if self.config.noise_first_k is not None:
            keep &= pos < self.config.noise_first_k
        self._mask_cache = keep.to(torch.float32)
        return self._mask_cache
