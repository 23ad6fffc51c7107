"""Hooks for the humaneval_pass_at_k tasks (implemented in lm_eval_noise.code_tasks.lm_tasks)."""

from lm_eval_noise.code_tasks.lm_tasks import load_humaneval, process_results, run_humaneval, run_humaneval_chat
from lm_eval_noise.metrics.measured import count

__all__ = ["count", "load_humaneval", "process_results", "run_humaneval", "run_humaneval_chat"]

# The demo's slice: one problem SmolLM2-135M-Instruct solves greedily (HumanEval/23) and one it misses
# (HumanEval/2), both with short answers.
DEMO_PROBLEMS = ("HumanEval/2", "HumanEval/23")


def demo_problems(dataset):
    """process_docs of humaneval_pass_at_k_chat_demo: keep DEMO_PROBLEMS only."""
    return dataset.filter(lambda doc: doc["task_id"] in DEMO_PROBLEMS)
