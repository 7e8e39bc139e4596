"""Real scans as a task source: discovered T1/T2 pairs, preprocessed once, cached.

Subjects are taken in an order seeded by the data seed; a scan that cannot be used is skipped
with its reason (and counted in the results) while enough usable subjects remain. Subjects per
split come from the task's [splits]; without them, 70/15/15 of the usable subjects. (A profile's
`splits`, which sizes the generated phantom, does not apply: real data decide their own size.)
The cache key covers every discovered file's path, size and modification time, the task and
the preprocessing settings, so an edited or added scan rebuilds the data.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from datasets import cache, factors
from datasets.discover import LAYOUTS, SLICE_LAYOUTS, Found, discover
from datasets.preprocess import BadScan, prepare_pair
from datasets.slices import prepare_slices
from datasets.spec import SPLIT_NAMES, TaskSpec
from datasets.splits import Split, TaskData, data_identity, fingerprint, stack_split, subject_images
from ground.errors import BenchError

REAL_SOURCES = LAYOUTS
PREPROCESS_VERSION = 2  # bump when preprocessing changes what a cached entry holds (2: levels)


def check_source(spec: TaskSpec) -> Found:
    """Discovery plus the checks that need no preprocessing, before a run writes anything."""
    if spec.source in SLICE_LAYOUTS and spec.dims != 2:
        raise BenchError(f"task '{spec.name}': source {spec.source} holds 2D slices; use it with "
                         "a 2D task (--task 2d, or dims = 2 in the task file)")
    found = find_pairs(spec)
    counts = dict(spec.splits) if spec.splits else None
    if counts and sum(counts.values()) > len(found.pairs):
        raise BenchError(f"task '{spec.name}' asks for {sum(counts.values())} subjects "
                         f"({counts}) but {spec.data_root} holds {len(found.pairs)} pairs; "
                         "lower [splits] in the task file")
    # The domain encoder contrasts training images: a 3D task needs two training volumes.
    min_train = 2 if spec.dims == 3 else 1
    if counts and counts["train"] < min_train:
        raise BenchError(f"task '{spec.name}': a 3D task needs at least 2 training subjects, "
                         f"[splits] gives {counts['train']}")
    if not counts and len(found.pairs) < 2 + min_train:
        raise BenchError(f"{spec.data_root}: {len(found.pairs)} subject pair(s); a {spec.dims}D "
                         f"task needs {2 + min_train} (val and test one each, train "
                         f"{min_train}): add subjects")
    return found


def find_pairs(spec: TaskSpec) -> Found:
    if spec.data_root is None:
        raise BenchError(f"task '{spec.name}' reads source '{spec.source}' but gives no "
                         "data_root: add it to the task file, or use --data-root")
    return discover(spec.source, spec.data_root, spec.t1_pattern, spec.t2_pattern)


def auto_splits(n: int) -> dict[str, int]:
    """70/15/15 of n >= 3 usable subjects, at least one each (train gets the rest)."""
    val = test = max(1, round(0.15 * n))
    return {"train": n - val - test, "val": val, "test": test}


def _files_identity(found: Found) -> bytes:
    files = []
    for pair in found.pairs:
        for path in pair.files():
            stat = path.stat()
            files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return json.dumps(files).encode()


def source_identity(spec: TaskSpec) -> str | None:
    """What a real task reads (root and every file's path, size and time); None for generated
    data. Run directories and studies refuse to mix results of different data."""
    if spec.source not in REAL_SOURCES:
        return None
    return cache.digest([str(spec.data_root).encode(), _files_identity(find_pairs(spec))])


def build_real(spec: TaskSpec, size: int, cache_dir: Path, data_seed: int, progress: bool):
    found = check_source(spec)
    counts = dict(spec.splits) if spec.splits else None
    identity = data_identity(spec, size, data_seed, counts or {"auto": True})
    key = cache.digest([identity, _files_identity(found),
                        f"preprocess={PREPROCESS_VERSION}".encode()])
    path = Path(cache_dir) / f"{spec.name}-{size}px-seed{data_seed}-{key}.pt"
    payload = cache.load(path, key) if path.exists() else None
    if payload is None:
        payload = _prepare(spec, size, data_seed, found, counts, progress)
        payload["fingerprint"] = fingerprint(
            identity, {n: Split(**payload["splits"][n]) for n in SPLIT_NAMES})
        cache.save_atomic({"key": key, **payload}, path)
    splits = {n: Split(**payload["splits"][n]) for n in SPLIT_NAMES}
    skipped = [tuple(s) for s in found.skipped] + [tuple(s) for s in payload["bad"]]
    if skipped:
        warnings.warn(f"{spec.name}: {len(skipped)} item(s) of {spec.data_root} skipped, e.g. "
                      f"{skipped[0][0]}: {skipped[0][1]} (`bench data inspect` lists them all)",
                      stacklevel=2)
    # A real 2D task cut from volumes knows each slice's level; nothing knows its factors.
    labelled = all(splits[n].modes is not None for n in SPLIT_NAMES)
    return TaskData(spec=spec, size=size, data_seed=data_seed, fingerprint=payload["fingerprint"],
                    skipped=skipped, subjects=payload["subjects"],
                    mode_columns=factors.columns(spec.dims, labelled=False) if labelled else (),
                    **splits)


def _prepare(spec: TaskSpec, size: int, data_seed: int, found: Found,
             counts: dict[str, int] | None, progress: bool) -> dict:
    order = np.random.default_rng(data_seed).permutation(len(found.pairs))
    need = sum(counts.values()) if counts else len(found.pairs)
    usable, bad = [], []
    bar = tqdm(total=need, desc=f"{spec.name} {size}px", unit="subject", disable=not progress)
    with bar:
        for i in order:
            if len(usable) == need:
                break
            pair = found.pairs[int(i)]
            try:
                if pair.slices:  # already the 2D task's images: no slicing of a volume
                    (t1, t2), bad_slices = prepare_slices(pair.slices, size)
                    images = (t1, t2, None)  # files in any order: no known level
                    bad += [(f"{pair.subject}/{path.name}", why) for path, why in bad_slices]
                else:
                    volume = prepare_pair(pair.t1, pair.t2, size, spec.spacing)
                    images = subject_images(volume, spec)
            except BadScan as err:  # skipped and counted; an error only if too few remain
                bad.append((pair.subject, str(err)))
                continue
            except (RuntimeError, ValueError, OSError) as err:  # a library choking on an odd scan
                bad.append((pair.subject, f"{pair.t1.name} / {pair.t2.name} could not be "
                                          f"preprocessed ({type(err).__name__}: {err})"))
                continue
            usable.append((pair.subject, images))
            bar.update(1)
    first = f"; first: {bad[0][0]}: {bad[0][1]}" if bad else ""
    if counts is None:
        if len(usable) < (4 if spec.dims == 3 else 3):
            raise BenchError(f"{spec.data_root}: {len(usable)} usable subject(s) of "
                             f"{len(found.pairs)} pairs ({len(bad)} skipped{first}); too few "
                             "to split into train, val and test")
        counts = auto_splits(len(usable))
    elif len(usable) < need:
        raise BenchError(f"task '{spec.name}' needs {need} usable subjects but only "
                         f"{len(usable)} of {len(found.pairs)} pairs could be used "
                         f"({len(bad)} skipped{first}); lower [splits] or fix the scans")
    out, subjects, start = {}, {}, 0
    for name in SPLIT_NAMES:
        first_index, start = start, start + counts[name]
        block = usable[first_index:start]
        out[name] = vars(stack_split([(j, images) for j, (_, images) in
                                      enumerate(block, first_index)]))
        subjects[name] = [s for s, _ in block]
    return {"splits": out, "subjects": subjects, "bad": bad}
