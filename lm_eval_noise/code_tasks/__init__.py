"""The code benchmarks scored in the sandbox: HumanEval, APPS, LiveCodeBench, MBPP / MBPP+.

Each benchmark module loads its problems and builds sandbox jobs; `lm_tasks` holds the lm-eval hooks of
tasks/ and `score` the `score-code` command, both reporting pass@k, success@k and sample diversity.
"""
