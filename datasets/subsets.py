"""Fewer training subjects: the training-set-size axis (`--train-subjects N`).

Subsets are nested: the training subjects are put in one order seeded by the data seed, and N
subjects are the first N of it, so the 10 are among the 25, which are among the 100. Only the
training split shrinks; validation and test stay whole.
"""

from __future__ import annotations

import dataclasses

import torch

from datasets import cache
from datasets.build import TaskData
from ground.errors import BenchError


def subject_order(data: TaskData) -> list[int]:
    """The training subjects (their index in `Split.subject`) in the data seed's order."""
    subjects = torch.unique(data.train.subject)
    order = torch.randperm(len(subjects), generator=torch.Generator().manual_seed(data.data_seed))
    return subjects[order].tolist()


def train_subset(data: TaskData, n: int) -> TaskData:
    """`data` with only the first `n` training subjects of `subject_order`. All of them: `data`
    itself, so its pretexts are shared with the full task."""
    order = subject_order(data)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(order):
        raise BenchError(f"--train-subjects {n}: task {data.spec.name} has {len(order)} training "
                         f"subjects; give numbers from 1 to {len(order)}")
    if n == len(order):
        return data
    keep = torch.isin(data.train.subject, torch.tensor(order[:n]))
    train = data.train.select(keep)
    subjects = dict(data.subjects)
    if "train" in subjects:  # real sources: the ids, in the split's own order
        kept = set(order[:n])
        ids = torch.unique(data.train.subject).tolist()
        subjects["train"] = [name for index, name in zip(ids, subjects["train"]) if index in kept]
    fingerprint = cache.digest([data.fingerprint.encode(), f"train_subjects={n}".encode()])
    return dataclasses.replace(data, train=train, subjects=subjects, fingerprint=fingerprint)
