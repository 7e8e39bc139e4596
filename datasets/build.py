"""Task data: subject-level train/val/test tensors, generated once and cached on disk."""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.errors import BenchError
from datasets import cache, factors, phantom
from datasets.spec import SLICE_AXES, SPLIT_NAMES, Slicing, TaskSpec, parse_splits

# A source renders subject `index` of a data seed on a size^3 cube.
Renderer = Callable[[int, int, int], phantom.Subject]
SOURCES: dict[str, Renderer] = {"mni-phantom": phantom.render_subject}


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


def check_size(size: int) -> None:
    # Multiples of 4: the generator's two stride-2 downsamplings must divide the image evenly.
    if isinstance(size, bool) or not isinstance(size, int) or size < 16 or size % 4:
        raise BenchError(f"image size {size!r} is not supported: use a multiple of 4 that is >= 16")


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


def _images(subject, spec: TaskSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
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


def _identity(spec: TaskSpec, size: int, data_seed: int, counts: dict[str, int]) -> bytes:
    content = {"spec": spec.content(), "size": size, "seed": data_seed, "splits": counts}
    return json.dumps(content, sort_keys=True).encode()


def _fingerprint(identity: bytes, splits: dict[str, Split]) -> str:
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


def _subject_images(render: Renderer, spec: TaskSpec, size: int, data_seed: int,
                    index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    return _images(render(index, data_seed, size), spec)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # One subject's tensors are small: with 2 intra-op threads on a busy 2-core machine rendering
    # measured 3-7x slower than with one. Parallelism comes from worker processes instead.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_init() -> None:
    import SimpleITK as sitk

    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def auto_workers(size: int) -> int:
    """Worker processes for generation: each pays seconds to start (imports, template), which
    only large images repay."""
    if size < 128:
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _generate(spec: TaskSpec, size: int, data_seed: int, counts: dict[str, int],
              progress: bool, workers: int) -> dict[str, Split]:
    job = functools.partial(_subject_images, SOURCES[spec.source], spec, size, data_seed)
    blocks = subject_indices(counts)
    order = [i for r in blocks.values() for i in r]
    images: dict[int, tuple] = {}
    bar = tqdm(total=len(order), desc=f"{spec.name} {size}px", unit="subject",
               disable=not progress)
    with bar, _one_thread(), contextlib.ExitStack() as stack:
        if workers > 1:
            # spawn, not fork: forking a process whose torch thread pools are running can hang.
            pool = stack.enter_context(ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init))
            results: Iterator = pool.map(job, order, chunksize=2)
        else:
            results = map(job, order)
        for index, pair in zip(order, results):
            images[index] = pair
            bar.update(1)
    return {name: stack_split([(i, images[i]) for i in indices])
            for name, indices in blocks.items()}


def cache_path(spec: TaskSpec, size: int, cache_dir: Path, data_seed: int = 0,
               splits: dict[str, int] | None = None) -> Path:
    """Where build_task_data keeps (or will keep) this data."""
    counts = parse_splits(spec.splits if splits is None else splits, "splits override")
    return Path(cache_dir) / _cache_name(spec, size, data_seed, counts)[0]


def _cache_name(spec: TaskSpec, size: int, data_seed: int,
                counts: dict[str, int]) -> tuple[str, str]:
    key = cache.digest([_identity(spec, size, data_seed, counts),
                   f"generator={phantom.GENERATOR_VERSION}".encode()])
    return f"{spec.name}-{size}px-seed{data_seed}-{key}.pt", key


def build_task_data(spec: TaskSpec, size: int, cache_dir: Path, data_seed: int = 0,
                    splits: dict[str, int] | None = None, progress: bool = True,
                    workers: int | None = None) -> TaskData:
    """The task's train/val/test tensors: loaded from cache_dir, or generated once and cached.

    `splits` overrides the spec's subjects per split (e.g. a tiny smoke profile). `workers`
    processes render subjects in parallel (None: auto_workers(size)); the data do not depend on
    it. With workers > 1 the source must be importable by name in a fresh process.
    """
    check_size(size)
    from datasets.real import REAL_SOURCES, build_real
    if spec.source in REAL_SOURCES:
        return build_real(spec, size, Path(cache_dir), data_seed, progress)
    if spec.source not in SOURCES:
        raise BenchError(f"task '{spec.name}' has unknown data source '{spec.source}'; "
                         f"known: {', '.join(sorted(SOURCES) + list(REAL_SOURCES))}")
    counts = parse_splits(spec.splits if splits is None else splits, "splits override")
    n_workers = auto_workers(size) if workers is None else workers
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise BenchError(f"workers must be a positive integer, got {workers!r}")
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"cannot create data cache directory {cache_dir} ({e})") from None
    name, key = _cache_name(spec, size, data_seed, counts)
    path = cache_dir / name

    payload = cache.load(path, key) if path.exists() else None
    if payload is not None:
        out = {n: Split(**payload["splits"][n]) for n in SPLIT_NAMES}
        fingerprint = str(payload["fingerprint"])
    else:
        out = _generate(spec, size, data_seed, counts, progress, n_workers)
        fingerprint = _fingerprint(_identity(spec, size, data_seed, counts), out)
        cache.save_atomic({"key": key, "fingerprint": fingerprint,
                           "splits": {n: vars(s) for n, s in out.items()}}, path)
    return TaskData(spec=spec, size=size, data_seed=data_seed, fingerprint=fingerprint,
                    mode_columns=factors.columns(spec.dims, labelled=True), **out)
