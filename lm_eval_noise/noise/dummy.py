"""Dummy-token noise: k extra input positions whose embeddings are pure seeded noise.

The seed-conditioning ablation "appended dummy tokens" (Nagarajan et al., ICML 2025) on a frozen
model, as random soft prompts drawn from embedding-table statistics (arXiv 2605.11936). The context
gets k placeholder columns (before each row's prompt, after its own left padding, or between the prompt
and the generation); the model attends to them like ordinary tokens and gives them ordinary position
ids (from the attention mask); a hook on the input embeddings replaces their embeddings at prefill; the
caller strips them from what generate returns, so the output has the original context's layout.

`gaussian`: mean_j + noise_scale * std_j * eps, with the per-feature mean and std of the embedding
table (through the embedding module, so scaled embeddings such as Gemma's are matched). `table`:
the placeholders are seeded random vocabulary ids, i.e. random rows of the embedding matrix.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise.config import NoiseConfig, NoiseConfigError
from lm_eval_noise.noise.counter import normal, position_hash, position_keys, row_keys, site_id, uniform
from lm_eval_noise.noise.embedding import vocabulary_embeddings
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.targets import optional_module

SITE = site_id("dummy")


@torch.no_grad()
def embedding_moments(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of E(x) over the vocabulary."""
    rows = module.weight.shape[0]
    total = total_sq = None
    for out in vocabulary_embeddings(module):
        out = out.double()
        total = out.sum(0) if total is None else total + out.sum(0)
        total_sq = (out * out).sum(0) if total_sq is None else total_sq + (out * out).sum(0)
    mean = total / rows
    var = (total_sq / rows - mean * mean).clamp(min=0) * rows / max(rows - 1, 1)
    return mean.float(), var.sqrt().float()


class DummyLayout:
    """Where each row's k dummy columns sit in the extended prompt [B, W + k]."""

    def __init__(self, mask: torch.Tensor, k: int, position: str):
        batch, width = mask.shape
        cols = torch.arange(width + k, device=mask.device)[None, :]
        if position == "prefix":  # right after each row's own left padding: the batch stays left-padded
            start = (mask == 0).sum(dim=1, keepdim=True)
        else:  # between the prompt and the generation, the same columns for every row
            start = torch.full((batch, 1), width, device=mask.device)
        self.k = k
        self.columns = (cols >= start) & (cols < start + k)  # [B, W + k] bool

    def extend(self, context: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The context with `ids` [B, k] in the dummy columns, and its attention mask (dummies attended)."""
        keep = ~self.columns
        out = torch.empty(self.columns.shape, dtype=context.dtype, device=context.device)
        out[keep] = context.reshape(-1)
        out[self.columns] = ids.to(context.dtype).reshape(-1)
        new_mask = torch.ones(self.columns.shape, dtype=mask.dtype, device=mask.device)
        new_mask[keep] = mask.reshape(-1)
        return out, new_mask

    def strip(self, output: torch.Tensor) -> torch.Tensor:
        """generate's output without the dummy columns: what the unextended context would have given."""
        extra = output.shape[1] - self.columns.shape[1]
        keep = torch.cat([~self.columns, self.columns.new_ones(output.shape[0], extra)], dim=1)
        return output[keep].view(output.shape[0], -1)


class DummyTokens:
    """The `dummy` injector: draws the dummy embeddings (or ids) per sample and puts them in at prefill."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        module = optional_module(model, "get_input_embeddings")
        if module is None or getattr(module, "weight", None) is None:
            raise NoiseConfigError(
                f"noise=dummy needs a model with an input embedding table; {type(model).__name__} has none "
                "(get_input_embeddings() returned no module with a weight)"
            )
        self.module = module
        self.config = config
        assert config.noise_dummy_tokens is not None  # NoiseConfig requires it with noise=dummy
        self.k = int(config.noise_dummy_tokens)
        self.vocab = module.weight.shape[0]
        self.moments = embedding_moments(module) if config.noise_dummy_init == "gaussian" else None

    def layout(self, mask: torch.Tensor) -> DummyLayout:
        return DummyLayout(mask, self.k, self.config.noise_dummy_position)

    def _keys(self, seeds: torch.Tensor) -> torch.Tensor:
        """[B, k] keys: one stream per (sample, dummy index), never per batch column."""
        index = torch.arange(self.k, dtype=torch.int64, device=seeds.device)[None, :].expand(len(seeds), -1)
        return position_keys(row_keys(seeds.to(torch.int64), SITE), position_hash(index))

    def ids(self, seeds: torch.Tensor) -> torch.Tensor:
        """Placeholder ids [B, k]: random vocabulary rows for `table`; for `gaussian` any valid id, replaced."""
        if self.moments is not None:
            return torch.zeros(len(seeds), self.k, dtype=torch.int64, device=seeds.device)
        u = uniform(self._keys(seeds), 1)[..., 0]
        return (u * self.vocab).long().clamp(max=self.vocab - 1)

    def attach(self, state: NoiseState) -> list[RemovableHandle]:
        if self.moments is None:
            return []  # table rows are the placeholder ids themselves
        return [self.module.register_forward_hook(lambda m, i, out: self._hook(state, out))]

    def _hook(self, state: NoiseState, out: torch.Tensor) -> torch.Tensor | None:
        columns = state.dummy_columns
        if columns is None or state.prefilled or out.shape[1] != columns.shape[1]:
            return None  # decode steps: the dummies are in the KV cache already
        assert self.moments is not None  # attach() hooks only the gaussian init
        mean, std = (t.to(out.device) for t in self.moments)
        eps = normal(self._keys(state.seeds).to(out.device), out.shape[-1], self.config.noise_dist)
        values = mean + self.config.noise_scale * std * eps  # [B, k, d]
        out = out.clone()
        out[columns.to(out.device)] = values.reshape(-1, out.shape[-1]).to(out.dtype)
        return out
