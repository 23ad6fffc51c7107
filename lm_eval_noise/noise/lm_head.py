"""LM-head noise: perturb the final hidden state right before the output projection (relative std)."""

from __future__ import annotations

from torch import nn
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise.base import add_relative_noise
from lm_eval_noise.noise.config import NoiseConfig
from lm_eval_noise.noise.counter import site_id
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.targets import output_head

SITE = site_id("lm_head")


class LMHeadNoise:
    """A forward pre-hook on the LM head adding noise to its input."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        self.module = output_head(model)

    def attach(self, state: NoiseState) -> list[RemovableHandle]:
        return [self.module.register_forward_pre_hook(lambda m, args: self._hook(state, args))]

    def _hook(self, state: NoiseState, args):
        return (add_relative_noise(args[0], state, SITE), *args[1:])
