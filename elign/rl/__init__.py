"""elign.rl: FED-GRPO post-training (Elign, arXiv 2601.21985) and the MLFF-guided sampling baseline.

rollout (groups sharing a prefix, then branching) → rewards (MLFF force reward, PBRS energy returns) →
advantages (per-group, per-channel z-scores) → objective (PPO clip + KL to the reference) → trainer (the
loop, checkpoints, history); guidance: a sampler hook adding λ·σ²·F(ẑ_0) to the reverse-step mean.
"""
