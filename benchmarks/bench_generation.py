"""Generation throughput: stock lm-eval `hf` vs `hf-noisy` for each noise type, on the same weights.

Both models wrap one loaded model object, run the same requests through lm-eval's `generate_until`
and generate exactly `tokens` new tokens per sample (EOS suppressed), so the ratio isolates the cost
of noise. The default is the tiny offline model on CPU; `--model_args pretrained=...` takes any model
and `--random-init CONFIG.json` builds a random model from a transformers config (e.g. a 1B Llama).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

NOISE_CASES = {
    "embedding": "noise=embedding,noise_scale=0.01",
    "hidden": "noise=hidden,noise_layer=1,noise_scale=0.05",
    "lm_head": "noise=lm_head,noise_scale=0.05",
    "activation": "noise=activation,noise_scale=0.05",
    "weight (per repeat)": "noise=weight,noise_scale=0.01,weight_draw=repeat",
    "weight (per sample)": "noise=weight,noise_scale=0.01,weight_draw=sample",
}
# fast_decode of every noise type; on CPU (each compile costs about a minute on 2 cores) only these two.
NOISE_CASES.update({f"{case} fast_decode": f"{args},fast_decode=true" for case, args in list(NOISE_CASES.items())
                    if case != "weight (per sample)"})
CPU_FAST = ("embedding fast_decode", "activation fast_decode")
CASE_ARGS = {case: dict(kv.split("=") for kv in args.split(",")) for case, args in NOISE_CASES.items()}
# Stock hf timed against itself in the same pairs: the spread this machine alone puts on a pair ratio,
# i.e. how finely the run can judge the noise rows' targets (a row is "?" when its range is that wide).
SPREAD_CASE = "hf vs hf"
# Per-sample weight draws generate each sample alone: no throughput target beyond batch 1's.
TARGETS = {"embedding": 0.97, "hidden": 0.97, "lm_head": 0.97, "activation": 0.85, "weight (per repeat)": 0.95,
           "weight (per sample)": None}
TARGETS.update({f"{case} fast_decode": None for case in list(TARGETS) if case != "weight (per sample)"})
# The tiny model (the default): a decode step of about 1 ms exposes the hooks' fixed per-step Python
# cost, so its hook targets are lower, and activation noise (14 hooks a step) has none.
TINY_TARGETS = {**TARGETS, "embedding": 0.9, "hidden": 0.9, "lm_head": 0.9, "activation": None}
TINY_NAME = "tiny llama"
# Docs of one task repeat in the per-repeat weight rows (HumanEval has 164, GSM8K's test set 1,319):
# small enough for CPU runs, large enough that a repeat is more than one batch.
REPEAT_DOCS = 64
# fast_decode with noise on vs stock hf, at batch 1 on a GPU (the compiled step is bandwidth-bound there).
FAST_TARGET = 5.0


def parse_cases(cases: tuple[str, ...], batches: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """{case: the batch sizes it runs at} from --cases items "case" (every batch size) or "case@1+8"."""
    valid = [*CASE_ARGS, SPREAD_CASE]
    out: dict[str, tuple[int, ...]] = {}
    for item in cases:
        case, at_sign, at = (part.strip() for part in item.partition("@"))
        if case not in valid:
            raise SystemExit(f"--cases: unknown case {case!r}; valid values: {', '.join(valid)}")
        if case in out:
            raise SystemExit(f"--cases: {case!r} is given twice; give it once with all its batch sizes, "
                             f"e.g. '{case}@{'+'.join(map(str, batches))}'")
        if not at_sign:
            out[case] = batches
            continue
        try:
            chosen = tuple(dict.fromkeys(int(b) for b in at.split("+")))
        except ValueError:
            raise SystemExit(f"--cases: in {item!r}, @ must be followed by batch sizes joined by +, "
                             f"e.g. '{case}@{'+'.join(map(str, batches))}'") from None
        if not set(chosen) <= set(batches):
            raise SystemExit(f"--cases: {item!r} names batch sizes not in --batch-sizes "
                             f"({','.join(map(str, batches))})")
        out[case] = chosen
    return out


def check_options(quick: bool = False, batches: tuple[int, ...] | None = None, cases: tuple[str, ...] | None = None,
                  budget: float | None = None, clock: str = "wall", device: str | None = None,
                  **_: Any) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]] | None]:
    """The batch sizes and {case: batch sizes} a run will use, or SystemExit naming the bad option: called
    before anything loads (bench checks them before its first benchmark runs)."""
    if clock not in CLOCKS:
        raise SystemExit(f"--clock: {clock!r} is not valid; valid values: {', '.join(CLOCKS)}")
    if clock == "cpu" and (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        raise SystemExit("--clock cpu measures CPU work only; a GPU run needs --clock wall")
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise SystemExit(f"--budget: expected a positive number of seconds, got {budget}")
    batches = batches or ((1, 8) if quick else (1, 8, 32))
    return batches, parse_cases(cases, batches) if cases else None


def verdict(low: float, high: float, target: float | None) -> str | None:
    """A target is met only when the whole range of pair ratios clears it, missed only when none does."""
    if target is None:
        return None
    return "met" if low >= target else "not met" if high < target else "undecided"


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
        name = TINY_NAME if "pretrained" not in args else str(path)
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


# What a run is timed by: "wall" (perf_counter; GPUs, quiet machines) or "cpu" (this process's CPU time:
# on oversubscribed shared cores wall time mostly measures the other jobs, CPU time the work itself).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = {"now": time.perf_counter}


def _run(lm, docs: int, tokens: int) -> float:
    """Tokens per second of one generate_until call over `docs` requests (batched by the model)."""
    requests = _requests(docs, tokens)
    now = CLOCK["now"]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = now()
    lm.generate_until(requests, disable_tqdm=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return docs * tokens / (now() - start)


def time_pairs(stock, noisy, batch: int, tokens: int, pairs: int, docs: int | None = None) -> dict:
    """`pairs` back-to-back (stock, noisy) timings of `docs` requests (default: one batch) after one
    one-batch warm-up each, the order alternating, and the ratio within each pair: a shared machine's
    drift moves both halves of a pair alike, so the median pair ratio and its range say what one
    best-of-N cannot."""
    docs = docs or batch
    _run(stock, batch, tokens), _run(noisy, batch, tokens)
    stock_speeds, noisy_speeds = [], []
    for i in range(pairs):
        if i % 2:
            noisy_speeds.append(_run(noisy, docs, tokens))
            stock_speeds.append(_run(stock, docs, tokens))
        else:
            stock_speeds.append(_run(stock, docs, tokens))
            noisy_speeds.append(_run(noisy, docs, tokens))
    ratios = [n / s for n, s in zip(noisy_speeds, stock_speeds, strict=True)]
    return {"ours": statistics.median(noisy_speeds), "reference": statistics.median(stock_speeds),
            "ratio": statistics.median(ratios), "range": [min(ratios), max(ratios)], "pairs": pairs}


def _agreement(fast, eager, case: str, batch: int, tokens: int) -> dict:
    """Share of samples fast_decode generates exactly as the eager path does (1.0 in fp32; bf16 may
    round differently in compiled kernels)."""
    ours = fast.generate_until(_requests(batch, tokens), disable_tqdm=True)
    theirs = eager.generate_until(_requests(batch, tokens), disable_tqdm=True)
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    return {"case": f"{case} same samples as eager bs={batch}", "ours": float(same), "reference": float(len(ours)),
            "ratio": same / len(ours), "unit": "samples", "target": None}


def _largest_tensor_mib(model) -> float:
    return max(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def _peak_memory(lm, batch: int, tokens: int) -> float:
    """Peak accelerator memory (MiB) of one generate_until call."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    lm.generate_until(_requests(batch, tokens), disable_tqdm=True)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def _peak_rss_child(load_args: tuple, noise: dict | None, batch: int, tokens: int) -> float:
    """In a fresh process: load, generate once with stock hf (noise None) or hf-noisy, report peak RSS."""
    import resource

    from lm_eval.models.huggingface import HFLM

    from lm_eval_noise.model import HFNoisyLM

    model, tokenizer, _ = _load(*load_args)
    common = {"pretrained": model, "tokenizer": tokenizer, "device": "cpu", "batch_size": batch}
    lm = HFLM(**common) if noise is None else HFNoisyLM(**common, **noise)
    # Loading a random-init model peaks above what generation needs: start the peak afresh (Linux
    # resets VmHWM on "5" to clear_refs), so the figure is generation's own peak.
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        fresh = True
    except OSError:
        fresh = False
    lm.generate_until(_requests(batch, tokens), disable_tqdm=True)
    if fresh:
        with open("/proc/self/status") as handle:
            peak = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024  # KiB on Linux


def _peak_rss(load_args: tuple, noise: dict | None, batch: int, tokens: int) -> float:
    """Peak RSS (MiB) of a process that loads the model and generates once: the CPU's memory figure.
    The process runs this file (`--peak-rss`), so a child that fails is reported, never waited for."""
    import subprocess

    spec = json.dumps([list(load_args), noise, batch, tokens])
    done = subprocess.run([sys.executable, __file__, "--peak-rss", spec], capture_output=True, text=True,
                          timeout=1800, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("peak_rss_mib ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"peak RSS child failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return float(lines[-1].split()[1])


def memory_rows(model, common: dict, load_args: tuple, batch: int, tokens: int) -> list[dict]:
    """Peak memory with weight noise (per-repeat draws) vs stock hf: accelerator memory on a GPU, the
    whole process's RSS on CPU (each side a fresh process)."""
    from lm_eval.models.huggingface import HFLM

    from lm_eval_noise.model import HFNoisyLM

    noise = CASE_ARGS["weight (per repeat)"]
    if common["device"].startswith("cuda"):
        what = "peak accelerator memory"
        stock = _peak_memory(HFLM(batch_size=batch, **common), batch, tokens)
        weight = _peak_memory(HFNoisyLM(batch_size=batch, **common, **noise), batch, tokens)
    else:
        what = "peak RSS"
        stock = _peak_rss(load_args, None, batch, tokens)
        weight = _peak_rss(load_args, noise, batch, tokens)
    params = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return [{"case": f"{what}, weight noise bs={batch}", "ours": weight, "reference": stock,
             "ratio": weight / stock, "unit": "MiB", "target": None,
             "note": f"extra {weight - stock:.1f} MiB; largest tensor {_largest_tensor_mib(model):.1f} MiB; "
                     f"model {params:.1f} MiB"}]


def draw_row(noisy) -> dict:
    """Seconds of one weight draw and its restore (what per-repeat draws amortise over a task)."""
    weight = noisy.noise.weight
    weight.apply(1)
    weight.restore()  # the originals are saved: time the steady state
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    weight.apply(2)
    drawn = time.perf_counter()
    weight.restore()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    done = time.perf_counter()
    count = sum(p.numel() for p in weight.params.values())
    return {"case": "weight draw + restore", "ours": done - start, "reference": None, "ratio": None,
            "unit": "s", "target": None,
            "note": f"{count:,} numbers: draw {drawn - start:.3f} s, restore {done - drawn:.3f} s"}


def _cpu_kernels(device: str) -> str:
    """Which code drew the noise on CPU: numba's compiled kernels (the `fast` extra) or tensor ops."""
    if not device.startswith("cpu"):
        return "noise drawn by tensor ops on the device"
    from lm_eval_noise.noise import compiled

    if compiled.kernels() is None:
        return "CPU noise kernels: tensor ops (numba missing or unable to compile, or vLLM installed)"
    import numba

    return f"CPU noise kernels: numba {numba.__version__}"


def run(quick: bool = False, model_args: str | None = None, random_init: str | None = None,
        device: str | None = None, dtype: str = "auto", batches: tuple[int, ...] | None = None,
        tokens: int | None = None, pairs: int | None = None, cases: tuple[str, ...] | None = None,
        memory: bool = True, compile_backend: str | None = None, clock: str = "wall", threads: int | None = None,
        repeat_docs: int | None = None, budget: float | None = None,
        progress: Callable[[list[dict], list[str]], None] | None = None, **_: Any) -> dict:
    """hf-noisy / hf tokens per second for every noise type and batch size, in interleaved pairs.

    `repeat_docs`: docs per timed call of the per-repeat weight rows (default REPEAT_DOCS; --quick: one
    batch). One repeat of a task draws once and generates every doc under that draw, so these rows time
    a whole repeat of that many docs, draw and restore included: what the draw is amortised over.
    `cases`: names from CASE_ARGS or SPREAD_CASE, each run at every batch size or, written "case@1+8",
    at those only; at each batch size in the order given (a fast_decode case's 'vs eager' row needs its
    eager case earlier at that batch size). `budget`: seconds after which no further case starts (a
    time-limited machine); the cases left are listed in `not_run` and the note, and the memory rows
    still run. `progress(rows, not_run)` is called after every case, run or skipped, so a run stopped
    early keeps what it measured."""
    from lm_eval.models.huggingface import HFLM

    from lm_eval_noise.model import FAST_DECODE_COMPILE, HFNoisyLM

    batches, at_batches = check_options(quick, batches, cases, budget, clock, device)
    CLOCK["now"] = CLOCKS[clock]
    if threads:
        torch.set_num_threads(threads)
    if compile_backend:  # e.g. "eager": trace fast_decode's step without code generation (dry runs)
        FAST_DECODE_COMPILE["backend"] = compile_backend
    started = time.perf_counter()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype if dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    load_args = (model_args, random_init, device, dtype)
    model, tokenizer, name = _load(*load_args)
    tokens = tokens or (16 if quick else 128)
    pairs = pairs or (3 if quick else 5)
    repeat_docs = repeat_docs or (0 if quick else REPEAT_DOCS)
    if at_batches is None:
        at_batches = {case: batches for case in (SPREAD_CASE, *CASE_ARGS) if device.startswith("cuda")
                      or not case.endswith(" fast_decode") or case in CPU_FAST}
    common = {"pretrained": model, "tokenizer": tokenizer, "device": device}
    rows: list[dict] = []
    not_run: list[str] = []
    drawn = False  # the draw + restore row: once, at the first batch size per-repeat weight noise runs at
    for batch in batches:
        stock = HFLM(batch_size=batch, **common)
        speed = {}  # eager tokens/s of this batch size, for the 'vs eager' rows of fast_decode cases after it
        for case in (case for case, case_batches in at_batches.items() if batch in case_batches):
            if budget is not None and time.perf_counter() - started > budget:
                not_run.append(f"{case} bs={batch}")
                if progress:
                    progress(rows, not_run)
                continue
            noise = CASE_ARGS.get(case, {})
            print(f"generation: {case} bs={batch}", file=sys.stderr, flush=True)
            noisy = None
            try:
                if case == SPREAD_CASE:
                    timed = time_pairs(stock, HFLM(batch_size=batch, **common), batch, tokens, pairs)
                    rows.append({"case": f"{case} bs={batch}", **timed, "unit": "tokens/s", "target": None,
                                 "verdict": None})
                    continue
                noisy = HFNoisyLM(batch_size=batch, **common, **noise)
                docs = max(batch, repeat_docs) if case.startswith("weight (per repeat)") else batch
                timed = time_pairs(stock, noisy, batch, tokens, pairs, docs)
                if docs != batch:
                    timed["docs"] = docs
                print(f"generation: {case} bs={batch}: ratio {timed['ratio']:.3f} ({timed['range'][0]:.3f}-"
                      f"{timed['range'][1]:.3f})", file=sys.stderr, flush=True)
                speed[case] = timed["ours"]
                fast = case.endswith(" fast_decode")
                if fast and not noisy.fast_decode:  # compilation failed: these figures are the eager path's
                    rows.append({"case": f"{case} bs={batch}: compile failed, see the warning", **timed,
                                 "unit": "tokens/s", "target": None})
                    continue
                targets = TINY_TARGETS if name == TINY_NAME else TARGETS
                target = (FAST_TARGET if batch == 1 and device.startswith("cuda") else None) if fast else targets[case]
                rows.append({"case": f"{case} bs={batch}", **timed, "unit": "tokens/s", "target": target,
                             "verdict": verdict(*timed["range"], target)})
                if fast and case.removesuffix(" fast_decode") in speed:
                    eager = speed[case.removesuffix(" fast_decode")]
                    rows.append({"case": f"{case} vs eager bs={batch}", "ours": timed["ours"], "reference": eager,
                                 "ratio": timed["ours"] / eager, "unit": "tokens/s (medians)", "target": None})
                if case == "weight (per repeat)" and not drawn:
                    rows.append(draw_row(noisy))
                    drawn = True
                if fast:  # last: a second model on the device, the step most likely to run out of memory
                    rows.append(_agreement(noisy, HFNoisyLM(batch_size=batch, **common, **{
                        k: v for k, v in noise.items() if k != "fast_decode"}), case, batch, tokens))
            finally:  # every row measured so far is on disk, whatever the next step does
                del noisy
                gc.collect()
                if progress:
                    progress(rows, not_run)
    if memory:
        rows += memory_rows(model, common, load_args, batches[-1], tokens)
    return {
        "name": "generation",
        "rows": rows,
        "not_run": not_run,
        "note": (f"{name} on {device} ({dtype}, torch threads: {torch.get_num_threads()}; {_cpu_kernels(device)}), "
                 f"{tokens} new tokens per sample, "
                 f"greedy, timed by {clock} clock; ratio = hf-noisy / hf tokens/s (higher is better): the median over {pairs} interleaved (hf, hf-noisy) pairs, with the "
                 "range of the pair ratios; a target is met only when the whole range clears it ('hf vs hf' rows "
                 "time stock hf against itself: the spread of this machine alone, the finest the run can judge). "
                 "'vs eager' rows "
                 "compare fast_decode with the eager hf-noisy path (the compile happens in the untimed warm-up). "
                 + (f"Per-repeat weight rows time whole repeats of {repeat_docs} docs (one batch if that is more): "
                    "one draw and one restore per call, as in one repeat of a task of that many docs; "
                    if repeat_docs else "Per-repeat weight rows time one batch per call, one draw each; ")
                 + "per-sample draws generate each sample alone."
                 + (f" Time budget of {budget:g} s spent; not run: {', '.join(not_run)}." if not_run else "")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model_args")
    parser.add_argument("--random-init")
    parser.add_argument("--device")
    parser.add_argument("--peak-rss", help=argparse.SUPPRESS)  # the child of _peak_rss: JSON arguments
    args = parser.parse_args()
    if args.peak_rss:
        load_args, noise, batch, tokens = json.loads(args.peak_rss)
        print(f"peak_rss_mib {_peak_rss_child(tuple(load_args), noise, batch, tokens)}")
        return
    result = run(args.quick, args.model_args, args.random_init, args.device)
    print(result["note"])
    for row in result["rows"]:
        print(f"{row['case']:<40} {row['ours']:>10.4g} {row['reference'] or 0:>10.4g} {row['ratio'] or 0:>6.3f}  "
              f"{row['unit']}")


if __name__ == "__main__":
    main()
