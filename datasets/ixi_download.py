"""`--download` for IXI: TorchIO's IXI class fetches and checks (md5) the T1 and T2 archives.

It writes `ROOT/T1/*.nii.gz` and `ROOT/T2/*.nii.gz`; discovery finds IXI files by name anywhere
under ROOT, so that layout and the release's `IXI-T1/`, `IXI-T2/` both work.
"""

from __future__ import annotations

from pathlib import Path

from ground.errors import BenchError

ARCHIVES = "https://brain-development.org/ixi-dataset/ (IXI-T1.tar and IXI-T2.tar)"


def download_ixi(root: Path) -> Path:
    import torchio as tio
    root = Path(root).expanduser()
    made = [d for d in (root, root / "T1", root / "T2") if not d.exists()]
    try:
        tio.datasets.IXI(root, modalities=("T1", "T2"), download=True)
    except Exception as err:  # offline, a proxy, a moved server, a bad checksum
        for folder in reversed(made):  # leave no empty folders that look like a started download
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise BenchError(
            f"cannot download IXI into {root} ({type(err).__name__}: {err}); get {ARCHIVES}, "
            f"extract them as {root}/IXI-T1/IXI012-HH-1211-T1.nii.gz and "
            f"{root}/IXI-T2/IXI012-HH-1211-T2.nii.gz, and run again without --download") from None
    return root
