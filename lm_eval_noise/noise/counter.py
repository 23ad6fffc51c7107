"""Counter-based random numbers: eps = f(sample key, site, position, index) in a few tensor ops.

No generator state: a value depends only on its coordinates, so the same sample gets the same noise
at any batch size, on any rank and on any device, and a whole batch of per-sample streams costs one
vectorised call instead of a Python loop over rows.
"""

from __future__ import annotations

import hashlib
import math

import torch

_M32 = 0xFFFFFFFF
# Multipliers are odd and below 2**31, so products of 32-bit values fit in int64 without overflow.
_C1 = 0x7FEB352D
_C2 = 0x5BD1E995
_POS_SALT = 0x27D4EB2F
_POS_MUL = 0x61C88647
_INV23 = 1.0 / (1 << 23)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """Bijective 32-bit avalanche hash of int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * _C1) & _M32
    x = x ^ (x >> 15)
    x = (x * _C2) & _M32
    return x ^ (x >> 16)


def site_id(name: str) -> int:
    """A stable 32-bit id for an injection site (e.g. 'embedding', 'weight:model.layers.0.mlp')."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


def row_keys(seeds: torch.Tensor, site: int) -> torch.Tensor:
    """Combine 64-bit sample seeds [B] with a site id into 32-bit row keys [B]."""
    lo, hi = seeds & _M32, (seeds >> 32) & _M32
    return mix32(mix32(lo ^ site) ^ hi)


def position_hash(positions: torch.Tensor) -> torch.Tensor:
    """Hashes of token positions [B, T]; shared by every site of one forward."""
    return mix32((positions * _POS_MUL + _POS_SALT) & _M32)


def position_keys(keys: torch.Tensor, pos_hash: torch.Tensor | None) -> torch.Tensor:
    """Row keys [B] -> keys [B, T] per position (from position_hash); [B, 1] when pos_hash is None.

    A plain XOR: both sides are already avalanche hashes and `normal` mixes the result again."""
    if pos_hash is None:
        return keys[:, None]
    return keys[:, None] ^ pos_hash


_INDEX_CACHE: dict[tuple[int, str], torch.Tensor] = {}


def index_hash(n: int, device: torch.device) -> torch.Tensor:
    """Hashes of the indices 0..n-1 (cached): the per-feature half of every noise key."""
    key = (n, str(device))
    table = _INDEX_CACHE.get(key)
    if table is None:
        table = mix32(torch.arange(n, dtype=torch.int64, device=device) * 2 + 1)
        _INDEX_CACHE[key] = table
    return table


def _unit(h: torch.Tensor) -> torch.Tensor:
    """32-bit hashes -> float32 uniforms strictly inside (0, 1), symmetric: (k + 0.5) / 2**23. 23 bits,
    because float32 cannot hold (2**24 - 0.5) / 2**24: it rounds to 1.0 (an infinite Gumbel or erfinv)."""
    return ((h >> 9).to(torch.float32) + 0.5) * _INV23


def normal(keys: torch.Tensor, size: int, dist: str = "gaussian") -> torch.Tensor:
    """Standard noise of shape keys.shape + (size,), one independent stream per key: the inverse normal
    CDF of one hash stream (one hash and one erfinv per value, a third of Box-Muller's tensor ops), or
    (dist="uniform") a uniform of equal std."""
    u = uniform(keys, size)
    if dist == "uniform":
        return (u - 0.5) * math.sqrt(12.0)
    return torch.erfinv(u * 2.0 - 1.0) * math.sqrt(2.0)


def uniform(keys: torch.Tensor, size: int) -> torch.Tensor:
    """Uniforms in (0, 1) of shape keys.shape + (size,)."""
    return _unit(mix32(keys[..., None] ^ index_hash(size, keys.device)))
