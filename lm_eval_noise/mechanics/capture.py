"""One forward (or generation) of the model with `hf-noisy`'s injection attached, recording what the
analysis needs: the residual stream at every layer boundary and the attention maps.

Recorded sites, in order: the embeddings' output (the input of decoder layer 1, after embedding noise),
the output of each decoder layer, and the LM head's input (after the final norm and any lm_head noise).
Only the last `keep` positions are kept: the ones whose logits choose continuation tokens, as in `alpha`.
"""

from __future__ import annotations

import dataclasses
import inspect

import torch
from torch import nn
from transformers import LogitsProcessorList

from lm_eval_noise.noise import NoiseRuntime, NoiseState
from lm_eval_noise.noise.runtime import core_model
from lm_eval_noise.noise.sampling import SeededSampler
from lm_eval_noise.noise.targets import decoder_layers, input_embeddings, output_head


@dataclasses.dataclass
class Capture:
    """residual [B, L+2, keep, d], the embedding site at every position [B, S, d], and attention
    [B, L, H, keep, S] (None when not asked); float32 on CPU."""

    residual: torch.Tensor
    embeddings: torch.Tensor
    attention: torch.Tensor | None


def use_eager_attention(model: nn.Module) -> str:
    """Switch the model to eager attention (sdpa and flash kernels return no attention weights); returns
    the implementation it had, so the caller can say what changed."""
    config = core_model(model).config
    previous = str(getattr(config, "_attn_implementation", None) or "eager")
    if previous != "eager":
        core_model(model).set_attn_implementation("eager")
    return previous


def _first(output):
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def capture_forward(model: nn.Module, ids: torch.Tensor, keep: int, attention: bool) -> Capture:
    """One unpadded forward over ids [B, S]. The recording hooks are registered here, after any noise
    hooks already attached, so they see the perturbed tensors."""
    core = core_model(model)
    records: list[torch.Tensor | None] = [None] * (len(decoder_layers(core)[1]) + 2)
    embedded: list[torch.Tensor] = []

    def store(index: int, tensor: torch.Tensor) -> None:
        if index == 0:
            embedded.append(tensor.detach().float().cpu())
        records[index] = tensor[:, -keep:].detach().float().cpu()

    handles = [input_embeddings(core).register_forward_hook(lambda m, i, out: store(0, _first(out)))]
    for index, layer in enumerate(decoder_layers(core)[1], start=1):
        handles.append(layer.register_forward_hook(lambda m, i, out, index=index: store(index, _first(out))))
    handles.append(output_head(core).register_forward_pre_hook(lambda m, args: store(len(records) - 1, args[0])))
    extra = {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(core.forward).parameters else {}
    try:
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False,
                    output_attentions=attention, **extra)
    finally:
        for handle in handles:
            handle.remove()
    if any(r is None for r in records):
        raise RuntimeError(f"{type(core).__name__}: a layer boundary was not recorded (unsupported architecture)")
    maps = None
    if attention:
        if not out.attentions or any(a is None for a in out.attentions):
            raise RuntimeError("the model returned no attention weights; it must run with eager attention")
        maps = torch.stack([a[:, :, -keep:].float().cpu() for a in out.attentions], dim=1)
    return Capture(torch.stack(records, dim=1), embedded[0], maps)


def _state(runtime: NoiseRuntime, seeds: torch.Tensor, prompt_len: int, new_tokens: int) -> NoiseState:
    """The NoiseState of a call whose prompt is the first `prompt_len` tokens (continuation positions count
    as generated ones, as when `hf-noisy` generates them)."""
    mask = torch.ones(len(seeds), prompt_len, dtype=torch.int64, device=seeds.device)
    return NoiseState(runtime.config, seeds, mask, new_tokens)


def noisy_capture(model: nn.Module, runtime: NoiseRuntime, ids: torch.Tensor, prompt_len: int,
                  seeds: list[int], keep: int, attention: bool) -> Capture:
    """capture_forward of rows ids [B, S] under sample seeds[b]'s noise: hook noise in one batch, weight
    noise one row at a time (a weight draw cannot differ per row)."""
    seed_tensor = torch.tensor(seeds, dtype=torch.int64, device=ids.device)
    if runtime.weight is None:
        with runtime.attached(_state(runtime, seed_tensor, prompt_len, keep)):
            return capture_forward(model, ids, keep, attention)
    parts = []
    for row, seed in enumerate(seed_tensor):
        with runtime.weight.perturbed(int(seed)), runtime.attached(_state(runtime, seed[None], prompt_len, keep)):
            parts.append(capture_forward(model, ids[row : row + 1], keep, attention))
    maps = torch.cat([p.attention for p in parts]) if attention else None
    return Capture(torch.cat([p.residual for p in parts]), torch.cat([p.embeddings for p in parts]), maps)


@torch.no_grad()
def generate(model: nn.Module, runtime: NoiseRuntime, prompt_ids: torch.Tensor, seeds: list[int],
             new_tokens: int, pad_token_id: int, temperature: float | None = None) -> torch.Tensor:
    """[B, new_tokens] free-running continuations of one prompt, row b under seed b's noise (EOS
    suppressed so every run has the same length). With `temperature`, tokens are drawn from softmax(logits
    / T) by `hf-noisy`'s seeded sampler (no top-k/top-p truncation), else decoded greedily."""
    seed_tensor = torch.tensor(seeds, dtype=torch.int64, device=prompt_ids.device)

    def run(rows: torch.Tensor) -> torch.Tensor:
        ids = prompt_ids[None].expand(len(rows), -1)
        processors = LogitsProcessorList()
        if temperature is not None:
            temps = torch.full((len(rows),), float(temperature), device=ids.device)
            processors.append(SeededSampler(rows, temps, ids.shape[1], []))
        with runtime.attached(_state(runtime, rows, ids.shape[1], new_tokens)):
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, logits_processor=processors,
                                 pad_token_id=pad_token_id)
        return out[:, ids.shape[1] :]

    if runtime.weight is None:
        return run(seed_tensor)
    outs = []
    for seed in seed_tensor:
        with runtime.weight.perturbed(int(seed)):
            outs.append(run(seed[None]))
    return torch.cat(outs)
