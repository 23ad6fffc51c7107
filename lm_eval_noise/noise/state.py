"""Per-call bookkeeping shared by the hooks: which sample each row is and where each token sits."""

from __future__ import annotations

import math

import torch

from lm_eval_noise.noise.config import NoiseConfig
from lm_eval_noise.noise.counter import is_compiling, normal, position_hash, position_keys, row_keys

# Eager decode steps read their noise from a table drawn this many steps ahead in one vectorised call
# (at most LOOKAHEAD_MAX elements per site): a step then slices a table instead of issuing a few dozen
# small tensor ops per site, which is most of a small model's per-step noise cost. Compiled steps
# (fast_decode) draw per step: there the ops fuse into the graph, and a Python step counter would
# recompile it at every token.
LOOKAHEAD = 32
LOOKAHEAD_MAX = 1 << 24


def schedule_sigma(config: NoiseConfig, step: torch.Tensor | int, horizon: int) -> torch.Tensor | float:
    """sigma at decode step `step`: the schedule from noise_scale to noise_scale_end over `horizon` steps."""
    if config.noise_schedule == "constant":
        return config.noise_scale
    start, end = config.noise_scale, config.noise_scale_end
    assert end is not None  # NoiseConfig requires noise_scale_end with every non-constant schedule
    frac = (torch.as_tensor(step, dtype=torch.float32).clamp(min=0) / max(horizon - 1, 1)).clamp(max=1.0)
    if config.noise_schedule == "linear":
        sigma = start + (end - start) * frac
    elif config.noise_schedule == "cosine":
        sigma = end + (start - end) * 0.5 * (1.0 + torch.cos(math.pi * frac))
    else:  # exp: geometric interpolation
        sigma = start * (end / start) ** frac
    return sigma


class NoiseState:
    """Rows' seeds and token positions for one generation call (left-padded batch).

    A token's position is its index within its own sample, so its noise never depends on the batch it
    sits in. Positions come from the model's own `position_ids` when the forward gets them (padding
    masked from the 2D attention mask, or at the prompt from the known left padding), so a compiled decode
    step reads no counter and mutates no tensor (CUDA graphs stay on); else from counting the columns
    of the padded layout.
    """

    def __init__(self, config: NoiseConfig, seeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                 dummy_columns: torch.Tensor | None = None):
        device = attention_mask.device
        self.config = config
        self.seeds = seeds.to(device=device, dtype=torch.int64)
        self.pads = (attention_mask == 0).sum(dim=1).to(torch.int64)
        self.prompt_width = attention_mask.shape[1]
        self.prompt_lens = self.prompt_width - self.pads
        self.max_new_tokens = max_new_tokens
        # Padded columns consumed so far (models without position ids), as a tensor: a compiled step
        # advances it without guarding on its value (a Python int would recompile at every token).
        self.col = torch.zeros((), dtype=torch.int64, device=device)
        self.counting = False
        self.prefilled = False
        self._forward: tuple = (0, None, None, False)
        self._positions: torch.Tensor | None = torch.zeros(len(seeds), 0, dtype=torch.int64, device=device)
        # Decode-step counter for the lookahead tables (None: this forward draws per step).
        self._step: int | None = None
        self._next_step: int | None = None
        self._tables: dict[tuple, tuple[int, torch.Tensor]] = {}
        self.scale: torch.Tensor = torch.full((len(seeds), 1, 1), config.noise_scale, device=device)
        # Set at prefill by embedding noise with embed_norm=input: per-row mean prompt-embedding norm.
        self.input_norm: torch.Tensor | None = None
        # Per-call and per-forward caches: every injection site of a forward shares them.
        self._site_keys: dict[int | tuple[int, ...], torch.Tensor] = {}
        self._pos_hash: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None
        # Per-forward scratch space for injectors that serve all their sites from one computation.
        self.shared: dict = {}
        # [B, prompt_width] bool: the dummy-token columns of the prompt (noise=dummy), else None.
        self.dummy_columns = dummy_columns

    def begin_forward(self, width: int, position_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None) -> None:
        """Called before each model forward over `width` new tokens."""
        mask_2d = attention_mask is not None and attention_mask.dim() == 2
        prompt = not self.prefilled and width == self.prompt_width
        self.counting = position_ids is None or position_ids.dim() != 2 or not (mask_2d or prompt or self.prefilled)
        self._forward = (width, position_ids, attention_mask if mask_2d else None, prompt)
        self._positions = None
        # The decode step of this forward when it is the next one-token step after a whole-prompt
        # prefill (else None: chunked or assisted forwards, and compiled steps, draw per step).
        if is_compiling():
            self._step = None
        elif prompt:
            self._step, self._next_step = None, 0
        elif width == 1 and self.prefilled and self._next_step is not None:
            self._step, self._next_step = self._next_step, self._next_step + 1
        else:
            self._step = self._next_step = None
        if self.config.noise_schedule != "constant":
            # The forward whose last token sits at position p produces generated token p + 1 - prompt_len.
            step = self.positions[:, -1:] + 1 - self.prompt_lens[:, None]
            sigma = schedule_sigma(self.config, step, self.max_new_tokens)
            self.scale = torch.as_tensor(sigma, dtype=torch.float32, device=self.pads.device).reshape(-1, 1, 1)

    @property
    def width(self) -> int:
        """Tokens in the current forward."""
        return self._forward[0]

    @property
    def positions(self) -> torch.Tensor:
        """[B, width] positions of the current forward's tokens within their samples (-1: padding);
        computed on first use, so decode steps served from lookahead tables never compute them."""
        if self._positions is None:
            self._positions = self._compute_positions(*self._forward)
        return self._positions

    @positions.setter
    def positions(self, value: torch.Tensor) -> None:
        self._positions = value

    def _compute_positions(self, width: int, position_ids, attention_mask, prompt: bool) -> torch.Tensor:
        if self.counting:
            cols = self.col + torch.arange(width, device=self.pads.device)
            return cols[None, :] - self.pads[:, None]
        position_ids = position_ids.expand(len(self.seeds), width)
        if attention_mask is not None:
            real = attention_mask[:, -width:] != 0
        elif prompt:  # the left-padded prompt: its first `pads` columns are padding
            real = torch.arange(width, device=self.pads.device)[None, :] >= self.pads[:, None]
        else:  # a decode step (cache layouts with 4D masks): every token is a real one
            real = None
        return position_ids if real is None else torch.where(real, position_ids, -1)

    def end_forward(self, width: int) -> None:
        self.prefilled = True
        # Per-forward caches end with their forward: the next one starts clean, and a compiled step
        # returns no extra tensors.
        self._pos_hash = self._mask = None
        self.shared = {}
        if self.counting:
            self.col.add_(width)

    def lookahead(self, site: int | tuple[int, ...], size: int, per_sequence: bool = False,
                  scaled: bool = False) -> torch.Tensor | None:
        """The current decode step's token_noise from its site's lookahead table ([B, 1, size], or
        [S, B, 1, size] for a site group), or None where the step draws for itself. `scaled`: the table
        holds the noise times each row's sigma already (constant schedules only: sigma never changes)."""
        step = self._step
        if step is None:
            return None
        if scaled and self.config.noise_schedule != "constant":
            raise ValueError("lookahead(scaled=True) needs a constant noise_schedule: sigma changes per step")
        key = (site, size, per_sequence, scaled)
        entry = self._tables.get(key)
        if entry is None or step >= entry[0] + entry[1].shape[-2]:
            sites = len(site) if isinstance(site, tuple) else 1
            ahead = min(LOOKAHEAD, max(self.max_new_tokens - step, 1), LOOKAHEAD_MAX // (sites * len(self.seeds) * size))
            if ahead < 1:
                return None
            # The spent table's memory takes the new one: nothing reads a past step's noise any more.
            spent = None if entry is None else entry[1].view(-1)
            entry = (step, self._draw_ahead(site, size, per_sequence, step, ahead, scaled, spent))
            self._tables[key] = entry
        index = step - entry[0]
        return entry[1][..., index : index + 1, :]

    def _draw_ahead(self, site, size: int, per_sequence: bool, step: int, ahead: int, scaled: bool,
                    spent: torch.Tensor | None = None) -> torch.Tensor:
        """token_noise (times sigma when `scaled`) of decode steps step..step+ahead-1: their tokens sit at
        prompt_len + step + i."""
        positions = self.prompt_lens[:, None] + step + torch.arange(ahead, device=self.pads.device)
        factor = self._build_mask(positions)  # [B, ahead]
        if scaled:
            factor = factor * self.scale.reshape(-1, 1)  # mask is 0 or 1: the same values as noise * mask * sigma
        keys = self.site_keys(site)
        if per_sequence:  # one draw per row, repeated at every step
            return normal(keys[..., None], size, self.config.noise_dist) * factor[..., None]
        hashes = position_hash(positions)
        keys = keys[:, :, None] ^ hashes[None] if isinstance(site, tuple) else position_keys(keys, hashes)
        need = keys.numel() * size
        out = spent[:need] if spent is not None and spent.numel() >= need else None
        return normal(keys, size, self.config.noise_dist, factor, out)

    def positions_for(self, width: int) -> torch.Tensor:
        """Positions of the last `width` tokens of the current forward (lm_head may see only the last)."""
        return self.positions[:, -width:]

    def site_keys(self, site: int | tuple[int, ...]) -> torch.Tensor:
        """Row keys of one injection site [B], or of a group of sites [S, B] (computed once per call)."""
        keys = self._site_keys.get(site)
        if keys is None:
            if isinstance(site, tuple):
                ids = torch.tensor(site, dtype=torch.int64, device=self.seeds.device)
                keys = row_keys(self.seeds[None, :], ids[:, None])
            else:
                keys = row_keys(self.seeds, site)
            self._site_keys[site] = keys
        return keys

    def position_hash_for(self, width: int) -> torch.Tensor:
        """position_hash of the last `width` tokens of the current forward (computed once per forward)."""
        if self._pos_hash is None:
            self._pos_hash = position_hash(self.positions)
        return self._pos_hash[:, -width:]

    def position_mask(self, width: int) -> torch.Tensor:
        """[B, width] float mask: 1 where structured injection puts noise, 0 on padding and skipped positions."""
        if self._mask is None:
            self._mask = self._build_mask()
        return self._mask[:, -width:]

    def _build_mask(self, positions: torch.Tensor | None = None) -> torch.Tensor:
        pos = self.positions if positions is None else positions
        keep = pos >= 0
        if self.config.noise_positions == "prompt":
            keep &= pos < self.prompt_lens[:, None]
        elif self.config.noise_positions == "generated":
            keep &= pos >= self.prompt_lens[:, None]
        if self.config.noise_first_k is not None:
            keep &= pos < self.config.noise_first_k
        return keep.to(torch.float32)
