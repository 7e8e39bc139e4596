"""The ground-truth mode metric: a classifier reads each generated image's known modes (the
phantom's factors, the 2D slice level; datasets/factors.py), and the counts are compared with the
task's mode frequencies, as the Stacked MNIST test counts digits (Metz et al. 2017).

The classifier is a small MONAI ResNet (2D or 3D as the task), one softmax head per label
column, trained only on the task's training images and their labels, cached by key like the
domain encoder, frozen, always fp32. Its accuracy per column on the real test images is recorded
with every result: the metric means what that accuracy lets it mean.

- modes covered: of the K joint modes expected at least MIN_EXPECTED times among n samples, how
  many received at least COVERED_SHARE of their expected count. Rarer modes are too rare for an
  n-sample set to be judged on them; they still count in the distance.
- mode TV: total variation distance between the samples' joint-mode histogram and the task's.

The task's mode frequencies are those of its data-generating process, estimated from the true
labels of all its subjects (every split): a property of the phantom, not a set of images the
samples are compared with.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.networks.nets import ResNet
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from bench.artifacts import load_or_train, nonfinite
from bench.device import exact_features, seeded_generator
from bench.metrics.scores import MetricError
from datasets import factors
from ground.errors import BenchError

MODES_VERSION = 1
LR = 1e-3
CHUNK = 64  # images per classifier call
SHIFT = 2  # voxels of random translation in training
# A joint mode counts in K when expected at least this often among n samples: at 3 a real set
# misses one with chance exp(-3) = 5%, and the suite's 3D dropped-modes sets (90 volumes) still
# judge all 18 modes.
MIN_EXPECTED = 3.0
COVERED_SHARE = 0.25  # a mode is covered with at least this share of its expected count
NO_LABELS = ("the task's images carry no mode labels (a real source without known factors); "
             "only the feature-based metrics apply")


def classifier_key(data, s, seed: int) -> str:
    blob = json.dumps({"data": data.fingerprint, "dims": s.dims, "image_size": s.image_size,
                       "columns": list(data.mode_columns), "steps": s.mode_steps,
                       "batch": s.mode_batch, "seed": seed, "version": MODES_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sizes(columns: tuple[str, ...], dims: int) -> list[int]:
    return [len(factors.classes(c, dims)) for c in columns]


def _network(columns: tuple[str, ...], dims: int) -> ResNet:
    # A 3x3 stride-1 first convolution: MONAI's default 7x7 stride 2 followed by max pooling
    # leaves a 32^3 volume at 8^3 before any residual block, too coarse for a lesion.
    return ResNet("basic", [1, 1, 1, 1], [16, 32, 64, 128], spatial_dims=dims,
                  n_input_channels=1, num_classes=sum(_sizes(columns, dims)),
                  conv1_t_size=3, conv1_t_stride=1)


def _shifted(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image moved by up to SHIFT voxels along every axis, padded with background: the
    classifier must read anatomy, not where a training image sat (a lesion's side is kept)."""
    out = torch.full_like(x, -1.0)
    pad = [SHIFT] * (2 * (x.ndim - 2))
    padded = F.pad(x, pad, value=-1.0)
    for i in range(len(x)):
        start = torch.randint(0, 2 * SHIFT + 1, (x.ndim - 2,), generator=gen).tolist()
        out[i] = padded[(i, slice(None), *[slice(a, a + n) for a, n in zip(start, x.shape[2:])])]
    return out


class ModeClassifier:
    """Images [N, 1, *spatial] in [-1, 1] -> int64 [N, C] predicted labels, one per column."""

    def __init__(self, net: ResNet, columns: tuple[str, ...], dims: int, key: str, info: dict):
        self.net = net.eval().requires_grad_(False)
        self.columns, self.dims, self.key, self.info = columns, dims, key, info
        self.device = next(net.parameters()).device

    def to(self, device) -> ModeClassifier:
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = [torch.empty(0, len(self.columns), dtype=torch.int64)]
        with exact_features(self.device):  # a metric: always fp32
            for chunk in images.split(CHUNK):
                logits = self.net(chunk.to(self.device, torch.float32)).float().cpu()
                out.append(torch.stack([part.argmax(1) for part in
                                        logits.split(_sizes(self.columns, self.dims), dim=1)], 1))
        return torch.cat(out)


def accuracy(classifier: ModeClassifier, images: torch.Tensor, labels: torch.Tensor) -> dict:
    predicted = classifier(images)
    return {c: float((predicted[:, j] == labels[:, j]).float().mean())
            for j, c in enumerate(classifier.columns)}


def train_classifier(data, s, device: torch.device, seed: int, progress: bool = True) -> dict:
    """Cross-entropy summed over the columns, on batches of training images and their labels."""
    columns, sizes = data.mode_columns, _sizes(data.mode_columns, s.dims)
    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays untouched
        torch.manual_seed(seed)
        net = _network(columns, s.dims).to(device)
    opt = torch.optim.Adam(net.parameters(), LR)
    gen = seeded_generator(seed, 13)
    images, labels = data.train.t1, data.train.modes
    batch = min(s.mode_batch, len(images))
    start, loss = time.perf_counter(), torch.tensor(float("nan"))
    for _ in tqdm(range(s.mode_steps), desc=f"mode classifier {data.spec.name}",
                  disable=not progress, leave=False):
        idx = torch.randperm(len(images), generator=gen)[:batch]
        logits = net(_shifted(images[idx], gen).to(device)).float()
        target = labels[idx].to(device)
        loss = sum(F.cross_entropy(part, target[:, j])
                   for j, part in enumerate(logits.split(sizes, dim=1)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():  # batch-norm statistics over all training images (as the encoder's)
        update_bn(images.split(CHUNK), net, device)
    state = {n: t.detach().cpu() for n, t in net.state_dict().items()}
    if bad := nonfinite(state):
        raise BenchError(f"mode classifier of {data.spec.name} diverged (non-finite {bad[0]}); "
                         "report it as a bug")
    digest = hashlib.sha256(b"".join(t.contiguous().numpy().tobytes() for t in state.values()))
    trained = ModeClassifier(net, columns, s.dims, "", {})
    info = {"steps": s.mode_steps, "batch": batch,
            "seconds": round(time.perf_counter() - start, 2),
            "weights_sha256": digest.hexdigest()[:16], "final_loss": float(loss.detach()),
            "columns": list(columns),
            # held-out: the real test images, which the classifier never saw
            "test_accuracy": accuracy(trained, data.test.t1, data.test.modes)}
    return {"state": state, "info": info}


def get_mode_classifier(data, s, cache_dir: Path, device, seed: int = 0,
                        progress: bool = True) -> ModeClassifier | None:
    """The task's frozen mode classifier (cached); None when its images carry no labels."""
    if not data.mode_columns or data.train.modes is None:
        return None
    key, device = classifier_key(data, s, seed), torch.device(device)

    def load(blob: dict) -> ModeClassifier:
        net = _network(data.mode_columns, s.dims)
        net.load_state_dict(blob["state"])
        return ModeClassifier(net, data.mode_columns, s.dims, key, blob["info"]).to(device)

    return load_or_train(Path(cache_dir) / "modes" / f"{key}.pt", "mode classifier", load,
                         lambda: train_classifier(data, s, device, seed, progress))


@dataclass
class ModeReference:
    """What generated images' modes are compared with: the classifier and the task's mode
    frequencies (shares of every joint mode over all subjects' true labels)."""

    classifier: ModeClassifier
    frequencies: dict[tuple[int, ...], float]

    @classmethod
    def of(cls, data, classifier: ModeClassifier | None) -> ModeReference | None:
        if classifier is None:
            return None
        labels = torch.cat([data.split(n).modes for n in ("train", "val", "test")])
        counts = Counter(factors.joint(labels))
        return cls(classifier, {m: c / len(labels) for m, c in sorted(counts.items())})

    def modes(self, n: int) -> list[tuple[int, ...]]:
        """The K joint modes an n-sample set is judged on."""
        return [m for m, f in self.frequencies.items() if f * n >= MIN_EXPECTED]


def histogram(labels: torch.Tensor) -> dict[tuple[int, ...], float]:
    counts = Counter(factors.joint(labels))
    return {m: c / max(1, len(labels)) for m, c in counts.items()}


def scores(reference: ModeReference | None, labels: torch.Tensor) -> dict:
    """modes_covered (of K), modes_k, mode_tv of a set whose predicted labels are `labels`."""
    if reference is None:
        raise MetricError(NO_LABELS)
    n = len(labels)
    if n == 0:
        raise MetricError("no samples to classify")
    shares = histogram(labels)
    covered, judged = _covered(reference.frequencies, shares, n)
    every = set(shares) | set(reference.frequencies)
    tv = 0.5 * sum(abs(shares.get(m, 0.0) - reference.frequencies.get(m, 0.0)) for m in every)
    return {"modes_covered": float(covered), "modes_k": float(judged), "mode_tv": tv}


def _covered(frequencies: dict, shares: dict, n: int) -> tuple[int, int]:
    """(covered, judged): of the classes expected at least MIN_EXPECTED times among n, how many
    hold at least COVERED_SHARE of their expected share."""
    judged = [m for m, f in frequencies.items() if f * n >= MIN_EXPECTED]
    return sum(shares.get(m, 0.0) >= COVERED_SHARE * frequencies[m] for m in judged), len(judged)


def level_scores(reference: ModeReference | None, labels: torch.Tensor) -> dict:
    """2D: levels_covered (of levels_k) by the rule of modes_covered, applied to the slice level
    alone (vertex to cerebellum; datasets/factors.py), so a missing level shows by name."""
    if reference is None:
        raise MetricError(NO_LABELS)
    columns = reference.classifier.columns
    if factors.LEVEL not in columns:
        raise MetricError("these images carry no slice level (only 2D slices do)")
    at = columns.index(factors.LEVEL)
    expected: Counter = Counter()
    for mode, share in reference.frequencies.items():
        expected[mode[at]] += share
    shares = {level: c / len(labels) for level, c in Counter(labels[:, at].tolist()).items()}
    covered, judged = _covered(expected, shares, len(labels))
    return {"levels_covered": float(covered), "levels_k": float(judged)}
