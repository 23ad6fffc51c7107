"""`python -m lm_eval_noise demo`: the whole pipeline offline, on a tiny model trained on the fly.

Builds (once, cached) the tiny model, sweeps greedy / temperature / embedding noise over a slice of
every task family (demo_sweep.yaml), then prints the leaderboard and draws the Pareto plot.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path

from lm_eval_noise.tiny import ensure_tiny_model

SWEEP = Path(__file__).with_name("demo_sweep.yaml")
PARETO = ("noise_demo_math", "distinct_2", "accuracy")
SHOWN = ("noise_demo_math/accuracy,noise_demo_math/distinct_2,creative_writing/distinct_2,creative_writing/self_bleu,"
         "problem_generation/valid,humaneval_pass_at_k/pass@1,apps_fixture/pass@1")


def _quietly(func, argv: list[str]) -> int:
    """Run a subcommand for the files it writes, without its stdout."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return func(argv)


def main(argv: list[str]) -> int:
    """Run the demo sweep, then the leaderboard and the Pareto plot over its results."""
    parser = argparse.ArgumentParser(prog="python -m lm_eval_noise demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="results/demo", help="where results, leaderboard and plot go")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    print("demo: building (or reusing) the tiny model ...", flush=True)
    os.environ["TINY_MODEL"] = ensure_tiny_model()
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
                                     "--title", "tiny demo model: accuracy vs distinct-2 (one-digit additions)"])),
    ]
    for name, step in steps:
        code = step()
        if code:
            print(f"demo: the {name} step failed (exit {code})", file=sys.stderr)
            return code
    print(f"demo: done. Results, leaderboard.csv/json and pareto.png are in {out}/ (tiny-model numbers: "
          "they show the pipeline, not the research answer)")
    return 0
