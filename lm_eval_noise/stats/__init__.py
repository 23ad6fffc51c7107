"""Paired statistics between runs on the same problems (seed 001 §3.3)."""

from lm_eval_noise.stats.paired import bonferroni, bootstrap_ci, cliffs_delta, wilcoxon_p

__all__ = ["bonferroni", "bootstrap_ci", "cliffs_delta", "wilcoxon_p"]
