"""The optional compiled CPU kernels (numba_kernels), loaded once on first use, or None without numba.

numba's import and the load of its cached builds take about a second: paid by the first noise draw
on CPU, never at start-up (hf-noisy registers at every Python start). Without numba, where it
cannot compile, or where vLLM is installed (see kernels()), callers run their tensor code.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from types import ModuleType

log = logging.getLogger(__name__)

# None: not loaded yet; False: unavailable. Tests set False to run the tensor paths.
_KERNELS: ModuleType | bool | None = None


def kernels() -> ModuleType | None:
    """lm_eval_noise.noise.numba_kernels, or None when numba is missing or cannot compile here, or vLLM
    is installed."""
    global _KERNELS
    if _KERNELS is None and importlib.util.find_spec("vllm") is not None:
        # vLLM (0.32) scans every loaded module's namespace at each engine start and fails on an object
        # of llvmlite, numba's compiler ("'_lib_fn_wrapper' object has no attribute 'get'"), even when
        # numba was loaded before vLLM: where vLLM is installed, the CPU noise runs as tensor ops.
        log.debug("vLLM is installed: noise runs as tensor ops on CPU")
        _KERNELS = False
    if _KERNELS is None:
        try:
            _KERNELS = importlib.import_module("lm_eval_noise.noise.numba_kernels")
        except ImportError as error:  # numba missing, or built for another numpy
            log.debug("numba unavailable (%s): noise runs as tensor ops on CPU", error)
            _KERNELS = False
        except Exception as error:  # present but unable to compile on this machine
            log.warning("numba could not compile the noise kernels (%s): CPU noise runs as tensor ops "
                        "(slower)", error)
            _KERNELS = False
    return _KERNELS if isinstance(_KERNELS, ModuleType) else None
