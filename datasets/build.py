"""Task data: subject-level train/val/test tensors, generated once and cached on disk."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from tqdm.auto import tqdm

from datasets import cache, factors, phantom
from datasets.spec import SPLIT_NAMES, TaskSpec, parse_splits
from datasets.splits import (Split, TaskData, data_identity, fingerprint, stack_split,
                             subject_images, subject_indices)
from ground.errors import BenchError

# A source renders subject `index` of a data seed on a size^3 cube.
Renderer = Callable[[int, int, int], phantom.Subject]
SOURCES: dict[str, Renderer] = {"mni-phantom": phantom.render_subject}


def check_size(size: int) -> None:
    # Multiples of 4: the generator's two stride-2 downsamplings must divide the image evenly.
    if isinstance(size, bool) or not isinstance(size, int) or size < 16 or size % 4:
        raise BenchError(f"image size {size!r} is not supported: use a multiple of 4 that is >= 16")


def _subject_images(render: Renderer, spec: TaskSpec, size: int, data_seed: int,
                    index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    return subject_images(render(index, data_seed, size), spec)


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
    key = cache.digest([data_identity(spec, size, data_seed, counts),
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
        digest = str(payload["fingerprint"])
    else:
        out = _generate(spec, size, data_seed, counts, progress, n_workers)
        digest = fingerprint(data_identity(spec, size, data_seed, counts), out)
        cache.save_atomic({"key": key, "fingerprint": digest,
                           "splits": {n: vars(s) for n, s in out.items()}}, path)
    return TaskData(spec=spec, size=size, data_seed=data_seed, fingerprint=digest,
                    mode_columns=factors.columns(spec.dims, labelled=True), **out)
