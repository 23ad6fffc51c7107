"""Per-sample seeded sampling (Gumbel-max) and the alpha / T* temperature compensation."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor
from transformers.generation.logits_process import MinPLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from lm_eval_noise.noise.counter import position_hash, position_keys, row_keys, site_id, uniform

SITE = site_id("sampling")


def warpers(top_k: int | None, top_p: float | None, min_p: float | None) -> list[LogitsProcessor]:
    """The same truncation warpers (and order) transformers applies when sampling."""
    out: list[LogitsProcessor] = []
    if top_k:
        out.append(TopKLogitsWarper(top_k=int(top_k)))
    if top_p is not None and top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=float(top_p)))
    if min_p:
        out.append(MinPLogitsWarper(min_p=float(min_p)))
    return out


class SeededSampler(LogitsProcessor):
    """argmax(logits / T + Gumbel) is a draw from softmax(logits / T); the Gumbel noise is keyed to
    (sample, step), so greedy decoding over these scores samples each row from its own stream."""

    def __init__(self, seeds: torch.Tensor, temperature: torch.Tensor, prompt_width: int, truncation: list):
        self.keys = row_keys(seeds, SITE)
        self.temperature = temperature.to(seeds.device, torch.float32)
        self.prompt_width = prompt_width
        self.truncation = truncation

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_width
        scores = scores.float() / self.temperature.to(scores.device)[:, None]
        for warper in self.truncation:
            scores = warper(input_ids, scores)
        steps = torch.full((len(self.keys), 1), step, dtype=torch.int64, device=self.keys.device)
        u = uniform(position_keys(self.keys, position_hash(steps))[:, 0], scores.shape[-1]).to(scores.device)
        return scores - torch.log(-torch.log(u))


def alpha(clean_logits: torch.Tensor, noisy_logits: torch.Tensor) -> torch.Tensor:
    """alpha = Var(noisy - clean) / Var(clean) over the vocabulary, per row."""
    clean = clean_logits.float()
    diff = noisy_logits.float() - clean
    return diff.var(dim=-1) / clean.var(dim=-1).clamp(min=1e-12)


def t_star(t_base: float, alphas: torch.Tensor) -> torch.Tensor:
    """T* = T_base * sqrt(1 + alpha)."""
    return t_base * torch.sqrt(1.0 + alphas)


def is_sampling(do_sample: bool, temperature: float | None) -> bool:
    """Whether lm-eval-normalised generation kwargs sample (a temperature of 0 decodes greedily)."""
    return bool(do_sample) and (temperature is None or temperature > 0)
