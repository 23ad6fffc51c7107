"""Activation noise in vLLM under hf-noisy's site names.

vLLM fuses q/k/v and gate/up projections into one Linear; hf-noisy perturbs each projection's input
with its own stream (`activation:<HF module name>`). A fused layer therefore runs once per part, each
on its own noisy input, and keeps that part's output columns: the noise of every HF site is the one
hf-noisy draws. `noise_targets` is resolved by `noise.targets.select_linear` itself, on a skeleton
named like the Hugging Face model.
"""

from __future__ import annotations

from torch import nn

from lm_eval_noise.noise.targets import select_linear

# vLLM's fused projection -> the Hugging Face projections it holds, in output-column order.
FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def hf_names(vllm_name: str) -> list[str]:
    """The Hugging Face module names of one vLLM Linear layer (several for a fused one)."""
    prefix, _, leaf = vllm_name.rpartition(".")
    parts = FUSED.get(leaf)
    if parts is None:
        return [vllm_name]
    return [f"{prefix}.{part}" if prefix else part for part in parts]


class _Skeleton(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.__dict__["head"] = None  # not a child: the head is placed under its own name

    def get_output_embeddings(self) -> nn.Module | None:
        return self.__dict__["head"]


def skeleton(linear_names: list[str], stack_name: str, depth: int, head: str | None) -> nn.Module:
    """A module tree with the given HF Linear names (meta-device placeholders) and a decoder stack of
    `depth` layers at `stack_name`, so select_linear resolves kinds, depths and globs as on HF."""
    root = _Skeleton()

    def place(path: str, leaf: nn.Module) -> None:
        node: nn.Module = root
        parts = path.split(".")
        for part in parts[:-1]:
            child = node[int(part)] if isinstance(node, nn.ModuleList) else getattr(node, part, None)
            if child is None:
                child = nn.Module()
                node.add_module(part, child)
            node = child
        node.add_module(parts[-1], leaf)

    place(stack_name, nn.ModuleList([nn.Module() for _ in range(depth)]))
    for name in linear_names:
        place(name, nn.Linear(1, 1, bias=False, device="meta"))
    if head is not None:
        root.__dict__["head"] = nn.Linear(1, 1, bias=False, device="meta")
        place(head, root.__dict__["head"])
    return root


def select_hf_names(vllm_linear_names: list[str], stack_name: str, depth: int, head: str | None,
                    targets: tuple[str, ...]) -> set[str]:
    """The HF names noise_targets selects; `head`: the untied LM head's name (a tied head has no site)."""
    names = [hf for name in vllm_linear_names for hf in hf_names(name)]
    return set(select_linear(skeleton(names, stack_name, depth, head), targets))
