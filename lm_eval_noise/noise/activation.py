"""Activation noise: each targeted Linear layer's input gets eps * noise_scale * std(x_token)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise.base import add_relative_noise
from lm_eval_noise.noise.config import NoiseConfig
from lm_eval_noise.noise.counter import normal, row_keys, site_id
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.targets import select_linear

# Draw every site's noise in one call when it is this small (decode steps): one vectorised call
# instead of a couple of dozen small tensor ops per layer. Larger forwards (prefill) go site by site.
ALL_SITES_MAX = 1 << 22


def _in_features(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.weight.shape[0]  # Conv1D: [in, out]


class ActivationNoise:
    """Forward pre-hooks on the Linear layers chosen by noise_targets."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        self.config = config
        self.modules = select_linear(model, config.noise_targets)
        self.sites = {name: site_id(f"activation:{name}") for name in self.modules}
        self.index = {name: i for i, name in enumerate(self.modules)}
        self.width = max(_in_features(m) for m in self.modules.values())
        self.site_ids = torch.tensor(list(self.sites.values()), dtype=torch.int64)

    def attach(self, state: NoiseState) -> list[RemovableHandle]:
        return [module.register_forward_pre_hook(self._make_hook(state, name)) for name, module in self.modules.items()]

    def _all_sites(self, state: NoiseState) -> torch.Tensor | None:
        """[sites, B, T, max d] masked noise of every site for the current forward, when small enough."""
        drawn = state.shared.get(self)
        if drawn is None:
            batch, width = state.positions.shape
            if len(self.sites) * batch * width * self.width > ALL_SITES_MAX:
                drawn = False
            else:
                keys = row_keys(state.seeds[None, :], self.site_ids.to(state.seeds.device)[:, None])
                keys = keys[:, :, None] ^ state.position_hash_for(width)[None]
                drawn = normal(keys, self.width, self.config.noise_dist) * state.position_mask(width)[None, ..., None]
            state.shared[self] = drawn
        return drawn if drawn is not False else None

    def _make_hook(self, state: NoiseState, name: str):
        site, index = self.sites[name], self.index[name]

        def hook(module, args):
            drawn = self._all_sites(state)
            shared = None if drawn is None else drawn[index]
            return (add_relative_noise(args[0], state, site, shared), *args[1:])

        return hook
