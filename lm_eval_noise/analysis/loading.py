"""A causal LM and its tokenizer from an lm-eval style `--model_args` string, with plain transformers."""

from __future__ import annotations

from typing import Any

import torch
from lm_eval.utils import simple_parse_args_string

from lm_eval_noise.tiny import ensure_tiny_model

MODEL_ARG_KEYS = ("pretrained", "dtype", "device", "trust_remote_code", "revision")
DTYPES = ("auto", "float32", "float16", "bfloat16")
TINY = "tiny"


def parse_model_args(text: str) -> dict[str, Any]:
    """`pretrained=PATH[,dtype=..,device=..,trust_remote_code=..,revision=..]` -> resolved, validated dict."""
    args = simple_parse_args_string(text)
    unknown = sorted(set(args) - set(MODEL_ARG_KEYS))
    if unknown:
        raise ValueError(f"--model_args: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(MODEL_ARG_KEYS)}")
    pretrained = args.get("pretrained")
    if pretrained in (None, ""):
        raise ValueError(f"--model_args needs pretrained=PATH (or pretrained={TINY} for the offline tiny model)")
    dtype = str(args.get("dtype") or "auto")
    if dtype not in DTYPES:
        raise ValueError(f"--model_args: dtype={dtype!r} is not valid; valid values: {', '.join(DTYPES)}")
    device = str(args.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        resolved_device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--model_args: device={device!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if resolved_device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--model_args: device={device!r} but no CUDA device is visible; use device=cpu")
    trust = args.get("trust_remote_code", False)
    if not isinstance(trust, bool):
        raise ValueError(f"--model_args: trust_remote_code={trust!r} is not valid; valid values: true, false")
    revision = args.get("revision")
    return {
        "pretrained": ensure_tiny_model() if pretrained == TINY else str(pretrained),
        "dtype": dtype,
        "device": device,
        "trust_remote_code": trust,
        "revision": None if revision is None else str(revision),
    }


def load_model(args: dict[str, Any]):
    """(model in eval mode, tokenizer) for the dict parse_model_args returned."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common = {"trust_remote_code": args["trust_remote_code"], "revision": args["revision"]}
    tokenizer = AutoTokenizer.from_pretrained(args["pretrained"], **common)
    dtype = args["dtype"] if args["dtype"] == "auto" else getattr(torch, args["dtype"])
    model = AutoModelForCausalLM.from_pretrained(args["pretrained"], dtype=dtype, device_map=args["device"], **common)
    return model.eval(), tokenizer
