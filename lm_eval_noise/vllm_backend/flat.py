"""vLLM's flat token batch as a NoiseState: every token is a row of width 1.

A token's noise depends only on (its sample's seed, the site, its position in its own sample, the
feature index), so treating each token of the flat [num_tokens, d] batch as a one-column row gives the
very values `hf-noisy` draws for that token in its padded [B, T] layout, through the same functions
(`noise.base.token_noise`, `add_relative_noise`).
"""

from __future__ import annotations

import torch

from lm_eval_noise.noise.config import NoiseConfig
from lm_eval_noise.noise.state import NoiseState, schedule_sigma


def flat_state(config: NoiseConfig, seeds: torch.Tensor, positions: torch.Tensor, prompt_lens: torch.Tensor,
               horizons: torch.Tensor) -> NoiseState:
    """A NoiseState over N tokens: seeds, positions (-1: no noise, e.g. clean requests and padding),
    prompt lengths and decode horizons (max new tokens, for schedules) per token, all [N]."""
    n = len(seeds)
    state = NoiseState(config, seeds, torch.ones(n, 1, dtype=torch.int64, device=positions.device), 1)
    state.prompt_lens = prompt_lens.to(torch.int64)
    state.begin_forward(1, position_ids=positions.to(torch.int64)[:, None])
    if config.noise_schedule != "constant":
        # Each request has its own horizon; tokens of one horizon share one schedule call.
        step = state.positions + 1 - state.prompt_lens[:, None]
        scale = torch.empty(n, 1, 1, dtype=torch.float32, device=positions.device)
        for horizon in horizons.unique().tolist():
            rows = horizons == horizon
            sigma = schedule_sigma(config, step[rows], int(horizon))
            scale[rows] = torch.as_tensor(sigma, dtype=torch.float32, device=positions.device).reshape(-1, 1, 1)
        state.scale = scale
    return state
