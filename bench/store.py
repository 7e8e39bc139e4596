"""The run store: results.jsonl rows, curve CSVs, sample images, checkpoints. Reports read only this."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.metrics.fid import even_subset  # noqa: E402
from bench.metrics.memorization import nearest  # noqa: E402
from bench.metrics.registry import LEADING  # noqa: E402
from bench.records import UnitRecord  # noqa: E402
from ground.atomic import atomic_path, write_atomic  # noqa: E402
from ground.errors import BenchError  # noqa: E402

CLOSEST_PAIRS = 8


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-empty line; a corrupt line is a one-line error."""
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError as err:
                raise BenchError(f"{path} line {n} is not valid JSON ({err.msg}); "
                                 "fix or delete that line and rerun") from None
    return out


CURVE_COLUMNS = ["step", "seconds", "flops", LEADING, "loss_g", "loss_d", "d_acc_real", "d_acc_fake",
                 "msssim", "coverage"]


def unit_id(task: str, strategy: str, seed: int) -> str:
    return f"{task}/{strategy}/seed{seed}"


def unit_stem(task: str, strategy: str, seed: int) -> str:
    return f"{task}__{strategy}__seed{seed}"


class RunStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.results = self.root / "results.jsonl"

    def check_settings(self, settings: dict, older: dict | None = None) -> None:
        """A run directory holds one harness configuration; rerunning the same command resumes.
        `older`: the value a setting had in directories written before it was recorded."""
        path = self.root / "run.json"
        if path.exists():
            old = {**(older or {}), **json.loads(path.read_text())}
            diff = [k for k in settings if k in old and old[k] != settings[k]]
            if diff:
                k = diff[0]
                same = (f"resume it with --precision {old[k]} (`auto` decides per machine)"
                        if k == "precision" else "the same settings")
                raise BenchError(f"{self.root} holds a run with {k}={old[k]!r}, not {settings[k]!r}; "
                                 f"use another --out or {same}")
            settings = {**old, **settings}
        write_atomic(path, json.dumps(settings, indent=2, sort_keys=True))

    def records(self) -> list[tuple[int, UnitRecord]]:
        """(line number, record) for every row, in the order written."""
        return [(n, UnitRecord.from_json(row, f"{self.results} line {n}"))
                for n, row in read_jsonl(self.results)]

    def rows(self) -> list[UnitRecord]:
        return [record for _, record in self.records()]

    def finished(self) -> set[str]:
        """Units with a final status; failed units (exceptions) are retried on a rerun."""
        return {r.unit for r in self.rows() if r.finished}

    def append(self, record: UnitRecord) -> None:
        """Rewrite-and-rename, so a reader or a crash never sees half a row. A retried unit's
        earlier failed row is replaced; the other rows are written back as they were read."""
        keep = [r for r in self.rows() if r.unit != record.unit]
        text = "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in [*keep, record])
        write_atomic(self.results, text)

    def checkpoint_path(self, stem: str) -> Path:
        return self.root / "checkpoints" / f"{stem}.pt"

    def tensorboard_dir(self, stem: str) -> Path:
        """A unit's TensorBoard event files: `tensorboard --logdir RUN_DIR` shows every unit."""
        return self.root / "tensorboard" / stem

    def write_curve(self, stem: str, curve: list[dict]) -> str:
        rel = f"curves/{stem}.csv"
        extra = [k for row in curve for k in row if k not in CURVE_COLUMNS]  # registered metrics
        frame = pd.DataFrame(curve, columns=CURVE_COLUMNS + list(dict.fromkeys(extra)))
        write_atomic(self.root / rel, frame.to_csv(index=False))
        return rel

    def write_real_samples(self, task: str, images: torch.Tensor, dims: int) -> str:
        """The task's held-out real images, drawn like the generated ones, to set beside them."""
        shown = even_subset(images, min(len(images), 32 if dims == 2 else 6))
        return self.write_samples(f"real__{task}", shown, dims, nifti=False)["samples"]

    def write_samples(self, stem: str, images: torch.Tensor, dims: int,
                      nifti: bool = True) -> dict[str, str]:
        """PNG grid for 2D; for 3D a 4D NIfTI of the first volumes and a tri-planar PNG."""
        arr = torch.nan_to_num(images.detach().float().cpu(), nan=-1.0).clamp(-1, 1).numpy()[:, 0]
        files = {"samples": f"samples/{stem}.png"}
        if dims == 2:
            save_grid(self.root / files["samples"], arr[:32], cols=8)
        elif nifti:
            files["samples_nifti"] = f"samples/{stem}.nii.gz"
            vols = np.stack(list(arr[:8]), axis=-1).astype(np.float32)
            with atomic_path(self.root / files["samples_nifti"]) as tmp:
                nib.save(nib.Nifti1Image(vols, np.eye(4)), tmp)
        if dims == 3:
            save_grid(self.root / files["samples"], triplanar(arr[:6]), cols=3)
        return files


    def write_closest(self, stem: str, samples: torch.Tensor, train: torch.Tensor,
                      dims: int) -> str:
        """The generated samples nearest a training image (pixels), each above that image: what
        copying would look like (3D: middle axial slices)."""
        x = torch.nan_to_num(samples.float(), nan=-1.0)
        distances, indices = nearest(x, train)
        order = distances.argsort()[:CLOSEST_PAIRS]
        pairs = x[order], train[indices[order]]
        arr = [p.numpy()[:, 0] for p in pairs]
        if dims == 3:
            arr = [a[:, a.shape[1] // 2] for a in arr]
        rel = f"samples/{stem}__closest.png"
        save_grid(self.root / rel, np.concatenate(arr), cols=len(order))
        return rel


def triplanar(volumes: np.ndarray) -> np.ndarray:
    """Middle axial, coronal and sagittal slices of each volume, one row per volume (the task
    volumes are stored axial-first, superior at index 0, so each slice displays upright)."""
    out = []
    for v in volumes:
        c = [s // 2 for s in v.shape]
        out += [v[c[0]], v[:, c[1]], v[:, :, c[2]]]
    return np.stack(out)


def save_grid(path: Path, images: np.ndarray, cols: int) -> None:
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images):
        ax.imshow(img, cmap="gray", vmin=-1, vmax=1)
    fig.subplots_adjust(0, 0, 1, 1, 0.02, 0.02)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
