"""Why noise does what it does: attention shift, perturbation propagation, hidden-state trajectories and
embedding clusters of `hf-noisy`'s injected noise (the `mechanics` subcommand)."""
