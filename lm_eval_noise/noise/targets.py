"""Finding modules in a Hugging Face model: decoder layers, Linear layers and noise_targets groups."""

from __future__ import annotations

import fnmatch

import torch
from torch import nn

from lm_eval_noise.noise.config import TARGET_DEPTHS, TARGET_KINDS, NoiseConfigError

_ATTENTION_WORDS = ("attn", "attention")
_MLP_WORDS = ("mlp", "feed_forward", "ffn")


def is_linear(module: nn.Module) -> bool:
    """nn.Linear or GPT-2 style Conv1D (both map the last dim with one weight matrix)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder stack: the largest ModuleList whose children all share one class."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if len({type(child) for child in module}) == 1 and (best is None or len(module) > len(best[1])):
                best = (name, module)
    if best is None:
        raise NoiseConfigError(f"cannot find the decoder layer stack of {type(model).__name__}")
    return best


def optional_module(model: nn.Module, getter: str) -> nn.Module | None:
    """model.get_input_embeddings() / get_output_embeddings(), or None where the model has none."""
    get = getattr(model, getter, None)
    return get() if callable(get) else None


def input_embeddings(model: nn.Module) -> nn.Module:
    """The token-embedding module, or a clear error for models without one."""
    module = optional_module(model, "get_input_embeddings")
    if module is None:
        raise NoiseConfigError(
            f"noise=embedding needs a model with an input embedding; {type(model).__name__} has none "
            "(get_input_embeddings() returned nothing)"
        )
    return module


def output_head(model: nn.Module) -> nn.Module:
    """The LM head (output embeddings)."""
    module = optional_module(model, "get_output_embeddings")
    if module is None:
        raise NoiseConfigError(f"noise=lm_head needs a model with an LM head; {type(model).__name__} has none")
    return module


def head_is_tied(model: nn.Module) -> bool:
    """True when the LM head shares its weight with the input embeddings."""
    try:
        return output_head(model).weight is input_embeddings(model).weight
    except NoiseConfigError:
        return False


def _depth_of(name: str, stack_name: str, n_layers: int) -> str | None:
    prefix = stack_name + "."
    if not name.startswith(prefix):
        return None
    index = int(name[len(prefix) :].split(".", 1)[0])
    third = min(index * 3 // n_layers, 2)
    return TARGET_DEPTHS[third]


def _kind_of(name: str, is_head: bool) -> str | None:
    if is_head:
        return "lm_head"
    leaf_path = name.lower()
    if any(word in leaf_path for word in _ATTENTION_WORDS):
        return "attention"
    if any(word in leaf_path for word in _MLP_WORDS):
        return "mlp"
    return None


def select_linear(model: nn.Module, targets: tuple[str, ...]) -> dict[str, nn.Module]:
    """Linear layers chosen by noise_targets (kinds and globs unite; depths intersect with them).

    Default: every Linear layer, the LM head included unless its weight is tied to the embeddings.
    """
    head = optional_module(model, "get_output_embeddings")
    stack_name, stack = decoder_layers(model)
    kinds = [t for t in targets if t in TARGET_KINDS]
    depths = [t for t in targets if t in TARGET_DEPTHS]
    patterns = [t for t in targets if t not in TARGET_KINDS and t not in TARGET_DEPTHS]
    chosen: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not is_linear(module):
            continue
        is_head = module is head
        kind = _kind_of(name, is_head)
        if not targets:
            if is_head and head_is_tied(model):
                continue
            chosen[name] = module
            continue
        by_kind = (not kinds and not patterns) or kind in kinds or any(fnmatch.fnmatch(name, p) for p in patterns)
        by_depth = not depths or _depth_of(name, stack_name, len(stack)) in depths
        if by_kind and by_depth:
            chosen[name] = module
    for pattern in patterns:
        if not any(fnmatch.fnmatch(name, pattern) for name in chosen):
            raise NoiseConfigError(f"noise_targets pattern {pattern!r} matches no Linear layer of the model")
    if not chosen:
        raise NoiseConfigError(f"noise_targets={'+'.join(targets)!r} selects no Linear layer of the model")
    return chosen


def weight_std(weight: torch.Tensor) -> float:
    """std of a weight tensor, computed in float32."""
    return float(weight.detach().float().std())
