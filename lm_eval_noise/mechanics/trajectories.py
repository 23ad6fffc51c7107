"""Whether noisy runs explore other regions of the hidden space: hidden states projected onto one 2-D
principal-component basis fitted on the clean runs only, so every run is drawn in the clean model's
coordinates (PCA: Pearson 1901; sklearn's exact SVD solver, whose sign convention is deterministic)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

COMPONENTS = 2


class Basis:
    """A PCA basis fitted on clean hidden states [n, d]; project() maps any [..., d] onto it."""

    def __init__(self, clean_states: np.ndarray, components: int = COMPONENTS):
        states = np.asarray(clean_states, dtype=np.float64)
        if states.ndim != 2 or len(states) < 2:
            raise ValueError(f"a PCA basis needs at least 2 clean states [n, d]; got shape {states.shape}")
        n = min(components, len(states), states.shape[1])
        self.pca = PCA(n_components=n, svd_solver="full").fit(states)

    @property
    def explained_variance_ratio(self) -> list[float]:
        """Share of the clean states' variance each component explains (the sum is at most 1)."""
        return [float(v) for v in self.pca.explained_variance_ratio_]

    def project(self, states: np.ndarray) -> np.ndarray:
        """[..., d] -> [..., components]."""
        states = np.asarray(states, dtype=np.float64)
        flat = states.reshape(-1, states.shape[-1])
        return self.pca.transform(flat).reshape(*states.shape[:-1], -1)
