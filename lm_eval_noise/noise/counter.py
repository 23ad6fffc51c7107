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


def _mix32_int32(x: torch.Tensor) -> torch.Tensor:
    """mix32 on int32 tensors holding the same 32 bits (two's complement), in place: products wrap modulo
    2**32 and shifts are made logical by masking. Bit-identical to mix32 (tested), with half the bytes per
    value and no new tensor per op: this is where the noise of a whole decode step is made."""
    x ^= (x >> 16) & 0xFFFF
    x *= _C1
    x ^= (x >> 15) & 0x1FFFF
    x *= _C2
    x ^= (x >> 16) & 0xFFFF
    return x


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


_INDEX_CACHE: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}


def index_hash(n: int, device: torch.device, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """Hashes of the indices 0..n-1 (cached): the per-feature half of every noise key. int64 holds them
    as values in [0, 2**32), int32 as the same 32 bits (what the noise streams hash with)."""
    key = (n, str(device), dtype)
    table = _INDEX_CACHE.get(key)
    if table is None:
        table = mix32(torch.arange(n, dtype=torch.int64, device=device) * 2 + 1).to(dtype)
        _INDEX_CACHE[key] = table
    return table


def _unit(h: torch.Tensor) -> torch.Tensor:
    """32-bit hashes (int64, or int32 holding the same bits) -> float32 uniforms strictly inside (0, 1),
    symmetric: (k + 0.5) / 2**23, k the top 23 bits. 23 bits, because float32 cannot hold
    (2**24 - 0.5) / 2**24: it rounds to 1.0 (an infinite Gumbel or erfinv). Exact in float32 either way
    round: k * 2**-23 + 2**-24 needs 24 significant bits."""
    return ((h >> 9) & 0x7FFFFF).to(torch.float32).mul_(_INV23).add_(0.5 * _INV23)


def normal(keys: torch.Tensor, size: int, dist: str = "gaussian") -> torch.Tensor:
    """Standard noise of shape keys.shape + (size,), one independent stream per key: the inverse normal
    CDF of one hash stream (one hash and one erfinv per value, a third of Box-Muller's tensor ops), or
    (dist="uniform") a uniform of equal std."""
    if dist == "uniform":
        return _streams(keys, size, lambda u: u.sub_(0.5).mul_(math.sqrt(12.0)))
    return _streams(keys, size, lambda u: u.mul_(2.0).sub_(1.0).erfinv_().mul_(math.sqrt(2.0)))


def uniform(keys: torch.Tensor, size: int) -> torch.Tensor:
    """Uniforms in (0, 1) of shape keys.shape + (size,)."""
    return _streams(keys, size, lambda u: u)


# Elements hashed at once on CPU: the dozen passes of the hash then run in the core's cache, not memory
# (4x faster for a decode step's activation noise than one pass per op over the whole tensor).
_CPU_BLOCK = 1 << 16
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def _streams(keys: torch.Tensor, size: int, finish) -> torch.Tensor:
    """finish(uniforms) of shape keys.shape + (size,): one stream of `size` values per key; `finish`
    maps float32 uniforms in place. Same values whether or not the work is done in blocks."""
    index = index_hash(size, keys.device, torch.int32)
    flat = keys.reshape(-1).to(torch.int32)
    rows = max(1, _CPU_BLOCK // size)
    if keys.device.type != "cpu" or flat.numel() <= rows or _is_compiling():
        # One pass per op: accelerators want few large kernels, and a compiled graph fuses them anyway.
        return finish(_unit(_mix32_int32(flat[:, None] ^ index))).view(*keys.shape, size)
    out = torch.empty(flat.numel(), size, dtype=torch.float32)
    for start in range(0, flat.numel(), rows):
        out[start : start + rows] = finish(_unit(_mix32_int32(flat[start : start + rows, None] ^ index)))
    return out.view(*keys.shape, size)
