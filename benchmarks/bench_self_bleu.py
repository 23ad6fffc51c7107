"""Self-BLEU: lm_eval_noise.metrics.self_bleu against nltk's sentence_bleu pair by pair.

K samples of ~200 whitespace tokens (180-220, uniform) drawn from a fixed random
vocabulary of 1,000 words, max_n = 4, both definitions ("max" and "multi_ref"),
K = 10, 100, 500 (quick: K = 10 and 50). Both sides run on one core (BLAS held to
one thread). Ours: best of 3 calls after a warm-up call. nltk: one pass; at K = 500
only the first 10 hypotheses are scored and the time is extrapolated linearly to
all K (each hypothesis costs the same: K - 1 references of the same size
distribution). Every row also checks that our per-hypothesis scores equal nltk's
on the hypotheses nltk scored (max abs difference).

Run: python benchmarks/bench_self_bleu.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import random
import sys
import time

NAME = "self_bleu"
VOCAB_SIZE = 1000
MAX_N = 4
NLTK_SUBSET = 10  # hypotheses nltk scores when K is too large to run in full
FULL_NLTK_MAX_K = 100


def make_samples(k: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i:04d}" for i in range(VOCAB_SIZE)]
    return [" ".join(rng.choices(vocab, k=rng.randint(180, 220))) for _ in range(k)]


def _one_core():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy's BLAS may then use more than one thread
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _nltk_scores(texts: list[str], method: str, hypotheses: range) -> list[float]:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    toks = [t.split() for t in texts]
    weights = (1.0 / MAX_N,) * MAX_N
    smooth = SmoothingFunction().method1
    out = []
    for i in hypotheses:
        others = [ref for j, ref in enumerate(toks) if j != i]
        if method == "max":
            out.append(max(sentence_bleu([r], toks[i], weights=weights, smoothing_function=smooth) for r in others))
        else:
            out.append(sentence_bleu(others, toks[i], weights=weights, smoothing_function=smooth))
    return out


def bench_one(k: int, method: str) -> dict:
    from lm_eval_noise.metrics.self_bleu import self_bleu, self_bleu_per_sample

    texts = make_samples(k, seed=k)
    self_bleu(texts, max_n=MAX_N, method=method)  # warm-up (lazy scipy import, caches)
    ours_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        self_bleu(texts, max_n=MAX_N, method=method)
        ours_times.append(time.perf_counter() - t0)
    ours_s = min(ours_times)
    ours_scores = self_bleu_per_sample(texts, max_n=MAX_N, method=method)

    n_hyp = k if k <= FULL_NLTK_MAX_K else NLTK_SUBSET
    _nltk_scores(texts[:2], method, range(1))  # warm-up: nltk's import is slow and must not be timed
    t0 = time.perf_counter()
    nltk_scores = _nltk_scores(texts, method, range(n_hyp))
    nltk_measured_s = time.perf_counter() - t0
    nltk_s = nltk_measured_s * k / n_hyp
    max_abs_diff = max(abs(a - b) for a, b in zip(ours_scores[:n_hyp], nltk_scores))
    return {
        "case": f"self-BLEU {method} K={k}",
        "ours": ours_s,
        "reference": nltk_s,
        "ratio": nltk_s / ours_s,
        "unit": "s (nltk / ours)",
        "K": k,
        "method": method,
        "ours_s": ours_s,
        "nltk_s": nltk_s,
        "nltk_hypotheses_timed": n_hyp,
        "nltk_extrapolated": n_hyp < k,
        "speedup": nltk_s / ours_s,
        "max_abs_diff": max_abs_diff,
    }


def run(quick: bool = False) -> dict:
    """Run the benchmark; returns {"name", "rows", "note", "env"} (rows: one dict per K and method)."""
    ks = (10, 50) if quick else (10, 100, 500)
    rows = []
    with _one_core():
        for k in ks:
            for method in ("max", "multi_ref"):
                rows.append(bench_one(k, method))
    note = (
        f"K samples of 180-220 tokens from a fixed {VOCAB_SIZE}-word random vocabulary, max_n={MAX_N}, one core. "
        f"ours: best of 3 after a warm-up; nltk: sentence_bleu per hypothesis (per pair for 'max'), one pass"
        f"{'' if quick else f'; at K=500 nltk scored {NLTK_SUBSET} hypotheses and its time is extrapolated linearly to K'}. "
        "max_abs_diff: our per-hypothesis scores vs nltk's on the hypotheses nltk scored."
    )
    env = {"python": platform.python_version(), "machine": platform.machine()}
    with contextlib.suppress(Exception):
        import nltk
        import numpy

        env.update(nltk=nltk.__version__, numpy=numpy.__version__)
    return {"name": NAME, "quick": quick, "rows": rows, "note": note, "env": env}


def format_table(result: dict) -> str:
    lines = [
        "| K | method | ours (s) | nltk (s) | speedup | max abs diff |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        nltk = f"{r['nltk_s']:.2f}" + (f" (est. from {r['nltk_hypotheses_timed']})" if r["nltk_extrapolated"] else "")
        lines.append(
            f"| {r['K']} | {r['method']} | {r['ours_s']:.4f} | {nltk} | {r['speedup']:.0f}x | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n\n" + result["note"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 10 and 50 only")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    ok = all(math.isfinite(r["max_abs_diff"]) and r["max_abs_diff"] <= 1e-9 for r in result["rows"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
