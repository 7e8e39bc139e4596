"""`bench stability`: training stability as a measured outcome (Lucic et al. 2018).

N hyper-parameter settings are drawn at random from the harness's search space (the one
`bench tune` searches), the same N for every strategy; draw k trains with network and noise
seed k, so each draw pairs the strategies as a seed does in `bench run`. The draws run as a
`bench run` whose seeds are the draws: the same store, resume, shards and report code.
"""

from __future__ import annotations

import logging

import optuna

from bench.unit import suggest_harness


def draws(n: int, seed: int) -> list[dict]:
    """The first n draws of the seeded random sampler; draw k does not depend on n, so more
    draws later keep the earlier ones."""
    log = logging.getLogger("optuna")
    level = log.level
    log.setLevel(logging.WARNING)  # "A new study created in memory" says nothing to a user
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        out = []
        for _ in range(n):
            trial = study.ask()
            out.append(suggest_harness(trial))
            study.tell(trial, 0.0)
    finally:
        log.setLevel(level)
    return out
