"""How far noise moves attention: KL(clean ‖ noisy) and the entropies of the attention distributions.

Each query's attention over the keys is a distribution p (clean) or q (noisy); per layer the measures are
averaged over heads and over the measured query positions (Vig & Belinkov 2019 analyse attention this way;
entropy of attention: Clark et al. 2019, *What Does BERT Look At?*).
"""

from __future__ import annotations

import torch

# Keys that get (numerically) no attention: q may underflow to 0 where p does not.
_FLOOR = 1e-30


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_k p log(p / q) over the last axis (0·log 0 = 0), in nats."""
    p, q = p.double(), q.double()
    return (torch.xlogy(p, p) - torch.xlogy(p, q.clamp(min=_FLOOR))).sum(-1).clamp(min=0.0)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = −Σ_k p log p over the last axis, in nats."""
    p = p.double()
    return -torch.xlogy(p, p).sum(-1)


def attention_shift(clean: torch.Tensor, noisy: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per row and layer ([B, L] each): KL(clean ‖ noisy), H(clean), H(noisy), averaged over heads and
    query positions of attention maps [B, L, H, Q, S]."""
    if clean.shape != noisy.shape:
        raise ValueError(f"attention maps differ in shape: {tuple(clean.shape)} vs {tuple(noisy.shape)}")
    return {
        "kl": kl_divergence(clean, noisy).mean(dim=(-2, -1)),
        "entropy_clean": entropy(clean).mean(dim=(-2, -1)),
        "entropy_noisy": entropy(noisy).mean(dim=(-2, -1)),
    }
