"""Weight noise: W + eps * noise_scale * std(W) under one draw at a time, restored bit-exactly.

A weight draw cannot differ per batch row. With weight_draw=repeat (the default) one draw, keyed by
(noise_seed, task, repeat index), perturbs the model for a whole batched pass over that repeat's
requests; with weight_draw=sample each sample is generated alone under its own draw. The draw comes
from torch's own generator seeded by (draw, tensor, chunk): a whole model's worth of noise is far
cheaper from the fused generator than from the counter hash. The originals are saved once and copied
back after every draw: to pinned host memory when the weights sit on an accelerator, to an unlinked file
in the project cache when they sit on CPU (there host memory *is* the device's memory; the file's pages
live in the kernel's reclaimable page cache, not in the process). So the device holds at most one chunk
of noise beyond the model, never a second copy of it.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from lm_eval_noise.cache import cache_root
from lm_eval_noise.noise.config import NoiseConfig, NoiseConfigError
from lm_eval_noise.noise.counter import index_hash, mix32, row_keys, site_id
from lm_eval_noise.noise.targets import optional_module, select_linear, weight_std

# Elements of noise generated at once: extra accelerator memory is one chunk (8 MiB in float32), never
# more than a chunk of the tensor being perturbed.
CHUNK = 1 << 21


def _bytes(t: torch.Tensor) -> memoryview:
    """The raw bytes of a contiguous tensor's storage, writable in place (any dtype, bf16 included)."""
    return memoryview(t.detach().view(-1).view(torch.uint8).numpy())


class Originals:
    """Bit-exact copies of tensors, restored by copy: pinned host memory for accelerator tensors, an
    unlinked file for CPU tensors (non-contiguous ones stay in memory), closed when this object goes."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.memory: dict[str, torch.Tensor] = {}
        self.offsets: dict[str, int] = {}
        self.file = None
        for name, w in tensors.items():
            if w.device.type == "cpu" and w.is_contiguous():
                if self.file is None:
                    folder = cache_root()
                    folder.mkdir(parents=True, exist_ok=True)
                    self.file = tempfile.TemporaryFile(prefix="weight-originals-", dir=folder)
                self.offsets[name] = self.file.tell()
                self.file.write(_bytes(w))
            else:
                copy = torch.empty(w.shape, dtype=w.dtype, device="cpu", pin_memory=w.device.type == "cuda")
                copy.copy_(w.detach())
                self.memory[name] = copy
        if self.file is not None:
            self.file.flush()

    @property
    def memory_bytes(self) -> int:
        """Process memory the copies take (the file's pages are the kernel's to reclaim)."""
        return sum(t.numel() * t.element_size() for t in self.memory.values())

    def restore(self, name: str, w: torch.Tensor) -> None:
        if name in self.memory:
            w.data.copy_(self.memory[name], non_blocking=False)
            return
        assert self.file is not None
        view = _bytes(w.data)
        self.file.seek(self.offsets[name])
        done = 0
        while done < len(view):  # a regular file reads fully; loop anyway rather than trust it
            got = self.file.readinto(view[done:])
            if not got:
                raise OSError(f"weight noise: the saved original of {name} is truncated")
            done += got


class WeightNoise:
    """Perturbs the targeted Linear layers with one draw at a time and restores them bit-exactly."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        self.config = config
        self.params: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        embedding = optional_module(model, "get_input_embeddings")
        for name, module in select_linear(model, config.noise_targets).items():
            weight = module.weight
            if embedding is not None and weight is embedding.weight:
                raise NoiseConfigError(
                    f"noise=weight on {name} would also perturb the input embeddings (the weights are tied); "
                    "use noise=lm_head for noise at the head, or noise=embedding"
                )
            if weight.device.type == "meta":
                raise NoiseConfigError(f"noise=weight cannot perturb {name}: its weight is offloaded (meta device)")
            if not weight.is_floating_point():
                raise NoiseConfigError(
                    f"noise=weight needs floating-point weights; {name} is {weight.dtype} (quantized models are "
                    "not supported: use noise=activation instead)"
                )
            if id(weight) not in seen:  # tied weights are perturbed once
                seen.add(id(weight))
                self.params[name] = weight
        self.stds = {name: weight_std(w) for name, w in self.params.items()}
        self.site_ids = torch.tensor([site_id(f"weight:{name}") for name in self.params], dtype=torch.int64)
        self._originals: Originals | None = None
        # The draw the weights carry now (None: the originals).
        self.current: int | None = None

    def _save_originals(self) -> None:
        """Copies of the targeted weights, made once, before the first draw."""
        if self._originals is None:
            self._originals = Originals(self.params)

    @property
    def host_bytes(self) -> int:
        """Process memory the saved originals take (0 before the first draw and for CPU weights)."""
        return 0 if self._originals is None else self._originals.memory_bytes

    @torch.no_grad()
    def apply(self, seed: int) -> None:
        """Make the weights carry the draw `seed` (64-bit); a no-op when they already do."""
        if self.current == seed:
            return
        self.restore()
        self._save_originals()
        self.current = seed  # from here on restore() undoes a partial draw too
        try:
            self._draw(seed)
        except BaseException:
            self.restore()
            raise

    def _draw(self, seed: int) -> None:
        keys = row_keys(torch.tensor([seed], dtype=torch.int64), self.site_ids)
        chunks = []
        for (name, w), key in zip(self.params.items(), keys, strict=True):
            starts = range(0, w.numel(), CHUNK)
            # 32-bit stream keys: torch's CPU generator (mt19937) ignores higher seed bits.
            streams = mix32(key ^ index_hash(len(starts), key.device)).tolist()
            scale = self.config.noise_scale * self.stds[name]
            chunks += [(w.data.view(-1), start, stream, scale) for start, stream in zip(starts, streams, strict=True)]
        if all(flat.device.type == "cpu" for flat, *_ in chunks) and torch.get_num_threads() > 1:
            # torch's CPU generator is serial: draw chunks on every core (each chunk has its own stream).
            with ThreadPoolExecutor(torch.get_num_threads()) as pool:
                list(pool.map(lambda chunk: self._perturb(*chunk), chunks))
        else:
            for chunk in chunks:
                self._perturb(*chunk)

    def _perturb(self, flat: torch.Tensor, start: int, key: int, scale: float) -> None:
        """Add the noise of one chunk (its own generator stream, seeded by sample, tensor and chunk)."""
        generator = torch.Generator(device=flat.device).manual_seed(key)
        count = min(CHUNK, flat.numel() - start)
        if self.config.noise_dist == "uniform":
            eps = (torch.rand(count, generator=generator, device=flat.device) - 0.5) * math.sqrt(12.0)
        else:
            eps = torch.randn(count, generator=generator, device=flat.device)
        flat[start : start + count].add_(eps.mul_(scale).to(flat.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the saved originals back (bit-identical); a no-op when the weights carry no draw."""
        if self.current is None or self._originals is None:
            return
        for name, w in self.params.items():
            self._originals.restore(name, w)
        self.current = None

    @contextlib.contextmanager
    def perturbed(self, seed: int) -> Iterator[None]:
        """Weights carry the draw `seed` inside the block and are restored however it exits."""
        try:
            self.apply(seed)
            yield
        finally:
            self.restore()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Draws applied inside the block stay on across calls (one per repeat, amortised over a batched
        pass) and are restored however the block exits."""
        try:
            yield
        finally:
            self.restore()

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """The original weights inside the block (e.g. clean logits), the current draw again after it."""
        seed = self.current
        self.restore()
        try:
            yield
        finally:
            if seed is not None:
                self.apply(seed)
