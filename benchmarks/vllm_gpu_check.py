"""GPU check of vllm-noisy, in one call (about 5 minutes on one GPU):

1. installs the GPU vLLM (unless --no-install; VLLM_WHEELS=/dir installs from local wheels, for
   machines without an index),
2. runs the `vllm` tests on the V2 model runner (VLLM_USE_V2_MODEL_RUNNER=1),
3. prints tokens/s of vllm-noisy ÷ stock vllm per noise type at batch 1 and 64 (targets: embedding,
   hidden, lm_head >= 0.9, activation >= 0.7), against stock vLLM with its CUDA graphs and in eager mode, and
   vllm-noisy ÷ hf-noisy at the same batch.

    python benchmarks/vllm_gpu_check.py [--no-install] [--model PATH] [--tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOISE = {"embedding": {"noise": "embedding", "noise_scale": 0.01},
         "hidden": {"noise": "hidden", "noise_layer": 10, "noise_scale": 0.05},
         "lm_head": {"noise": "lm_head", "noise_scale": 0.05},
         "activation": {"noise": "activation", "noise_scale": 0.05}}
TARGET = {"embedding": 0.9, "hidden": 0.9, "lm_head": 0.9, "activation": 0.7}


def install() -> None:
    wheels = os.environ.get("VLLM_WHEELS")
    extra = ["--no-index", "--find-links", wheels] if wheels else []
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *extra, "vllm==0.32.0"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True)


def run_tests() -> int:
    env = {**os.environ, "VLLM_USE_V2_MODEL_RUNNER": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "vllm", "tests/test_vllm.py"],
                          cwd=ROOT, env=env).returncode


def _prompts(n: int) -> list[list[int]]:
    return [[1 + (i * 7919 + j * 104729) % 30000 for j in range(32)] for i in range(n)]


def vllm_tokens_per_s(llm, batch: int, tokens: int, config=None) -> float:
    from vllm import SamplingParams, TokensPrompt

    from lm_eval_noise.vllm_backend.model import request_extra

    params = [SamplingParams(max_tokens=tokens, ignore_eos=True, temperature=0,
                             extra_args=None if config is None else request_extra(i + 1, tokens, config))
              for i in range(batch)]
    prompts = [TokensPrompt(prompt_token_ids=p) for p in _prompts(batch)]
    llm.generate(prompts[:1], params[:1], use_tqdm=False)  # warm-up
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        best = max(best, batch * tokens / (time.perf_counter() - start))
    return best


def hf_tokens_per_s(model: str, batch: int, tokens: int, noise: dict) -> float:
    import torch
    from lm_eval.api.instance import Instance

    from lm_eval_noise.model import HFNoisyLM

    lm = HFNoisyLM(pretrained=model, dtype="bfloat16", device="cuda", batch_size=batch, **noise)
    text = "Write a long story about a lighthouse keeper."
    reqs = [Instance("generate_until", {"i": i}, (text, {"until": ["<never>"], "max_gen_toks": tokens,
                                                          "do_sample": False}), i, task_name="b")
            for i in range(batch)]
    lm.generate_until(reqs[:1])
    start = time.perf_counter()
    outs = lm.generate_until(reqs)
    elapsed = time.perf_counter() - start
    produced = sum(len(lm.tok_encode(o)) for o in outs)
    del lm
    torch.cuda.empty_cache()
    return produced / elapsed


def benchmark(model: str, tokens: int) -> dict:
    from vllm import LLM

    from lm_eval_noise.noise import NoiseConfig

    common = {"model": model, "dtype": "bfloat16", "gpu_memory_utilization": 0.25, "max_model_len": 1024}
    rows: dict = {}
    for label, extra in (("stock", {}), ("stock_eager", {"enforce_eager": True}),
                         ("noisy", {"enforce_eager": True, "enable_prefix_caching": False,
                                    "additional_config": {"lm_eval_noise": True}})):
        llm = LLM(**common, **extra)
        for batch in (1, 64):
            if label == "noisy":
                for name, args in NOISE.items():
                    rows[(name, batch)] = vllm_tokens_per_s(llm, batch, tokens, NoiseConfig.from_args(**args))
            else:
                rows[(label, batch)] = vllm_tokens_per_s(llm, batch, tokens)
        del llm
    for batch in (1, 64):
        rows[("hf_embedding", batch)] = hf_tokens_per_s(model, batch, tokens, NOISE["embedding"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--model", default=None, help="HF checkpoint (default: the embedded SmolLM2)")
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    if not args.no_install:
        install()
    code = run_tests()
    print(f"vllm tests on the V2 model runner: exit code {code}")
    sys.path.insert(0, str(ROOT))
    from lm_eval_noise.smollm import ensure_smollm2

    rows = benchmark(args.model or ensure_smollm2(), args.tokens)
    print(f"{'noise':<10} {'batch':>5} {'tok/s':>9} {'÷ stock':>8} {'÷ eager':>8}  target")
    for name in NOISE:
        for batch in (1, 64):
            rate = rows[(name, batch)]
            print(f"{name:<10} {batch:>5} {rate:>9.0f} {rate / rows[('stock', batch)]:>8.2f} "
                  f"{rate / rows[('stock_eager', batch)]:>8.2f}  >= {TARGET[name]}")
    for batch in (1, 64):
        print(f"vllm-noisy ÷ hf-noisy (embedding, batch {batch}): "
              f"{rows[('embedding', batch)] / rows[('hf_embedding', batch)]:.2f}")
    print(json.dumps({f"{k[0]}@{k[1]}": v for k, v in rows.items()}))
    return code


if __name__ == "__main__":
    sys.exit(main())
