"""Counter-based random numbers: eps = f(sample key, site, position, index) in a few tensor ops.

No generator state: a value depends only on its coordinates, so the same sample gets the same noise
at any batch size, on any rank and on any device, and a whole batch of per-sample streams costs one
vectorised call instead of a Python loop over rows.
"""

from __future__ import annotations

import hashlib
import math

import torch

from lm_eval_noise.noise import compiled

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


def _mix32_int32(x: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """mix32 on int32 tensors holding the same 32 bits (two's complement), in place: products wrap modulo
    2**32 and shifts are made logical by masking. Bit-identical to mix32 (tested), with half the bytes per
    value and no new tensor per op: this is where the noise of a whole decode step is made. `scratch`
    (x's shape and dtype) holds the shifted copies, so a caller looping over blocks allocates nothing."""
    tmp = torch.empty_like(x) if scratch is None else scratch
    for shift, mask, mul in ((16, 0xFFFF, _C1), (15, 0x1FFFF, _C2), (16, 0xFFFF, None)):
        torch.bitwise_right_shift(x, shift, out=tmp)
        x ^= tmp.bitwise_and_(mask)
        if mul is not None:
            x *= mul
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


def normal(keys: torch.Tensor, size: int, dist: str = "gaussian", factor: torch.Tensor | None = None,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """Standard noise of shape keys.shape + (size,), one independent stream per key: the inverse normal
    CDF of one hash stream (one hash and one erfinv per value, a third of Box-Muller's tensor ops), or
    (dist="uniform") a uniform of equal std. `factor` (broadcastable to keys' shape): each stream is
    multiplied by its key's factor (a position mask, a scale) while its block is still in cache. `out`: a
    contiguous float32 tensor of the result's size to write into (CPU), e.g. the previous lookahead table:
    a fresh tensor of tens of MiB is fresh pages, and faulting them in costs more than hashing into them."""
    return _streams(keys, size, "uniform" if dist == "uniform" else "gaussian", factor, out)


def uniform(keys: torch.Tensor, size: int) -> torch.Tensor:
    """Uniforms in (0, 1) of shape keys.shape + (size,)."""
    return _streams(keys, size, "unit")


# Each output as a * k + b of the hash's top 23 bits k, then an optional in-place map. The affine step
# is _unit followed by the distribution's own affine step folded into one: both are exact in float32
# (every intermediate is a multiple of 2**-24 below 2 in size), so the values are bit-identical to
# unit-then-transform (tested) at two fewer passes.
_OUTPUTS = {
    "unit": (_INV23, 0.5 * _INV23, None),  # _unit
    "gaussian": (2.0 * _INV23, _INV23 - 1.0, lambda v: v.erfinv_().mul_(math.sqrt(2.0))),  # _unit * 2 - 1
    "uniform": (_INV23, 0.5 * _INV23 - 0.5, lambda v: v.mul_(math.sqrt(12.0))),  # _unit - 0.5
}
# Elements hashed at once on CPU: the dozen passes of the tensor hash, or the compiled hash and the
# distribution's map, then run in the core's cache, not memory (5x faster for a decode step's activation
# noise than one pass per op over the whole tensor; blocks of 2**17 beat 2**16 and 2**18 on a 2 MiB L2).
_CPU_BLOCK = 1 << 17
# torch.compiler.is_compiling is missing from the oldest torch releases pyproject admits.
is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def _streams(keys: torch.Tensor, size: int, output: str, factor: torch.Tensor | None = None,
             out: torch.Tensor | None = None) -> torch.Tensor:
    """Values of `output` (_OUTPUTS) times `factor`, of shape keys.shape + (size,): one stream of `size`
    values per key. Same values whether or not the work is done in blocks."""
    a, b, post = _OUTPUTS[output]
    index = index_hash(size, keys.device, torch.int32)
    flat = keys.reshape(-1).to(torch.int32).contiguous()  # the compiled hash reads it as a flat array
    scale = None if factor is None else factor.to(keys.device, torch.float32).expand(keys.shape).reshape(-1, 1)
    rows = max(1, _CPU_BLOCK // size)
    cpu = keys.device.type == "cpu" and not is_compiling()
    kernels = compiled.kernels() if cpu else None
    if not cpu or (kernels is None and flat.numel() <= rows):
        # One pass per op: accelerators want few large kernels, and a compiled graph fuses them anyway.
        out = ((_mix32_int32(flat[:, None] ^ index) >> 9) & 0x7FFFFF).to(torch.float32).mul_(a).add_(b)
        out = out if post is None else post(out)
        return (out if scale is None else out * scale).view(*keys.shape, size)
    # Block by block into preallocated buffers: every op of a block runs in cache and allocates nothing.
    if out is None or out.dtype != torch.float32 or out.numel() != flat.numel() * size or not out.is_contiguous():
        out = torch.empty(flat.numel(), size, dtype=torch.float32)
    out = out.view(flat.numel(), size)
    if kernels is not None:  # the hash and affine step compiled: one pass per value
        keys_u32, index_u32, out_np = flat.numpy().view("uint32"), index.numpy().view("uint32"), out.numpy()
    else:
        hashes = torch.empty(rows, size, dtype=torch.int32)
        scratch = torch.empty_like(hashes)
    for start in range(0, flat.numel(), rows):
        stop = min(start + rows, flat.numel())
        o = out[start:stop]
        if kernels is not None:
            kernels.hash_affine(keys_u32[start:stop], index_u32, a, b, out_np[start:stop])
        else:
            h = hashes[: stop - start]
            torch.bitwise_xor(flat[start:stop, None], index, out=h)
            _mix32_int32(h, scratch[: stop - start])
            o.copy_(h.bitwise_right_shift_(9).bitwise_and_(0x7FFFFF)).mul_(a).add_(b)
        if post is not None:
            post(o)
        if scale is not None:
            o.mul_(scale[start:stop])
    return out.view(*keys.shape, size)
