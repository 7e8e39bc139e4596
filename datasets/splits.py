"""Split tensors and the helpers both data sources use: a subject's images and labels, one split
stacked from subjects, and the data's identity and fingerprint (which name the cache)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from datasets import cache, factors, phantom
from datasets.spec import SLICE_AXES, SPLIT_NAMES, Slicing, TaskSpec
from ground.errors import BenchError


@dataclass
class Split:
    t1: torch.Tensor  # float32 [N, 1, S, S] (2D) or [N, 1, S, S, S] (3D), values in [-1, 1]
    t2: torch.Tensor  # same shape, paired with t1 image for image
    subject: torch.Tensor  # int64 [N], subject index of each image
    # int64 [N, C]: each image's known modes, one column per TaskData.mode_columns; None when
    # the source records none
    modes: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.t1.shape[0])

    def select(self, keep: torch.Tensor) -> Split:
        """The images where `keep` (a boolean mask or indices) holds, with their labels."""
        return Split(t1=self.t1[keep], t2=self.t2[keep], subject=self.subject[keep],
                     modes=None if self.modes is None else self.modes[keep])


@dataclass
class TaskData:
    spec: TaskSpec
    size: int
    data_seed: int
    train: Split
    val: Split
    test: Split
    fingerprint: str  # 16 hex chars of sha256 over the tensors, spec, size and seed
    # Real sources: (item, reason) for every scan or subject left out, and subject ids per split.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    subjects: dict[str, list[str]] = field(default_factory=dict)
    mode_columns: tuple[str, ...] = ()  # names of Split.modes' columns (datasets/factors.py)

    def split(self, name: str) -> Split:
        if name not in SPLIT_NAMES:
            raise BenchError(f"unknown split '{name}'; known: {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)


def subject_indices(counts: dict[str, int]) -> dict[str, range]:
    """Consecutive index blocks in the order train, val, test: no subject is in two splits."""
    out, start = {}, 0
    for name in SPLIT_NAMES:
        out[name] = range(start, start + counts[name])
        start += counts[name]
    return out


def slice_levels(brain: torch.Tensor, slicing: Slicing) -> list[int]:
    """`per_subject` levels evenly spaced over those whose brain covers enough of the slice.

    When a small image has fewer such levels than asked for, levels repeat: every subject still
    gives the same number of images, so subjects weigh equally.
    """
    axis = SLICE_AXES[slicing.axis]
    other = tuple(d for d in range(3) if d != axis)
    fraction = brain.float().mean(dim=other)
    ok = torch.nonzero(fraction >= slicing.min_brain_fraction).flatten().tolist()
    if not ok:
        raise BenchError(f"no {slicing.axis} slice has min_brain_fraction "
                         f"{slicing.min_brain_fraction} brain; lower it in the task file")
    picks = np.linspace(0, len(ok) - 1, slicing.per_subject).round().astype(int)
    return [ok[i] for i in picks]


def subject_images(subject, spec: TaskSpec
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A subject's (T1, T2, mode labels) as the task's images: its volume (3D) or its slices
    (2D). Labels: the phantom's factors (and 2D level); a real volume's 2D level only."""
    has_factors = isinstance(subject, phantom.Subject)
    if spec.dims == 3:
        labels = factors.volume_labels(subject.factors) if has_factors else None
        return subject.t1[None, None], subject.t2[None, None], labels
    assert spec.slicing is not None
    axis = SLICE_AXES[spec.slicing.axis]
    levels = slice_levels(subject.brain, spec.slicing)
    t1 = subject.t1.movedim(axis, 0)[levels]
    t2 = subject.t2.movedim(axis, 0)[levels]
    labels = (factors.slice_labels(subject.factors, levels, axis, subject.ventricles,
                                   subject.lesion) if has_factors
              else factors.level_bins(len(levels))[:, None])
    return t1[:, None].contiguous(), t2[:, None].contiguous(), labels


def data_identity(spec: TaskSpec, size: int, data_seed: int, counts: dict[str, int]) -> bytes:
    content = {"spec": spec.content(), "size": size, "seed": data_seed, "splits": counts}
    return json.dumps(content, sort_keys=True).encode()


def fingerprint(identity: bytes, splits: dict[str, Split]) -> str:
    parts = [identity]
    for name in SPLIT_NAMES:
        s = splits[name]
        parts += [t.contiguous().numpy() for t in (s.t1, s.t2, s.subject)
                  + (() if s.modes is None else (s.modes,))]
    return cache.digest(parts)


def stack_split(blocks: list[tuple[int, tuple]]) -> Split:
    """One split from (subject index, (t1, t2, labels)) blocks; labels kept only when every
    subject has them."""
    ids = [torch.full((p[0].shape[0],), i, dtype=torch.int64) for i, p in blocks]
    labels = [p[2] for _, p in blocks]
    return Split(t1=torch.cat([p[0] for _, p in blocks]), t2=torch.cat([p[1] for _, p in blocks]),
                 subject=torch.cat(ids),
                 modes=torch.cat(labels) if labels and all(x is not None for x in labels) else None)
