"""Paired statistics between runs on the same problems (README, The study: paired tests on the same problems)."""

from lm_eval_noise.stats.paired import bonferroni, bootstrap_ci, cliffs_delta, wilcoxon_p

__all__ = ["bonferroni", "bootstrap_ci", "cliffs_delta", "wilcoxon_p"]
