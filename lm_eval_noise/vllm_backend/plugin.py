"""vLLM general plugin (entry point `vllm.general_plugins`): installs the noise hooks in every worker.

vLLM calls `register()` in each process it starts (engine core, tensor-parallel workers, and the
engines of Ray data-parallel replicas), so hooks set up here reach all of them, where hooks installed
from the driver would not. It does nothing unless the engine was built with
`additional_config={"lm_eval_noise": True}` (which `vllm-noisy` sets when it injects noise).
"""

from __future__ import annotations

import logging

from lm_eval_noise.vllm_backend import EXTRA_KEY

log = logging.getLogger(__name__)
_PATCHED = False
# True while a noisy engine loads: vLLM's CPU build then keeps each Linear's plain weight beside its
# prepacked copy, so weight draws can be applied to it and packed again (vllm_backend/weight.py).
_KEEP_WEIGHTS = False


def active(vllm_config) -> bool:
    extra = getattr(vllm_config, "additional_config", None)
    return isinstance(extra, dict) and bool(extra.get(EXTRA_KEY))


def register() -> None:
    """Wrap the worker's load_model so the hooks go in right after the weights (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    from vllm.model_executor.layers import utils as layer_utils
    from vllm.v1.worker.gpu_worker import Worker  # the CPU and XPU workers subclass it

    load_model = Worker.load_model
    dispatch = layer_utils.dispatch_cpu_unquantized_gemm

    def load_model_with_noise(self, *args, **kwargs):
        global _KEEP_WEIGHTS
        _KEEP_WEIGHTS = active(self.vllm_config)
        try:
            out = load_model(self, *args, **kwargs)
        finally:
            _KEEP_WEIGHTS = False
        if active(self.vllm_config):
            install(self.model_runner)
        return out

    def dispatch_keeping_weights(layer, remove_weight: bool) -> None:
        dispatch(layer, remove_weight and not _KEEP_WEIGHTS)

    Worker.load_model = load_model_with_noise
    layer_utils.dispatch_cpu_unquantized_gemm = dispatch_keeping_weights


def install(runner):
    """Hook the runner's model; refuses configurations whose compiled graphs would skip the hooks."""
    from vllm.config import CompilationMode

    from lm_eval_noise.vllm_backend.injection import Injector

    config = runner.vllm_config
    if config.compilation_config.mode != CompilationMode.NONE or not config.model_config.enforce_eager:
        raise RuntimeError(
            "vllm-noisy: noise hooks need eager execution (compiled graphs and CUDA graphs skip Python hooks); "
            "build the engine with enforce_eager=True"
        )
    model = runner.get_model() if hasattr(runner, "get_model") else runner.model
    injector = Injector(runner, model)
    injector.prepare()
    runner.lm_eval_noise = injector
    log.info("vllm-noisy: noise hooks installed (%d decoder layers)", len(injector.layers))
    return injector
