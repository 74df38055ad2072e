"""elign.rl: FED-GRPO post-training (Elign, arXiv 2601.21985).

rollout (groups sharing a prefix, then branching) → rewards (MLFF force reward, PBRS energy returns) →
advantages (per-group, per-channel z-scores) → objective (PPO clip + KL to the reference) → trainer (the
loop, checkpoints, history). The MLFF-guided sampling baseline is a sampler hook: :mod:`elign.diffusion.guidance`.
"""
