"""elign.diffusion: EDM's E(3)-equivariant diffusion (Hoogeboom et al. 2022) around elign.model's network.

Modules: ``schedules`` (polynomial_2 γ table), ``geometry`` (zero-CoM helpers and noise), ``gaussian``
(subspace Gaussian log-probabilities and KLs), ``en_diffusion`` (EnVariationalDiffusion: scaling, reverse
step, decode, sampling), ``losses`` (EDM's training loss and bound), ``factory`` (build a model from a
model-config dict), ``checkpoint`` (our checkpoint files: save, read, load a model), ``sampler`` (the reverse
chain), ``guidance`` (the MLFF-guided sampling baseline: a sampler hook adding λ·σ²·F(ẑ_0) to the step mean).
"""
