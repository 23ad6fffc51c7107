"""`python -m lm_eval_noise sweep CONFIG.yaml`: many decoding methods on one loaded model, resumable.

Config keys: lm_eval_noise.sweep.config.TOP_KEYS; worked examples with comments in configs/.
Output: <output_dir>/<method>/seed-<N>/results_<date>.json + samples_<task>_<date>.jsonl per task.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from lm_eval_noise.sweep.config import SweepMethod, SweepConfig, SweepConfigError, load_config, parse_config
from lm_eval_noise.sweep.runner import Evaluation, Summary, plan, run_sweep

__all__ = [
    "Evaluation", "SweepMethod", "Summary", "SweepConfig", "SweepConfigError", "load_config", "main", "parse_config",
    "plan", "run_sweep",
]


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the stack, so the half-built temp folder of the evaluation in flight is removed.
    raise SystemExit(128 + signum)


def configure_process(verbose: bool = False) -> None:
    """What a sweep process needs before it runs: quiet logging (lm-eval's INFO with `verbose`), no
    tokenizer thread pool, and SIGTERM turned into an orderly exit (finished evaluations are kept)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lm_eval").setLevel(logging.INFO if verbose else logging.ERROR)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def main(argv: list[str]) -> int:
    """CLI entry: run (or --dry-run) the sweep described by a YAML config."""
    parser = argparse.ArgumentParser(prog="python -m lm_eval_noise sweep", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="sweep YAML (see configs/)")
    parser.add_argument("--dry-run", action="store_true", help="print which evaluations would run or be skipped")
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--verbose", action="store_true", help="show lm-eval's INFO logging")
    args = parser.parse_args(argv)
    configure_process(args.verbose)
    try:
        config = load_config(args.config, args.output_dir)
        summary = run_sweep(config, dry_run=args.dry_run)
    except SweepConfigError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sweep: interrupted; finished evaluations are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    if not args.dry_run:
        print(f"sweep: {len(summary.ran)} ran, {len(summary.skipped)} skipped, "
              f"{summary.model_loads} model load(s); results under {config.output_dir}")
    return 0
