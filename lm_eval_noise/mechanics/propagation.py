"""Where noise grows or is washed out: the relative size of the perturbation of the residual stream at each
layer boundary, from the embeddings to the LM head's input.

  rel_norm  = mean over positions of ‖h_noisy − h_clean‖ / ‖h_clean‖
  rel_std   = mean over positions of std(h_noisy − h_clean) / std(h_clean)  (std over features)
  effective = rel_std / σ, the "effective noise" of a site: 1 where noise of relative size σ is injected
              (hidden and activation noise are σ × the token's std); at the head input this is the
              "preservation" ratio of the noise that reaches the LM head.
"""

from __future__ import annotations

import math

import torch


def site_names(layers: int) -> list[str]:
    """Names of the L+2 recorded sites: embeddings, decoder layers 1..L, the head input."""
    return ["embeddings", *(f"layer {i}" for i in range(1, layers + 1)), "head input"]


def relative_perturbation(clean: torch.Tensor, noisy: torch.Tensor) -> dict[str, torch.Tensor]:
    """rel_norm and rel_std per row and site ([B, sites]) of residual streams [B, sites, T, d]."""
    clean, noisy = clean.double(), noisy.double()
    diff = noisy - clean
    tiny = torch.finfo(torch.float64).tiny
    rel_norm = diff.norm(dim=-1) / clean.norm(dim=-1).clamp(min=tiny)
    # torch's default (unbiased) std, as the injection's relative noise uses.
    rel_std = diff.std(dim=-1) / clean.std(dim=-1).clamp(min=tiny)
    return {"rel_norm": rel_norm.mean(dim=-1), "rel_std": rel_std.mean(dim=-1)}


def effective_noise(rel_std: float, sigma: float) -> float:
    """rel_std / σ; NaN at σ = 0 (nothing injected to compare with)."""
    return rel_std / sigma if sigma > 0 else math.nan
