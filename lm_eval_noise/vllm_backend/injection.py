"""The noise hooks inside a vLLM worker's model, fed per forward from the runner's batch.

Each request names its sample seed and noise configuration in `SamplingParams.extra_args`; before
every forward the tokens of the flat batch are mapped to their requests (the runner's request order
and query start offsets), and the hooks draw each token's noise from the same counter-based streams
as `hf-noisy` (`noise.base`), keyed by the token's position inside its own request. Requests without
those settings (and padding tokens) get none.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from lm_eval_noise.noise.base import add_relative_noise, token_noise
from lm_eval_noise.noise.config import NoiseConfig, NoiseConfigError
from lm_eval_noise.noise.counter import site_id
from lm_eval_noise.noise.embedding import SITE as EMBEDDING_SITE
from lm_eval_noise.noise.lm_head import SITE as LM_HEAD_SITE
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.targets import decoder_layers
from lm_eval_noise.vllm_backend import EXTRA_KEY
from lm_eval_noise.vllm_backend.activation import hf_names, select_hf_names
from lm_eval_noise.vllm_backend.flat import flat_state
from lm_eval_noise.vllm_backend.weight import WeightDraws

log = logging.getLogger(__name__)

# Noise types the hooks implement (the lm-eval side refuses the others before any engine starts).
SUPPORTED = ("embedding", "weight", "activation", "hidden", "lm_head")
# Tests set a list here to receive (site, request ids per token, positions, standard noise, delta).
TRACE: list | None = None


def config_from_dict(data: dict[str, Any]) -> NoiseConfig:
    """NoiseConfig.as_dict() back into a NoiseConfig (the form a request carries)."""
    names = {f.name for f in fields(NoiseConfig)}
    values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return NoiseConfig(**values)


@dataclass
class _Request:
    seed: int
    prompt_len: int
    horizon: int
    config: NoiseConfig


class RequestTable:
    """req_id -> its noise settings, from the scheduler's new requests; dropped when they finish."""

    def __init__(self) -> None:
        self.requests: dict[str, _Request] = {}
        self._configs: dict[str, NoiseConfig] = {}

    def update(self, scheduler_output: Any) -> None:
        for req in getattr(scheduler_output, "scheduled_new_reqs", None) or ():
            params = getattr(req, "sampling_params", None)
            extra = (getattr(params, "extra_args", None) or {}).get(EXTRA_KEY)
            if not extra:
                continue
            text = json.dumps(extra["config"], sort_keys=True)
            config = self._configs.get(text)
            if config is None:
                config = self._configs[text] = config_from_dict(extra["config"])
            prompt = getattr(req, "prompt_token_ids", None)
            prompt_len = len(prompt) if prompt is not None else int(extra.get("prompt_len", 0))
            self.requests[req.req_id] = _Request(int(extra["seed"]), prompt_len, int(extra["horizon"]), config)
        for req_id in getattr(scheduler_output, "finished_req_ids", None) or ():
            self.requests.pop(req_id, None)


def _embedding_module(model: nn.Module) -> nn.Module:
    """The token embedding (vLLM's VocabParallelEmbedding; its LM head subclass is not it)."""
    for _, module in model.named_modules():
        if type(module).__name__ == "VocabParallelEmbedding":
            return module
    raise NoiseConfigError(f"vllm-noisy: cannot find the token embedding of {type(model).__name__}")


@torch.no_grad()
def mean_embedding_norm(module: nn.Module, vocab: int, chunk: int = 8192) -> float:
    """Mean L2 norm of E(x) over the real vocabulary (vLLM pads the table), summed chunk by chunk in the
    order `noise.embedding.mean_embedding_norm` uses; through the module, so tensor-parallel shards are
    gathered."""
    device = module.weight.device
    total = 0.0
    for start in range(0, vocab, chunk):
        out = module(torch.arange(start, min(start + chunk, vocab), device=device))
        total += float(out.float().norm(dim=-1).sum())
    return total / vocab


class BatchMap:
    """Which request each token of the current forward belongs to (V1 and V2 model runners)."""

    def __init__(self, runner: Any):
        self.runner = runner
        self.captured: Any = None
        prepare = getattr(runner, "prepare_inputs", None)
        if prepare is not None and not hasattr(runner, "_prepare_inputs"):
            # The V2 runner stores its batch only after the forward: keep what prepare_inputs returns.
            def capture(*args, **kwargs):
                self.captured = prepare(*args, **kwargs)
                return self.captured

            runner.prepare_inputs = capture

    def request_spans(self) -> list[tuple[str, int, int]]:
        if self.captured is not None:
            batch = self.captured
            req_ids, starts = list(batch.req_ids), batch.query_start_loc_np
        else:
            req_ids = list(self.runner.input_batch.req_ids)
            starts = self.runner.query_start_loc.cpu.numpy()
        return [(req_id, int(starts[i]), int(starts[i + 1])) for i, req_id in enumerate(req_ids)]


class Injector:
    """All hooks of one worker; inert for forwards whose requests carry no noise settings."""

    def __init__(self, runner: Any, model: nn.Module):
        self.runner = runner
        self.model = model
        self.table = RequestTable()
        self.batch = BatchMap(runner)
        self.embedding = _embedding_module(model)
        self.layers = decoder_layers(model)[1]
        self.vocab = int(getattr(self.embedding, "org_vocab_size", self.embedding.weight.shape[0]))
        self._vocab_norm: float | None = None
        self.state: NoiseState | None = None
        self.config: NoiseConfig | None = None
        self.token_reqs: list[str] = []
        execute = runner.execute_model

        def execute_model(scheduler_output, *args, **kwargs):
            self.table.update(scheduler_output)
            return execute(scheduler_output, *args, **kwargs)

        runner.execute_model = execute_model
        self._linear_layers = self._wrap_linear_layers(runner)
        self._activation_names: dict[tuple[str, ...], set[str]] = {}
        self.handles = [
            model.register_forward_pre_hook(self._begin, with_kwargs=True),
            model.register_forward_hook(self._end),
            self.embedding.register_forward_hook(self._embedding_hook),
            *(layer.register_forward_hook(self._make_layer_hook(k + 1)) for k, layer in enumerate(self.layers)),
        ]

    @property
    def vocab_norm(self) -> float:
        if self._vocab_norm is None:  # outside any forward: the norm pass must not be noised
            raise RuntimeError("vllm-noisy: the vocabulary norm is computed at start-up")
        return self._vocab_norm

    def prepare(self) -> None:
        """Start-up work that runs the embedding module (all tensor-parallel ranks do it together)."""
        self._vocab_norm = mean_embedding_norm(self.embedding, self.vocab)

    # -- per forward ---------------------------------------------------------------------------

    def _begin(self, module, args, kwargs) -> None:
        self.state = None
        if not self.table.requests:
            return
        positions = kwargs.get("positions")
        if positions is None or positions.dim() != 1:  # M-RoPE positions are [3, N]: not handled
            return
        n = positions.shape[0]
        seeds = torch.zeros(n, dtype=torch.int64)
        pos = torch.full((n,), -1, dtype=torch.int64)
        prompt_lens = torch.zeros(n, dtype=torch.int64)
        horizons = torch.ones(n, dtype=torch.int64)
        positions_cpu = positions.to("cpu", torch.int64)
        config = None
        token_reqs = [""] * n if TRACE is not None else []
        for req_id, start, end in self.batch.request_spans():
            req = self.table.requests.get(req_id)
            if req is None or end <= start:
                continue
            if config is None:
                config = req.config
            elif req.config != config:
                raise NoiseConfigError("vllm-noisy: one engine batch mixes noise configurations; run them apart")
            seeds[start:end] = req.seed
            pos[start:end] = positions_cpu[start:end]
            prompt_lens[start:end] = req.prompt_len
            horizons[start:end] = req.horizon
            if TRACE is not None:
                token_reqs[start:end] = [req_id] * (end - start)
        if config is None or not config.noise:
            return
        device = positions.device
        self.config = config
        self.token_reqs = token_reqs
        self.state = flat_state(config, seeds.to(device), pos.to(device), prompt_lens.to(device), horizons.to(device))

    def _end(self, module, args, output):
        state, self.state = self.state, None
        if state is None or not isinstance(output, torch.Tensor):
            return None
        if "lm_head" in self.config.noise:
            output = self._relative(output, state, LM_HEAD_SITE, "lm_head")
        if self._head is not None and self._head in self.activation_names(self.config):
            output = self._relative(output, state, site_id(f"activation:{self._head}"), f"activation:{self._head}")
        return output

    # -- activation noise ---------------------------------------------------------------------------

    def _wrap_linear_layers(self, runner: Any) -> list[str]:
        from vllm.model_executor.layers.linear import LinearBase

        hf_config = getattr(runner.model_config, "hf_config", None)
        tied = bool(getattr(hf_config, "tie_word_embeddings", False))
        # The untied LM head's input is the model's output (vLLM applies the head outside forward).
        self._head = None if tied else "lm_head"
        names = []
        layers: dict[str, nn.Module] = {}
        for name, module in self.model.named_modules():
            if isinstance(module, LinearBase):
                names.append(name)
                layers[name] = module
                module.forward = self._linear_forward(module, name)
            elif name == self._head and hasattr(module, "weight"):
                layers[name] = module
        self._stack_name = decoder_layers(self.model)[0]
        self.weights = WeightDraws(layers, {name: hf_names(name) for name in layers})
        return names

    def activation_names(self, config: NoiseConfig) -> set[str]:
        """The HF names of the Linear layers whose input gets activation noise."""
        return self.selected_names(config) if "activation" in config.noise else set()

    def weight_names(self, config: NoiseConfig) -> set[str]:
        """The HF names of the Linear layers whose weights a draw perturbs."""
        return self.selected_names(config) if "weight" in config.noise else set()

    def selected_names(self, config: NoiseConfig) -> set[str]:
        """The HF names config.noise_targets selects (resolved once per targets)."""
        chosen = self._activation_names.get(config.noise_targets)
        if chosen is None:
            chosen = select_hf_names(self._linear_layers, self._stack_name, len(self.layers), self._head,
                                     config.noise_targets)
            self._activation_names[config.noise_targets] = chosen
        return chosen

    def _linear_forward(self, module: nn.Module, name: str):
        forward = module.forward
        parts = hf_names(name)
        sites = [site_id(f"activation:{part}") for part in parts]

        def noisy_forward(x, *args, **kwargs):
            state = self.state
            if state is None or "activation" not in self.config.noise:
                return forward(x, *args, **kwargs)
            chosen = self.activation_names(self.config)
            picked = [part in chosen for part in parts]
            if not any(picked):
                return forward(x, *args, **kwargs)
            if len(parts) == 1:
                return forward(self._relative(x, state, sites[0], f"activation:{parts[0]}"), *args, **kwargs)
            # A fused projection: each part on its own noisy input, keeping that part's output columns.
            outs = [forward(self._relative(x, state, site, f"activation:{part}") if pick else x, *args, **kwargs)
                    for part, site, pick in zip(parts, sites, picked, strict=True)]
            tensors = [out[0] if isinstance(out, tuple) else out for out in outs]
            pieces, start = [], 0
            for tensor, size in zip(tensors, module.output_partition_sizes, strict=True):
                pieces.append(tensor[..., start:start + size])
                start += size
            merged = torch.cat(pieces, dim=-1)
            return (merged, *outs[0][1:]) if isinstance(outs[0], tuple) else merged

        return noisy_forward

    # -- sites -----------------------------------------------------------------------------------

    def _relative(self, x: torch.Tensor, state: NoiseState, site: int, name: str) -> torch.Tensor:
        out = add_relative_noise(x, state, site)
        if TRACE is not None:
            eps = token_noise(state, site, 1, x.shape[-1], x.device)[:, 0]
            TRACE.append((name, self.token_reqs, state.positions[:, 0].cpu(), eps.cpu(), (out - x).cpu()))
        return out

    def _embedding_hook(self, module, args, out):
        state = self.state
        if state is None:
            return None
        config = self.config
        if "embedding" in config.noise:
            eps = token_noise(state, EMBEDDING_SITE, 1, out.shape[-1], out.device, config.noise_scope == "per_sequence")
            eps = eps[:, 0]
            noisy = out + (eps * state.scale[:, 0].to(out.device) * self.vocab_norm).to(out.dtype)
            if TRACE is not None:
                TRACE.append(("embedding", self.token_reqs, state.positions[:, 0].cpu(), eps.cpu(), (noisy - out).cpu()))
            out = noisy
        if "hidden" in config.noise and config.noise_layer == 0:
            out = self._relative(out, state, site_id("hidden:0"), "hidden")
        return out

    def _make_layer_hook(self, layer: int):
        site = site_id(f"hidden:{layer}")

        def hook(module, args, out):
            state, config = self.state, self.config
            if state is None or "hidden" not in config.noise or config.noise_layer != layer:
                return None
            if isinstance(out, tuple) and len(out) >= 2 and out[1] is not None:
                # vLLM layers return (block output, residual) and add them in the next norm: the
                # residual stream hf-noisy perturbs is their sum.
                stream = out[0] + out[1]
                return (self._relative(stream, state, site, "hidden"), torch.zeros_like(out[1]), *out[2:])
            if isinstance(out, tuple):
                return (self._relative(out[0], state, site, "hidden"), *out[1:])
            return self._relative(out, state, site, "hidden")

        return hook
