"""The one small interface every injection point implements, and the relative-noise helper they share."""

from __future__ import annotations

from typing import Protocol

import torch
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise.counter import normal, position_keys
from lm_eval_noise.noise.state import NoiseState


class Injector(Protocol):
    """An injection point: registers hooks reading a NoiseState; the caller removes them."""

    def attach(self, state: NoiseState) -> list[RemovableHandle]: ...


def token_noise(state: NoiseState, site: int, width: int, size: int, device: torch.device,
                per_sequence: bool = False) -> torch.Tensor:
    """Standard noise [B, width, size] on `device` (layers may sit on several devices), zeroed where
    injection is off."""
    keys = position_keys(state.site_keys(site), None if per_sequence else state.position_hash_for(width)).to(device)
    eps = normal(keys, size, state.config.noise_dist)
    return eps * state.position_mask(width).to(device)[..., None]


def add_relative_noise(x: torch.Tensor, state: NoiseState, site: int, shared: torch.Tensor | None = None) -> torch.Tensor:
    """x + eps * scale * std(x over features), std per token so padding and batch-mates never matter.

    `shared`: this site's noise already drawn for the whole forward ([B, T, >= d], masked), if any."""
    flat = x.dim() == 2
    if flat:  # [B*T, d] inputs (some layers flatten tokens)
        batch, width = state.positions.shape
        if x.shape[0] != batch * width:
            raise ValueError(
                f"cannot map a [{x.shape[0]}, {x.shape[1]}] input to {batch} rows x {width} tokens "
                "(token-routed layers such as MoE experts): exclude it with noise_targets"
            )
        x = x.view(batch, width, x.shape[-1])
    if shared is None:
        eps = token_noise(state, site, x.shape[1], x.shape[-1], x.device)
    else:
        eps = shared[:, -x.shape[1]:, : x.shape[-1]].to(x.device)
    sigma = state.scale.to(x.device) * x.float().std(dim=-1, keepdim=True)
    out = x + (eps * sigma).to(x.dtype)
    return out.view(-1, out.shape[-1]) if flat else out
