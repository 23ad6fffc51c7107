"""Which request each generated row is, for one `generate_until` call of hf-noisy.

lm-eval's HFLM sorts, batches and pads the requests itself and hands `_model_generate` only token
tensors. hf-noisy needs each row's request (its seed, its repeat index) to draw that row's noise, so
the rows are matched to requests by their context strings when HFLM encodes a batch: HFLM calls
`tok_batch_encode` on a batch's contexts right before it generates that batch. The steps, in order:

  expect(contexts)   the requests of one HFLM call (indices into the whole call), before it starts;
  encoded(strings)   HFLM encoded a batch: its rows are the next requests with these contexts;
  rows()             HFLM generates that batch: the request index of each row (None outside a call);
  record(i, ...)     per-sample provenance for request i, logged with the sample (results.samples).

Equal contexts inside one HFLM call are the K repeats of a doc (or equal prompts): lm-eval's sort is
stable, so they are taken in request order, which is the order their seeds were assigned in.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Sequence


class RequestRows:
    def __init__(self, count: int, seeds: Sequence[tuple[int, int]] = ()) -> None:
        #: (seed, repeat index) per request, when the call is seeded.
        self.seeds = list(seeds)
        #: Per-sample record fields per request (results.samples.SampleRecord's).
        self.records: list[dict[str, Any]] = [{} for _ in range(count)]
        self._pending: dict[str, deque[int]] | None = None
        self._encoded: list[int] | None = None

    def expect(self, contexts: Sequence[tuple[int, str]]) -> None:
        """The (request index, context) pairs of the next HFLM call."""
        self._pending = defaultdict(deque)
        for i, context in contexts:
            self._pending[context].append(i)

    def done(self) -> None:
        """That HFLM call returned: later encodings (e.g. scoring) belong to no generation."""
        self._pending = None
        self._encoded = None

    def encoded(self, strings: Sequence[str]) -> None:
        if self._pending is not None:
            self._encoded = [self._pending[s].popleft() for s in strings]

    def rows(self) -> list[int] | None:
        """The request index of each row of the batch being generated, once: None if it is not ours."""
        rows, self._encoded = self._encoded, None
        return rows

    def record(self, i: int, **fields: Any) -> None:
        self.records[i].update(fields)
