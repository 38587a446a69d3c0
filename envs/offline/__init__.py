"""Offline RL datasets: D4RL look-alikes generated locally and stored in Minari format.

    python -m envs.offline.generate --env Hopper --level medium [--transitions N] [--seed S]
    python -m envs.offline.generate --small-set

    from envs.offline.loaders import load_dataset, ref_scores, normalized_score

Modules: common (ids, reference returns, datasets root, atomic writes), behaviour (PPO behaviour policies,
rollouts), generate (levels and the CLI), loaders (tensors for a replay buffer). Recipe, sizes, timings and
measured returns: docs/offline_datasets.md.
"""
