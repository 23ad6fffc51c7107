"""Per-sample seeds from (noise_seed, task, doc content, request index, repeat index)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any


def _stable(value: Any) -> str:
    """JSON stand-in for values JSON cannot hold (images, arrays): their bytes, never their address."""
    to_bytes = getattr(value, "tobytes", None)
    if callable(to_bytes):
        return hashlib.blake2b(to_bytes(), digest_size=8).hexdigest()
    return f"<{type(value).__name__}>"


def doc_key(doc: Any, fallback: str) -> str:
    """A stable content key of a doc: unchanged by --limit, --samples, task order or process."""
    text = fallback if doc is None else json.dumps(doc, sort_keys=True, ensure_ascii=False, default=_stable)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def sample_seed(noise_seed: int, task: str, key: str, request_idx: int, repeat: int) -> int:
    """A 63-bit seed (fits int64 tensors) for one generated sample."""
    text = f"{noise_seed}\x1f{task}\x1f{key}\x1f{request_idx}\x1f{repeat}"
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def request_seeds(requests: list, noise_seed: int) -> list[tuple[int, int]]:
    """(seed, repeat index) per request, in order; repeats are the K copies the evaluator passes."""
    seen: Counter = Counter()
    out = []
    for req in requests:
        key = doc_key(getattr(req, "doc", None), req.args[0])
        ident = (getattr(req, "task_name", None) or "", key, getattr(req, "idx", 0))
        repeat = seen[ident]
        seen[ident] += 1
        out.append((sample_seed(noise_seed, ident[0], key, ident[2], repeat), repeat))
    return out


def repeat_seed(noise_seed: int, task: str, repeat: int) -> int:
    """A 63-bit seed shared by every doc of one repeat index of a task (weight_draw=repeat's draw)."""
    return sample_seed(noise_seed, task, "\x1eweight-draw", 0, repeat)
