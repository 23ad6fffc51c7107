"""Generation throughput: stock lm-eval `hf` vs `hf-noisy` for each noise type, on the same weights.

Both models wrap one loaded model object, run the same requests through lm-eval's `generate_until`
and generate exactly `tokens` new tokens per sample (EOS suppressed), so the ratio isolates the cost
of noise. The default is the tiny offline model on CPU; `--model_args pretrained=...` takes any model
and `--random-init CONFIG.json` builds a random model from a transformers config (e.g. a 1B Llama).
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from typing import Any

import torch

NOISE_CASES = {
    "embedding": "noise=embedding,noise_scale=0.01",
    "hidden": "noise=hidden,noise_layer=1,noise_scale=0.05",
    "lm_head": "noise=lm_head,noise_scale=0.05",
    "activation": "noise=activation,noise_scale=0.05",
    "weight": "noise=weight,noise_scale=0.01",
    "embedding fast_decode": "noise=embedding,noise_scale=0.01,fast_decode=true",
    "activation fast_decode": "noise=activation,noise_scale=0.05,fast_decode=true",
}
CASE_ARGS = {case: dict(kv.split("=") for kv in args.split(",")) for case, args in NOISE_CASES.items()}
TARGETS = {"embedding": 0.97, "hidden": 0.97, "lm_head": 0.97, "activation": 0.85, "weight": 0.95}
# fast_decode with noise on vs stock hf, at batch 1 on a GPU (the compiled step is bandwidth-bound there).
FAST_TARGET = 5.0


def _load(model_args: str | None, random_init: str | None, device: str, dtype: str):
    from lm_eval.models.utils_hf import get_dtype
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from lm_eval_noise.tiny import ensure_tiny_model

    if random_init:
        config = AutoConfig.from_pretrained(random_init)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=get_dtype(dtype))
        tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_model())  # ids stay inside any real vocab
        name = f"random-init {os.path.basename(random_init)}"
    else:
        from lm_eval.utils import simple_parse_args_string

        args = simple_parse_args_string(model_args or "")
        path = args.get("pretrained") or ensure_tiny_model()
        model = AutoModelForCausalLM.from_pretrained(path, dtype=get_dtype(dtype))
        tokenizer = AutoTokenizer.from_pretrained(path)
        name = "tiny llama" if "pretrained" not in args else str(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer, name


def _requests(batch: int, tokens: int):
    from lm_eval.api.instance import Instance

    gen = {"until": [], "max_gen_toks": tokens, "min_new_tokens": tokens, "do_sample": False}
    prompts = [f"Once upon a time the robot number {i} found" for i in range(batch)]
    return [
        Instance("generate_until", {"prompt": p}, (p, dict(gen)), idx=0, metadata=("bench", i, 1))
        for i, p in enumerate(prompts)
    ]


def _run(lm, batch: int, tokens: int) -> float:
    """Tokens per second of one generate_until call."""
    requests = _requests(batch, tokens)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    lm.generate_until(requests, disable_tqdm=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return batch * tokens / (time.perf_counter() - start)


def _time_pair(stock, noisy, batch: int, tokens: int, repeats: int) -> tuple[float, float]:
    """Best tokens/s of stock and noisy over `repeats` interleaved runs after one warm-up each:
    interleaving keeps drift of a shared machine out of the ratio."""
    _run(stock, batch, tokens), _run(noisy, batch, tokens)
    best_stock = best_noisy = 0.0
    for _ in range(repeats):
        best_stock = max(best_stock, _run(stock, batch, tokens))
        best_noisy = max(best_noisy, _run(noisy, batch, tokens))
    return best_stock, best_noisy


def _agreement(fast, eager, case: str, batch: int, tokens: int) -> dict:
    """Share of samples fast_decode generates exactly as the eager path does (1.0 in fp32; bf16 may
    round differently in compiled kernels)."""
    ours = fast.generate_until(_requests(batch, tokens), disable_tqdm=True)
    theirs = eager.generate_until(_requests(batch, tokens), disable_tqdm=True)
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    return {"case": f"{case} same samples as eager bs={batch}", "ours": float(same), "reference": float(len(ours)),
            "ratio": same / len(ours), "unit": "samples", "target": None}


def _peak_memory(lm, batch: int, tokens: int) -> float | None:
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    lm.generate_until(_requests(batch, tokens), disable_tqdm=True)
    return torch.cuda.max_memory_allocated() / 2**20


def run(quick: bool = False, model_args: str | None = None, random_init: str | None = None,
        device: str | None = None, dtype: str = "auto", batches: tuple[int, ...] | None = None,
        tokens: int | None = None, **_: Any) -> dict:
    """hf-noisy / hf tokens per second for every noise type and batch size."""
    from lm_eval.models.huggingface import HFLM

    from lm_eval_noise.model import HFNoisyLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer, name = _load(model_args, random_init, device, dtype if dtype != "auto" else (
        "bfloat16" if device.startswith("cuda") else "float32"))
    batches = batches or ((1, 8) if quick else (1, 8, 32))
    tokens = tokens or (16 if quick else 128)
    repeats = 2 if quick else 3
    common = {"pretrained": model, "tokenizer": tokenizer, "device": device}
    rows = []
    for batch in batches:
        stock = HFLM(batch_size=batch, **common)
        speed = {}
        for case, noise in CASE_ARGS.items():
            noisy = HFNoisyLM(batch_size=batch, **common, **noise)
            reference, ours = _time_pair(stock, noisy, batch, tokens, repeats)
            speed[case] = ours
            fast = case.endswith(" fast_decode")
            if fast and not noisy.fast_decode:  # compilation failed: these figures are the eager path's
                rows.append({"case": f"{case} bs={batch}: compile failed, see the warning", "ours": ours,
                             "reference": reference, "ratio": ours / reference, "unit": "tokens/s", "target": None})
                continue
            target = (FAST_TARGET if batch == 1 and device.startswith("cuda") else None) if fast else TARGETS[case]
            rows.append({
                "case": f"{case} bs={batch}", "ours": ours, "reference": reference, "ratio": ours / reference,
                "unit": "tokens/s", "target": target,
            })
            if fast:
                eager = speed[case.removesuffix(" fast_decode")]
                rows.append({"case": f"{case} vs eager bs={batch}", "ours": ours, "reference": eager,
                             "ratio": ours / eager, "unit": "tokens/s", "target": None})
                rows.append(_agreement(noisy, HFNoisyLM(batch_size=batch, **common, **{
                    k: v for k, v in noise.items() if k != "fast_decode"}), case, batch, tokens))
            del noisy
            gc.collect()
    memory = {}
    if torch.cuda.is_available():
        batch = batches[0]
        memory["hf"] = _peak_memory(HFLM(batch_size=batch, **common), batch, tokens)
        memory["weight"] = _peak_memory(HFNoisyLM(batch_size=batch, **common, **CASE_ARGS["weight"]), batch, tokens)
        largest = max(p.numel() * p.element_size() for p in model.parameters()) / 2**20
        rows.append({"case": "peak memory, weight noise", "ours": memory["weight"], "reference": memory["hf"],
                     "ratio": memory["hf"] / memory["weight"], "unit": "MiB",
                     "target": None, "note": f"extra {memory['weight'] - memory['hf']:.1f} MiB; largest tensor {largest:.1f} MiB"})
    return {
        "name": "generation",
        "rows": rows,
        "note": (f"{name} on {device}, {tokens} new tokens per sample, greedy; ratio = hf-noisy / hf tokens/s "
                 f"(higher is better), best of {repeats} runs interleaved with stock hf; 'vs eager' rows compare fast_decode with the eager hf-noisy path (the "
                 "compile happens in the untimed warm-up). Weight noise generates each sample alone (one draw "
                 "per sample), so at batch > 1 it runs at batch-1 speed."),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model_args")
    parser.add_argument("--random-init")
    parser.add_argument("--device")
    args = parser.parse_args()
    result = run(args.quick, args.model_args, args.random_init, args.device)
    print(result["note"])
    for row in result["rows"]:
        print(f"{row['case']:<28} {row['ours']:>10.1f} {row['reference']:>10.1f} {row['ratio']:>6.3f}  {row['unit']}")


if __name__ == "__main__":
    main()
