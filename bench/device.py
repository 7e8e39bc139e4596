"""Device, precision and seeding: harness settings, identical for every strategy of a run."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import torch

from ground.errors import BenchError

PRECISIONS = ("auto", "fp32", "bf16")
# "0" or "1": what the CPU capability query answers, whatever the CPU (tests, and proving on a
# CPU with native bf16 what a CPU without it does).
NATIVE_BF16_ENV = "BENCH_NATIVE_BF16"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BenchError(f"--device {name}: no CUDA device is visible; use --device cpu or auto")
        return torch.device(name)
    raise BenchError(f"unknown device '{name}'; use auto, cpu or cuda[:N]")


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise BenchError(f"unknown precision '{name}'; use one of: {', '.join(PRECISIONS)}")
    return name


def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively, and what says so. Without AMX or AVX-512 BF16
    (most laptops, AMD Zen 2 and 3) oneDNN emulates bf16: a training step is 12-48x slower than
    in fp32. oneDNN's own check is asked too, since ONEDNN_MAX_CPU_ISA can switch its bf16
    kernels off on a CPU that has the instructions."""
    forced = os.environ.get(NATIVE_BF16_ENV)
    if forced in ("0", "1"):
        return forced == "1", f"{NATIVE_BF16_ENV}={forced}"
    caps = torch.cpu.get_capabilities()
    found = [name for key, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"))
             if caps.get(key)]
    if not found:
        return False, "this CPU has neither AMX nor AVX-512 BF16"  # x86's; ARM's are not asked
    if not _onednn_bf16():
        return False, f"oneDNN's bf16 kernels are off, though this CPU has {' and '.join(found)}"
    return True, f"this CPU has {' and '.join(found)}"


def _onednn_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` computes bf16 natively, and why (PyTorch's own capability reports)."""
    if device.type == "cuda":
        # torch.cuda.is_bf16_supported's rule (ROCm, or compute capability 8.0 on), asked of
        # this device rather than the current one.
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        if torch.version.hip or major >= 8:
            return True, f"{name} computes bf16"
        return False, f"{name} (compute capability {major}.{minor}) has no native bf16"
    return cpu_bf16() if device.type == "cpu" else (False, f"{device.type} is not a CPU or GPU")


@dataclasses.dataclass(frozen=True)
class Precision:
    """The precision a run computes in, why, and a warning when it will be slow."""

    name: str
    reason: str
    warning: str | None = None

    def line(self) -> str:
        return f"precision: {self.name} ({self.reason})"


def resolve_precision(name: str, device: torch.device) -> Precision:
    """`auto`: bf16 where `device` computes it natively, fp32 elsewhere. An explicit bf16 on a
    device that would emulate it is kept, with a warning."""
    native, why = native_bf16(device)
    if check_precision(name) == "auto":
        if native:
            return Precision("bf16", f"auto: {why}")
        return Precision("fp32", f"auto: {why}, so bf16 would be emulated")
    if name == "bf16" and not native:
        return Precision("bf16", "--precision bf16", f"bf16 is emulated here ({why}): training "
                         "is many times slower than in fp32; use --precision auto or fp32")
    return Precision(name, f"--precision {name}")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast, or nothing for fp32; `auto` must have been resolved before (a run's
    units all train in the one precision its rows record)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision {precision!r}: resolve it with resolve_precision first")
    return contextlib.nullcontext()


# What the metrics' feature networks compute in: recorded in every row's reference.
FEATURE_NUMERICS = "fp32, no autocast, TF32 off for matmul and cuDNN convolutions"


def _tf32_flags() -> dict:
    """Whether matmuls and cuDNN may use TF32, or None where PyTorch refuses to say (its legacy
    and per-backend TF32 settings were mixed by someone)."""
    flags = {}
    for name, read in (("matmul_precision", torch.get_float32_matmul_precision),
                       ("cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32)):
        try:
            flags[name] = read()
        except RuntimeError:
            flags[name] = None
    return flags


@contextlib.contextmanager
def exact_features(device: torch.device):
    """Feature extraction for a metric: fp32 whatever the caller's autocast, and on GPUs without
    TF32, whose 10-bit mantissa moves FID-sized statistics; the settings are restored after.
    Only the long-standing settings (float32 matmul precision, cuDNN's allow_tf32) are used:
    PyTorch refuses to run with those and its newer per-backend ones set inconsistently."""
    before = _tf32_flags()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        if before["matmul_precision"] is not None:
            torch.set_float32_matmul_precision(before["matmul_precision"])
        if before["cudnn_allow_tf32"] is not None:
            torch.backends.cudnn.allow_tf32 = before["cudnn_allow_tf32"]


def hardware(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"device": str(device), "gpu": gpu, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "training_tf32": _tf32_flags()}


# Voxels per forward pass when a whole validation set is pushed through a network: 2^22 is 1,024
# images of 64^2 or 2 volumes of 128^3, whose activations fit a GPU where 64 volumes did not.
EVAL_VOXELS = 2**22


def per_chunk(voxels: int, budget: int = EVAL_VOXELS) -> int:
    """How many items of `voxels` voxels each fit in `budget` (at least one)."""
    return max(1, budget // max(1, voxels))


def by_voxels(images: torch.Tensor, budget: int = EVAL_VOXELS) -> tuple[torch.Tensor, ...]:
    """`images` [N, C, *spatial] in chunks of at most `budget` voxels (at least one image)."""
    return images.split(per_chunk(images[0].numel(), budget))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seeded_generator(*seed_parts: int) -> torch.Generator:
    """A CPU generator whose seed is a fixed function of the parts (e.g. seed and purpose)."""
    seed = 0
    for part in seed_parts:
        seed = (seed * 1_000_003 + int(part)) % (2 ** 63)
    return torch.Generator().manual_seed(seed)


def fast_layout(module: torch.nn.Module, dims: int) -> torch.nn.Module:
    """Channels-last weights for 3D nets: oneDNN's 3D convolutions then skip layout reorders
    (quick-profile bf16 training step 0.45 s -> 0.24 s on 2 CPU cores); in 2D they were about
    15% slower. Values are unchanged, so weights transfer as usual."""
    return module.to(memory_format=torch.channels_last_3d) if dims == 3 else module
