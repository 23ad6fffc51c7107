"""`python -m lm_eval_noise bench`: every benchmark in benchmarks/ in one process, one table, one JSON."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import ModuleType

BENCHMARKS = ("generation", "self_bleu", "sandbox", "sweep", "startup", "semantic", "behaviour")


def _benchmarks_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "benchmarks"
    if not (here / "bench_generation.py").exists():
        raise SystemExit("bench: the benchmarks/ folder of a source checkout is needed (git clone, pip install -e .)")
    return here


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/bench_<name>.py as a module, loaded from its file (nothing is added to sys.path)."""
    module_name = f"bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, _benchmarks_dir() / f"{module_name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # registered first: dataclasses and pickling look their module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return "" if value is None else str(value)


def _print_table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lm-eval-noise benchmarks (ratio > 1: ours is better / faster)")
    for column in ("benchmark", "case", "ours", "reference", "ratio", "range", "target", "unit"):
        table.add_column(column, justify="right" if column in ("ours", "reference", "ratio", "target") else "left")
    marks = {"met": " ✓", "not met": " ✗", "undecided": " ?"}
    for result in results:
        for row in result["rows"]:
            ratio, target = row.get("ratio"), row.get("target")
            # Rows timed in pairs carry their own verdict (the whole range must clear the target).
            outcome = row.get("verdict") or (None if target is None or ratio is None else
                                             "met" if ratio >= target else "not met")
            spread = row.get("range")
            table.add_row(result["name"], row["case"], _fmt(row.get("ours")), _fmt(row.get("reference")),
                          _fmt(ratio) + (marks.get(outcome, "") if outcome else ""),
                          f"{spread[0]:.3f}–{spread[1]:.3f}" if spread else "", _fmt(target), row.get("unit", ""))
    console = Console(width=160)
    console.print(table)
    for result in results:
        console.print(f"[bold]{result['name']}[/]: {result.get('note', '')}")


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks and print/write their figures."""
    parser = argparse.ArgumentParser(prog="python -m lm_eval_noise bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI, laptops)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--model_args", help="generation benchmark: pretrained=... (default: the tiny model)")
    parser.add_argument("--random-init", help="generation benchmark: a transformers config.json to build a random model from")
    parser.add_argument("--device", help="generation benchmark: cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-sizes", help="generation benchmark: comma-separated (default: 1,8,32; --quick: 1,8)")
    parser.add_argument("--tokens", type=int, help="generation benchmark: new tokens per sample (default: 128; --quick: 16)")
    parser.add_argument("--pairs", type=int, help="generation benchmark: interleaved (hf, hf-noisy) pairs per case "
                        "(default: 5; --quick: 3)")
    parser.add_argument("--dtype", default="auto", help="generation benchmark: model dtype (default: bfloat16 on "
                        "cuda, float32 on cpu)")
    parser.add_argument("--cases", help="generation benchmark: comma-separated subset of its cases, in order, each "
                        "at every batch size or, written case@1+8, at those only (default: all; on CPU only "
                        "embedding and activation get a fast_decode case)")
    parser.add_argument("--budget", type=float, help="generation benchmark: seconds after which no further case "
                        "starts; the cases left are listed under not_run in the JSON (time-limited machines)")
    parser.add_argument("--compile-backend", help="generation benchmark: torch.compile backend of fast_decode "
                        "(e.g. eager: trace only, for dry runs)")
    parser.add_argument("--clock", default="wall", help="generation benchmark: wall (default) or cpu (process CPU "
                        "time: robust on oversubscribed shared cores; CPU devices only)")
    parser.add_argument("--repeat-docs", type=int, help="generation benchmark: docs per timed call of the "
                        "per-repeat weight rows, one draw each, as in one repeat of a task (default: 64; --quick: "
                        "one batch)")
    parser.add_argument("--threads", type=int, help="generation benchmark: torch threads (default: torch's)")
    parser.add_argument("--output", help="JSON path (default: benchmarks/results/bench-<time>.json)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; valid values: {', '.join(BENCHMARKS)}")
    folder = _benchmarks_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        batches = tuple(int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes else None
    except ValueError:
        batches = (0,)
    if batches is not None and min(batches) < 1:
        parser.error(f"--batch-sizes: expected comma-separated positive integers such as 1,8,32, got {args.batch_sizes!r}")
    if args.tokens is not None and args.tokens < 1:
        parser.error(f"--tokens: expected a positive number of new tokens, got {args.tokens}")
    if args.repeat_docs is not None and args.repeat_docs < 1:
        parser.error(f"--repeat-docs: expected a positive number of docs, got {args.repeat_docs}")
    if args.pairs is not None and args.pairs < 1:
        parser.error(f"--pairs: expected a positive number of pairs, got {args.pairs}")
    options = {"model_args": args.model_args, "random_init": args.random_init, "device": args.device,
               "batches": batches, "tokens": args.tokens, "pairs": args.pairs, "dtype": args.dtype,
               "cases": tuple(c.strip() for c in args.cases.split(",")) if args.cases else None,
               "compile_backend": args.compile_backend, "clock": args.clock, "threads": args.threads,
               "repeat_docs": args.repeat_docs, "budget": args.budget}
    output = Path(args.output) if args.output else folder / "results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    if "generation" in names:  # its options are checked before any benchmark runs
        load_benchmark("generation").check_options(quick=args.quick, **options)
    results: list[dict] = []

    def save(running: list[dict] | None = None) -> None:
        """Write what is measured so far: a run stopped early (a time limit, a crash) keeps its rows
        under "complete": false. Written whole, then renamed: a kill mid-write leaves the last file."""
        payload = {"quick": args.quick, "python": platform.python_version(), "machine": platform.machine(),
                   "cpus": os.cpu_count(), "complete": running is None, "results": results + (running or [])}
        partial = output.with_name(output.name + ".partial")
        partial.write_text(json.dumps(payload, indent=2, default=str))
        os.replace(partial, output)

    for name in names:
        print(f"bench: running {name} ...", flush=True)
        start = time.perf_counter()
        module = load_benchmark(name)
        if name == "generation":
            result = module.run(quick=args.quick, **options, progress=lambda rows, not_run: save(
                [{"name": "generation", "rows": rows, "not_run": not_run,
                  "note": "stopped before the end: rows measured so far"}]))
        else:
            result = module.run(quick=args.quick)
        result["seconds"] = round(time.perf_counter() - start, 1)
        results.append(result)
        save([])
    save()
    _print_table(results)
    print(f"bench: wrote {output}")
    return 0
