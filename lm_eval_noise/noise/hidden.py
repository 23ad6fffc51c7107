"""Hidden-state noise on the residual stream after decoder layer k, relative to each token's std."""

from __future__ import annotations

from torch import nn
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise.base import add_relative_noise
from lm_eval_noise.noise.config import NoiseConfig, NoiseConfigError
from lm_eval_noise.noise.counter import site_id
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.targets import decoder_layers, input_embeddings


class HiddenNoise:
    """noise_layer=0 perturbs the embeddings' output; k>=1 the output of decoder layer k (1-based)."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        layers = decoder_layers(model)[1]
        layer = config.noise_layer
        if layer is None or not 0 <= layer <= len(layers):
            raise NoiseConfigError(f"noise_layer={layer} is beyond the model's depth; valid values: 0..{len(layers)}")
        self.module = input_embeddings(model) if layer == 0 else layers[layer - 1]
        self.site = site_id(f"hidden:{layer}")

    def attach(self, state: NoiseState) -> list[RemovableHandle]:
        return [self.module.register_forward_hook(lambda m, i, out: self._hook(state, out))]

    def _hook(self, state: NoiseState, out):
        if isinstance(out, tuple):
            return (add_relative_noise(out[0], state, self.site), *out[1:])
        return add_relative_noise(out, state, self.site)
