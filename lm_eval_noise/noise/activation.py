"""Activation noise: each targeted Linear layer's input gets eps * noise_scale * std(x_token)."""

from __future__ import annotations

from torch import nn
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise.base import add_relative_noise
from lm_eval_noise.noise.config import NoiseConfig
from lm_eval_noise.noise.counter import site_id
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.targets import select_linear


class ActivationNoise:
    """Forward pre-hooks on the Linear layers chosen by noise_targets."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        self.modules = select_linear(model, config.noise_targets)
        self.sites = {name: site_id(f"activation:{name}") for name in self.modules}

    def attach(self, state: NoiseState) -> list[RemovableHandle]:
        return [
            module.register_forward_pre_hook(self._make_hook(state, self.sites[name]))
            for name, module in self.modules.items()
        ]

    @staticmethod
    def _make_hook(state: NoiseState, site: int):
        def hook(module, args):
            return (add_relative_noise(args[0], state, site), *args[1:])

        return hook
