"""Hooks for the humaneval_pass_at_k tasks (implemented in lm_eval_noise.execution.lm_tasks)."""

from lm_eval_noise.execution.lm_tasks import load_humaneval, process_results, run_humaneval

__all__ = ["load_humaneval", "process_results", "run_humaneval"]
