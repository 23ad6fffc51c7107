"""Sandboxed execution of generated code and Pass@K scoring (HumanEval, APPS)."""

from lm_eval_noise.execution.sandbox import (
    ExecResult,
    Isolation,
    Limits,
    Sandbox,
    call_job,
    detect_isolation,
    script_job,
    stdio_job,
)
from lm_eval_noise.execution._harness import VERDICTS

__all__ = ["VERDICTS", "ExecResult", "Isolation", "Limits", "Sandbox", "call_job", "detect_isolation",
           "script_job", "stdio_job"]
