"""Tuning and stability: `bench tune`'s Optuna studies with equal budgets (tune.py), which of a
study's trials count and what happens to a dead worker's (trials.py), the shared storage and
its lock (storage.py), and `bench stability`'s random hyper-parameter draws (stability.py)."""
