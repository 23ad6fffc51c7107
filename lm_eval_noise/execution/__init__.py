"""Sandboxed execution of generated code and Pass@K scoring (HumanEval, APPS)."""

from lm_eval_noise.execution.judge import VERDICTS, ExecResult
from lm_eval_noise.execution.sandbox import (
    Isolation,
    Limits,
    Sandbox,
    SandboxBroken,
    call_job,
    check_job,
    detect_isolation,
    script_job,
    stdio_job,
)

__all__ = ["VERDICTS", "ExecResult", "Isolation", "Limits", "Sandbox", "SandboxBroken", "call_job",
           "check_job", "detect_isolation", "script_job", "stdio_job"]
