"""Embedding noise: h0 = E(x) + eps, eps ~ N(0, sigma^2 I), sigma = noise_scale * mean ||E(x)||."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise.base import token_noise
from lm_eval_noise.noise.config import NoiseConfig
from lm_eval_noise.noise.counter import site_id
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.targets import input_embeddings

SITE = site_id("embedding")


@torch.no_grad()
def vocabulary_embeddings(module: nn.Module, chunk: int = 8192) -> Iterator[torch.Tensor]:
    """E(x) for every token id, chunk by chunk, through the module itself (Gemma-style modules scale
    their output by sqrt(d)), so statistics over the vocabulary never make a full-size copy."""
    rows = module.weight.shape[0]
    for start in range(0, rows, chunk):
        yield module(torch.arange(start, min(start + chunk, rows), device=module.weight.device))


@torch.no_grad()
def mean_embedding_norm(module: nn.Module, chunk: int = 8192) -> float:
    """Mean L2 norm of E(x) over the vocabulary."""
    total = sum(float(out.float().norm(dim=-1).sum()) for out in vocabulary_embeddings(module, chunk))
    return total / module.weight.shape[0]


class EmbeddingNoise:
    """Adds seeded Gaussian noise to the token embeddings at prefill and at every decode step."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        self.module = input_embeddings(model)
        self.config = config
        self.vocab_norm = mean_embedding_norm(self.module) if config.embed_norm == "vocab" else None

    def attach(self, state: NoiseState) -> list[RemovableHandle]:
        return [self.module.register_forward_hook(lambda m, i, out: self._hook(state, out))]

    def _hook(self, state: NoiseState, out: torch.Tensor) -> torch.Tensor | None:
        width = out.shape[1]
        if self.vocab_norm is not None:
            reference: float | torch.Tensor = self.vocab_norm
        else:
            if state.input_norm is None:  # prefill: fix the sample's own prompt norm for the rest of it
                valid = (state.positions_for(width) >= 0).float()
                norms = out.detach().float().norm(dim=-1)
                state.input_norm = (norms * valid).sum(1) / valid.sum(1).clamp(min=1)
            reference = state.input_norm[:, None, None]
        eps = token_noise(state, SITE, width, out.shape[-1], out.device, self.config.noise_scope == "per_sequence")
        return out + (eps * state.scale.to(out.device) * reference).to(out.dtype)
