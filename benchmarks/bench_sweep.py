"""Sweep runner: N methods in one `python -m lm_eval_noise sweep` vs N separate `lm_eval` CLI runs.

Tiny offline model (lm_eval_noise.tiny, Llama), task noise_demo, --limit 2, batch size 2,
max_gen_toks 8, CPU, float32. Methods: greedy, embedding sigma 0.05, temperature 0.8, embedding
sigma 0.02 (quick: the first 2). Reference: one `lm_eval --model hf-noisy --model_args ...
--include_path TASKS --tasks noise_demo --limit 2 --log_samples --output_path DIR` per method, each
indexing lm-eval's own tasks plus ours and loading the model. Ours: one sweep subprocess over the
same methods, with the same task index (include_defaults: true), so it indexes and loads once.
Times are wall-clock of whole processes (interpreter start included), one run each. Every row
also checks that the sweep's responses equal the CLI run's for that method.

Run: python benchmarks/bench_sweep.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

NAME = "sweep"
LIMIT = 2
MAX_GEN_TOKS = 8
METHODS = [
    {"name": "greedy"},
    {"name": "embed-0.05", "noise": {"noise": "embedding", "noise_scale": 0.05}},
    {"name": "temp-0.8", "gen_kwargs": {"do_sample": True, "temperature": 0.8}},
    {"name": "embed-0.02", "noise": {"noise": "embedding", "noise_scale": 0.02}},
]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr[-3000:]}")
    return elapsed


def _responses(folder: Path) -> list[list[str]]:
    """Responses per doc (doc order) of the one samples file under `folder`."""
    (path,) = folder.rglob("samples_noise_demo_*.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["resps"][0] for r in sorted(rows, key=lambda r: r["doc_id"])]


def _cli_command(model: str, tasks: str, method: dict, out: Path) -> list[str]:
    args = f"pretrained={model},dtype=float32"  # the CLI passes --device itself
    args += "".join(f",{k}={v}" for k, v in method.get("noise", {}).items())
    gen = ",".join(f"{k}={v}" for k, v in {"max_gen_toks": MAX_GEN_TOKS, **method.get("gen_kwargs", {})}.items())
    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    return [
        lm_eval, "--model", "hf-noisy", "--model_args", args, "--include_path", tasks, "--tasks", "noise_demo",
        "--limit", str(LIMIT), "--batch_size", "2", "--device", "cpu", "--gen_kwargs", gen, "--log_samples", "--output_path", str(out),
    ]


def run(quick: bool = False) -> dict:
    """Time one sweep over N methods against N lm_eval CLI runs; N = 2 when quick, else 4."""
    from lm_eval_noise import tasks_dir
    from lm_eval_noise.tiny import ensure_tiny_model

    methods = METHODS[:2] if quick else METHODS
    model = ensure_tiny_model("llama")
    tasks = str(tasks_dir())
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        root = Path(tmp)
        cli_s, same = 0.0, True
        config = {
            "model_args": {"pretrained": model, "device": "cpu", "dtype": "float32"}, "tasks": ["noise_demo"],
            "include_path": tasks, "include_defaults": True, "limit": LIMIT, "batch_size": 2,
            "gen_kwargs": {"max_gen_toks": MAX_GEN_TOKS}, "methods": methods,
        }
        (root / "bench.yaml").write_text(yaml.safe_dump(config))
        sweep_s = _timed([sys.executable, "-m", "lm_eval_noise", "sweep", str(root / "bench.yaml"),
                          "--output-dir", str(root / "sweep")])
        for method in methods:
            cli_s += _timed(_cli_command(model, tasks, method, root / "cli" / method["name"]))
            same &= _responses(root / "cli" / method["name"]) == _responses(root / "sweep" / method["name"])
    n = len(methods)
    rows = [
        {"case": f"{n} methods x noise_demo (limit {LIMIT})", "ours": round(sweep_s, 2), "reference": round(cli_s, 2),
         "ratio": round(cli_s / sweep_s, 2), "unit": "s", "same_responses": same},
        {"case": "per method", "ours": round(sweep_s / n, 2), "reference": round(cli_s / n, 2),
         "ratio": round(cli_s / sweep_s, 2), "unit": "s", "same_responses": same},
    ]
    note = (
        "ours: one `python -m lm_eval_noise sweep` process (one task index, one model load); reference: one "
        "`lm_eval` CLI process per method; ratio = reference / ours (> 1: the sweep is faster). "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), shared machine: times vary run to run."
    )
    return {"name": NAME, "rows": rows, "note": note}


def _print_table(result: dict) -> None:
    print(f"{result['name']}: {result['note']}")
    print(f"{'case':<34} {'ours':>9} {'reference':>10} {'ratio':>7} unit  same")
    for r in result["rows"]:
        print(f"{r['case']:<34} {r['ours']:>9} {r['reference']:>10} {r['ratio']:>7} {r['unit']:<5} {r['same_responses']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 2 methods")
    parser.add_argument("--json", default=None, help="also write the result dict here")
    args = parser.parse_args()
    result = run(quick=args.quick)
    _print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
