"""Random-string prefixes: the untrained seed-conditioning baseline (Nagarajan et al., ICML 2025).

Each sample's prompt starts with a seeded random string of k characters and a separator; with greedy
decoding the prefix is the only source of diversity. The string comes from the sample's own seed (the
one its noise uses), so it is reproducible and independent of the batch.

Chat templates: lm-eval renders the template once per doc, before the K repeats exist, and hands the
model the rendered string. The prefix therefore goes into the rendered string, at the start of the last
user turn's content; that offset is found when the template is rendered (`user_turn_offset`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from lm_eval_noise.noise.counter import row_keys, site_id, uniform

SITE = site_id("random_prefix")
SEPARATOR = "\n"
# A private-use character marks where the user's content starts in a rendered chat template.
_MARK = "\ue000"


def random_prefixes(seeds: Sequence[int], k: int, alphabet: str) -> list[str]:
    """One k-character string per sample seed, drawn uniformly from `alphabet`."""
    keys = row_keys(torch.tensor(list(seeds), dtype=torch.int64), SITE)
    picks = (uniform(keys, k) * len(alphabet)).long().clamp(max=len(alphabet) - 1)
    return ["".join(alphabet[i] for i in row) for row in picks.tolist()]


def with_prefix(context: str, prefix: str, offset: int = 0) -> str:
    """The context with `prefix` and the separator inserted at `offset` (0: the very start)."""
    return context[:offset] + prefix + SEPARATOR + context[offset:]


def user_turn_offset(render: Callable[[list[dict]], str], history: list[dict], rendered: str) -> int | None:
    """Where the last user message's content starts in `rendered` (render(history)), or None when the
    template changes that content in a way the marker does not survive."""
    users = [i for i, m in enumerate(history) if m.get("role") == "user" and isinstance(m.get("content"), str)]
    if not users:
        return None
    marked = [dict(m) for m in history]
    content = marked[users[-1]]["content"]
    rest = content.lstrip()
    # After any leading whitespace: templates that trim the content still render the same text.
    marked[users[-1]]["content"] = content[: len(content) - len(rest)] + _MARK + rest
    text = render(marked)
    at = text.find(_MARK)
    if at < 0 or text.replace(_MARK, "", 1) != rendered:
        return None
    return at
