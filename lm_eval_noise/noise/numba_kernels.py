"""CPU kernels compiled with numba: the noise hash and the per-token std, one pass per value each.

Eager tensor code pays a full pass over memory, and on a decode step's small inputs a cache-cold
dispatch, for every op. On one core: the noise streams' hash (a dozen in-place passes in
counter._mix32_int32, then the shift, conversion and affine step) drops from about 6 ns to 0.6 ns per
value, with the same bits; the two-pass float64 std drops from eight ops to one call. Imported only
through compiled.kernels(): numba is optional (pip install "lm-eval-noise[fast]").
"""

from __future__ import annotations

import math

import numba
import numpy as np

from lm_eval_noise.noise.counter import _C1, _C2

_U32, _F32, _F64 = np.uint32, np.float32, np.float64


def _compile(signature: str):
    """Compile at import for the one signature the caller uses, kept in numba's cache (__pycache__, or
    the user's cache folder on a read-only install) so later processes load it; with no writable cache
    anywhere, compile for this process only."""

    def compile_(function):
        try:
            return numba.njit(signature, cache=True, nogil=True)(function)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return numba.njit(signature, nogil=True)(function)

    return compile_


@_compile("void(uint32[::1], uint32[::1], float64, float64, float32[:, ::1])")
def hash_affine(keys, index, a, b, out):  # pragma: no cover - runs compiled
    """out[r, j] = a * k + b in float32, k the top 23 bits of mix32(keys[r] ^ index[j]): a block of
    counter._streams' values before the distribution's map (a and b are multiples of 2**-24: exact in
    float32). Products wrap modulo 2**32, as counter._mix32_int32's int32 ones do."""
    scale, shift = _F32(a), _F32(b)
    for r in range(keys.shape[0]):
        key, row = keys[r], out[r]
        for j in range(index.shape[0]):
            x = _U32(key ^ index[j])
            x = _U32(_U32(x ^ (x >> _U32(16))) * _U32(_C1))
            x = _U32(_U32(x ^ (x >> _U32(15))) * _U32(_C2))
            x = _U32(x ^ (x >> _U32(16)))
            row[j] = _F32(x >> _U32(9)) * scale + shift


@_compile("void(float32[:, ::1], float32[:, ::1])")
def row_std(x, out):  # pragma: no cover - runs compiled
    """out[r, 0] = the unbiased std of row x[r]: two passes (mean, then centred squares) in float64,
    rounded once to float32, as base.feature_std's tensor path. Each pass keeps eight partial sums in a
    fixed order (independent chains the CPU overlaps), so a row gets the same value in any batch."""
    n = x.shape[1]
    whole = n - n % 8
    for r in range(x.shape[0]):
        row = x[r]
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for j in range(0, whole, 8):
            s0 += _F64(row[j])
            s1 += _F64(row[j + 1])
            s2 += _F64(row[j + 2])
            s3 += _F64(row[j + 3])
            s4 += _F64(row[j + 4])
            s5 += _F64(row[j + 5])
            s6 += _F64(row[j + 6])
            s7 += _F64(row[j + 7])
        for j in range(whole, n):
            s0 += _F64(row[j])
        mean = (((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))) / n
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for j in range(0, whole, 8):
            d0 = _F64(row[j]) - mean
            d1 = _F64(row[j + 1]) - mean
            d2 = _F64(row[j + 2]) - mean
            d3 = _F64(row[j + 3]) - mean
            d4 = _F64(row[j + 4]) - mean
            d5 = _F64(row[j + 5]) - mean
            d6 = _F64(row[j + 6]) - mean
            d7 = _F64(row[j + 7]) - mean
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
            s4 += d4 * d4
            s5 += d5 * d5
            s6 += d6 * d6
            s7 += d7 * d7
        for j in range(whole, n):
            d0 = _F64(row[j]) - mean
            s0 += d0 * d0
        out[r, 0] = _F32(math.sqrt((((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))) / (n - 1)))
