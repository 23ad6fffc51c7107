"""The one small interface every injection point implements, and the relative-noise helper they share."""

from __future__ import annotations

from typing import Protocol

import torch
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise import compiled
from lm_eval_noise.noise.counter import is_compiling, normal, position_keys
from lm_eval_noise.noise.state import NoiseState


class Injector(Protocol):
    """An injection point: registers hooks reading a NoiseState; the caller removes them."""

    def attach(self, state: NoiseState) -> list[RemovableHandle]: ...


def token_noise(state: NoiseState, site: int, width: int, size: int, device: torch.device,
                per_sequence: bool = False) -> torch.Tensor:
    """Standard noise [B, width, size] on `device` (layers may sit on several devices), zeroed where
    injection is off."""
    ahead = state.lookahead(site, size, per_sequence) if width == 1 else None
    if ahead is not None:
        return ahead.to(device)
    keys = position_keys(state.site_keys(site), None if per_sequence else state.position_hash_for(width)).to(device)
    eps = normal(keys, size, state.config.noise_dist)
    return eps * state.position_mask(width).to(device)[..., None]


def scaled_token_noise(state: NoiseState, site: int, width: int, size: int, dtype: torch.dtype,
                       device: torch.device) -> torch.Tensor:
    """token_noise times each row's sigma, in `dtype`: what add_relative_noise multiplies by std(x)."""
    if width == 1 and state.config.noise_schedule == "constant":
        ahead = state.lookahead(site, size, scaled=True)
        if ahead is not None:
            return ahead.to(device, dtype)
    return (token_noise(state, site, width, size, device) * state.scale.to(device)).to(dtype)


# Feature widths for which CPU rows take the two-pass float64 std: 4-7x faster than torch's CPU std
# (a one-value-at-a-time Welford loop, the largest noise cost of a decode step at batch 32) on a
# [32, 1024] decode input, and slower only on single short rows. Chosen by width, never by batch size, so
# a row's std is computed the same way at any batch size; below the upper bound one row's sum is never
# split across threads.
FAST_STD_WIDTHS = range(512, 1 << 15)
# Rows per float64 copy: a prefill's input is centred a slice at a time, so the copy stays small.
_STD_CHUNK = 1 << 20


def feature_std(x: torch.Tensor) -> torch.Tensor:
    """std over the last dim (unbiased, keepdim). On CPU rows of a width in FAST_STD_WIDTHS: a centred
    sum of squares in float64, rounded once to x's dtype. Tested against torch.std in fp32, bf16 and fp16:
    of 155,000 rows of widths 512-4096, one differed, in the last bit, and its mean was 10**4 times its
    std. float32 rows run compiled when numba is there (numba_kernels.row_std): its float64 sums add in
    another order, so a row whose std sits on a float32 rounding boundary can round the other way (none
    of 84,000 random rows did; rows built for it do), one ulp off."""
    width = x.shape[-1]
    if x.device.type != "cpu" or width not in FAST_STD_WIDTHS:
        return x.std(dim=-1, keepdim=True)
    rows = x.reshape(-1, width)
    out = torch.empty(rows.shape[0], 1, dtype=x.dtype)
    kernels = compiled.kernels() if x.dtype == torch.float32 and not is_compiling() else None
    if kernels is not None:  # the same two passes compiled: one call instead of eight cache-cold ops
        kernels.row_std(rows.detach().contiguous().numpy(), out.numpy())
        return out.view(*x.shape[:-1], 1)
    step = max(1, _STD_CHUNK // width)
    for start in range(0, rows.shape[0], step):  # each row alone: the same value in any chunk
        centred = rows[start : start + step].to(torch.float64)
        centred -= centred.mean(dim=-1, keepdim=True)
        out[start : start + step] = centred.square_().sum(dim=-1, keepdim=True).div_(width - 1).sqrt_()
    return out.view(*x.shape[:-1], 1)


def add_relative_noise(x: torch.Tensor, state: NoiseState, site: int, noise: torch.Tensor | None = None,
                       share_std: bool = False) -> torch.Tensor:
    """x + eps * sigma * std(x over features), std per token so padding and batch-mates never matter.

    `noise`: this site's scaled_token_noise already drawn for the whole forward ([B, T, d]), if any.
    `share_std`: reuse the std of the previous call when it got the very same tensor (q/k/v and gate/up
    projections read one input). At most two tensor ops per call: hooks on every Linear run this at
    every decode step."""
    source = x
    flat = x.dim() == 2
    if flat:  # [B*T, d] inputs (some layers flatten tokens)
        batch, width = len(state.seeds), state.width
        if x.shape[0] != batch * width:
            raise ValueError(
                f"cannot map a [{x.shape[0]}, {x.shape[1]}] input to {batch} rows x {width} tokens "
                "(token-routed layers such as MoE experts): exclude it with noise_targets"
            )
        x = x.view(batch, width, x.shape[-1])
    if noise is None:
        eps = scaled_token_noise(state, site, x.shape[1], x.shape[-1], x.dtype, x.device)
    else:
        # The head may see only the last tokens. Slice and convert only when needed: together they cost 5 us
        # per call even as no-ops, and this runs for every Linear at every decode step.
        eps = noise if noise.shape[1] == x.shape[1] else noise[:, -x.shape[1]:]
        if eps.device != x.device or eps.dtype != x.dtype:
            eps = eps.to(x.device, x.dtype)
    last = state.shared.get("std") if share_std else None
    if last is not None and last[0] is source:
        std = last[1]
    else:
        std = feature_std(x)
        if share_std:
            state.shared["std"] = (source, std)
    out = torch.addcmul(x, eps, std)
    return out.view(-1, out.shape[-1]) if flat else out
