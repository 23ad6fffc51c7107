"""Registers `hf-noisy` the moment lm-eval's model registry is imported.

Installed at site-packages' top level as `lm_eval_noise_hook` and imported by `lm_eval_noise.pth`
at interpreter start-up, so it must stay tiny: it imports nothing heavy and removes itself after
firing once.
"""

import sys

_TARGET = "lm_eval.api.registry"


def register(registry_module) -> None:
    """Add `hf-noisy` and `vllm-noisy` as lazy entries, keeping every built-in model name."""
    # lm-eval imports lm_eval.models only when the registry is empty; load it first.
    import lm_eval.models  # noqa: F401

    registry = registry_module.model_registry
    if "hf-noisy" not in registry:
        registry.register("hf-noisy", target="lm_eval_noise.model:HFNoisyLM")
    if "vllm-noisy" not in registry:  # lazy: without vLLM, using it names the install command
        registry.register("vllm-noisy", target="lm_eval_noise.vllm_backend.model:VLLMNoisyLM")


# Plain classes, not importlib.abc's: that module pulls in importlib.resources and typing.
class _Loader:
    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        register(module)


class _Finder:
    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)
        # Ask the remaining finders directly: importlib.util would cost milliseconds of imports.
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    """Arm the one-shot hook (or register at once if lm-eval's registry is already loaded)."""
    if _TARGET in sys.modules:
        register(sys.modules[_TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
