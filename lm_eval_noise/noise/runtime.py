"""All injection points of one NoiseConfig on one model, attached inside a context manager."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from torch import nn

from lm_eval_noise.noise.activation import ActivationNoise
from lm_eval_noise.noise.base import Injector
from lm_eval_noise.noise.config import NoiseConfig
from lm_eval_noise.noise.dummy import DummyTokens
from lm_eval_noise.noise.embedding import EmbeddingNoise
from lm_eval_noise.noise.hidden import HiddenNoise
from lm_eval_noise.noise.lm_head import LMHeadNoise
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.weight import WeightNoise

_HOOKED: dict[str, Callable[[nn.Module, NoiseConfig], Injector]] = {
    "embedding": EmbeddingNoise, "activation": ActivationNoise, "hidden": HiddenNoise, "lm_head": LMHeadNoise,
}


def core_model(model: nn.Module) -> nn.Module:
    """The Hugging Face model whose forward generate() calls (unwraps PEFT)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class NoiseRuntime:
    """Resolves a config against a model once; `attached(state)` hooks it in for one generation call."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        self.model = core_model(model)
        self.config = config
        kinds = config.noise if config.perturbs else ()
        # Dummy tokens are real positions even at sigma 0; first, so other embedding noise adds to them.
        self.dummy = DummyTokens(self.model, config) if "dummy" in config.noise else None
        self.injectors: list[Injector] = [self.dummy] if self.dummy is not None else []
        self.injectors += [_HOOKED[k](self.model, config) for k in kinds if k in _HOOKED]
        self.weight = WeightNoise(self.model, config) if "weight" in kinds else None

    @property
    def reference_norm(self) -> float | None:
        """The vocab-mean embedding norm sigma is relative to (embedding noise with embed_norm=vocab)."""
        for injector in self.injectors:
            if isinstance(injector, EmbeddingNoise):
                return injector.vocab_norm
        return None

    @contextlib.contextmanager
    def attached(self, state: NoiseState) -> Iterator[NoiseState]:
        """Hooks live only inside this block and are removed however it exits."""
        widths: list[int] = []

        def before(module, args, kwargs):
            ids = kwargs.get("input_ids")
            if ids is None:
                ids = args[0] if args else kwargs["inputs_embeds"]
            widths.append(ids.shape[1])
            state.begin_forward(ids.shape[1], kwargs.get("position_ids"), kwargs.get("attention_mask"))

        def after(module, args, kwargs, output):
            state.end_forward(widths.pop())

        handles = [
            self.model.register_forward_pre_hook(before, with_kwargs=True),
            self.model.register_forward_hook(after, with_kwargs=True),
        ]
        try:
            for injector in self.injectors:
                handles.extend(injector.attach(state))
            yield state
        finally:
            for handle in handles:
                handle.remove()
