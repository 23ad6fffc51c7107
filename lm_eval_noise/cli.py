"""`python -m lm_eval_noise`: the project's subcommands, else lm-eval's own CLI with `hf-noisy` registered."""

from __future__ import annotations

import importlib
import sys

# name -> "module:function"; each function takes argv (list[str]) and returns an exit code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("lm_eval_noise.demo:main", "offline demo on the embedded SmolLM2-135M-Instruct"),
    "sweep": ("lm_eval_noise.sweep:main", "run many methods on one loaded model"),
    "leaderboard": ("lm_eval_noise.leaderboard.table:main", "aggregate result files into a table"),
    "plot": ("lm_eval_noise.leaderboard.plots:main", "Pareto and sigma-sweep plots"),
    "compare": ("lm_eval_noise.stats.compare:main", "paired significance tests between runs"),
    "score-code": ("lm_eval_noise.code_tasks.score:main", "score a JSONL of code samples in the sandbox"),
    "alpha": ("lm_eval_noise.analysis.alpha:main", "measure alpha and T* per noise type and scale"),
    "mechanics": ("lm_eval_noise.mechanics.command:main", "attention, propagation, trajectories and clusters of noise"),
    "bench": ("lm_eval_noise.bench:main", "benchmark suite"),
    "tasks-path": ("lm_eval_noise.cli:print_tasks_path", "print the folder to pass to --include_path"),
    "model-path": ("lm_eval_noise.smollm:print_model_path", "print (building once) the embedded SmolLM2 checkpoint"),
}


def print_tasks_path(argv: list[str]) -> int:
    """Print the task folder, for `--include_path $(python -m lm_eval_noise tasks-path)`."""
    import argparse

    from lm_eval_noise import tasks_dir

    argparse.ArgumentParser(
        prog="python -m lm_eval_noise tasks-path",
        description="Print the folder of this project's lm-eval tasks, for --include_path.",
    ).parse_args(argv)
    print(tasks_dir())
    return 0


def _usage() -> str:
    rows = "\n".join(f"  {name:<12} {doc}" for name, (_, doc) in SUBCOMMANDS.items())
    return (
        "usage: python -m lm_eval_noise SUBCOMMAND [args]   or   python -m lm_eval_noise [lm_eval args]\n\n"
        f"subcommands:\n{rows}\n\nAny other arguments go to lm-eval's CLI, with the `hf-noisy` model registered."
    )


def run_lm_eval(argv: list[str]) -> int:
    """lm-eval's CLI with `hf-noisy` registered, for environments where the .pth hook is absent."""
    import lm_eval.api.registry as registry

    from lm_eval_noise._hook import register

    register(registry)
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *argv]
    try:
        cli_evaluate()
    except ModuleNotFoundError as error:
        from lm_eval_noise.vllm_backend import INSTALL_HINT

        if str(error) != INSTALL_HINT:
            raise
        print(f"error: {error}", file=sys.stderr)  # a missing optional backend: one line, no traceback
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help") and len(argv) == 1:
        print(_usage())
        return 0
    if argv and argv[0] in SUBCOMMANDS:
        module_name, func_name = SUBCOMMANDS[argv[0]][0].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(argv[1:]) or 0)
    return run_lm_eval(argv)
