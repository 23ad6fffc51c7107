"""Activation noise: each targeted Linear layer's input gets eps * noise_scale * std(x_token)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from lm_eval_noise.noise.base import add_relative_noise
from lm_eval_noise.noise.config import NoiseConfig
from lm_eval_noise.noise.counter import normal, site_id
from lm_eval_noise.noise.state import NoiseState
from lm_eval_noise.noise.targets import select_linear

# Draw every site's noise at once when it is this small (decode steps): one vectorised call per input
# width instead of a couple of dozen small tensor ops per layer. Larger forwards (prefill) go site by site.
ALL_SITES_MAX = 1 << 22


def _in_features(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.weight.shape[0]  # Conv1D: [in, out]


class ActivationNoise:
    """Forward pre-hooks on the Linear layers chosen by noise_targets."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        self.config = config
        self.modules = select_linear(model, config.noise_targets)
        self.sites = {name: site_id(f"activation:{name}") for name in self.modules}
        widths: dict[int, list[str]] = {}
        for name, module in self.modules.items():
            widths.setdefault(_in_features(module), []).append(name)
        # Sites grouped by input width, so each group's noise is drawn at exactly its size.
        self.groups = [(size, names, tuple(self.sites[n] for n in names)) for size, names in widths.items()]
        self.elements = sum(size * len(names) for size, names in widths.items())

    def attach(self, state: NoiseState) -> list[RemovableHandle]:
        for _, _, sites in self.groups:
            state.site_keys(sites)  # now, outside any compiled step, so decode steps only read them
        return [module.register_forward_pre_hook(self._make_hook(state, name)) for name, module in self.modules.items()]

    def _all_sites(self, state: NoiseState, dtype: torch.dtype) -> dict[str, torch.Tensor] | None:
        """Every site's scaled noise [B, T, d] for the current forward, when small enough."""
        drawn = state.shared.get(self)
        if drawn is None:
            batch, width = len(state.seeds), state.width
            drawn = {}
            scaled = self.config.noise_schedule == "constant"
            # Eager decode step: every group's noise from its lookahead table (mask applied, and sigma too
            # unless a schedule changes it per step). Each group sizes its own table, so a wide group can
            # get none where a narrow one gets one: then this step draws per step like any other forward.
            tables = [state.lookahead(sites, size, scaled=scaled) for size, _, sites in self.groups] if width == 1 else []
            if tables and all(ahead is not None for ahead in tables):
                for ahead, (_, names, _) in zip(tables, self.groups, strict=True):
                    assert ahead is not None
                    noise = (ahead if scaled else ahead * state.scale[None]).to(dtype)
                    drawn.update(zip(names, noise.unbind(0), strict=True))
            elif batch * width * self.elements <= ALL_SITES_MAX:
                # mask is 0 or 1: the same values as noise * mask * sigma
                factor = state.position_mask(width)[None] * state.scale[None, :, :, 0]  # [1, B, T]
                for size, names, sites in self.groups:
                    keys = state.site_keys(sites)[:, :, None] ^ state.position_hash_for(width)[None]
                    noise = normal(keys, size, self.config.noise_dist, factor).to(dtype)
                    drawn.update(zip(names, noise.unbind(0), strict=True))
            state.shared[self] = drawn
        return drawn or None

    def _make_hook(self, state: NoiseState, name: str):
        site = self.sites[name]

        def hook(module, args):
            drawn = self._all_sites(state, args[0].dtype)
            noise = None if drawn is None else drawn[name]
            return (add_relative_noise(args[0], state, site, noise, share_std=True), *args[1:])

        return hook
