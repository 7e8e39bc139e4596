"""The speed summary of `make bench-speed`: every rate in one run, against that run's ceiling, so
that machines with other CPUs compare by ratio, never by absolute time."""

from __future__ import annotations

import pytest
import torch

from bench.device import cpu_bf16, resolve_precision

_RESULTS: dict[str, tuple[float, int]] = {}  # name -> (mean seconds, FLOPs per call)


class _Speed:
    def record(self, name: str, benchmark, flops: int) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is not None:  # None under --benchmark-disable: nothing was timed
            _RESULTS[name] = (stats.stats.mean, flops)


@pytest.fixture
def speed() -> _Speed:
    return _Speed()


@pytest.fixture
def profile(benchmark) -> str:
    """quick when timed (`make bench-speed`); smoke when each body only runs once to show that it
    works (`make test`)."""
    return "smoke" if benchmark.disabled else "quick"


def _capabilities() -> str:
    caps = torch.cpu.get_capabilities()
    has = lambda key: "yes" if caps.get(key) else "no"  # noqa: E731
    native, why = cpu_bf16()
    return (f"CPU: AMX-BF16 {has('amx_bf16')}, AVX-512 BF16 {has('avx512_bf16')}, AVX-512 "
            f"{has('avx512_f')}, AVX2 {has('avx2')}; bf16 {'native' if native else 'EMULATED'} "
            f"({why}); --precision auto trains in "
            f"{resolve_precision('auto', torch.device('cpu')).name}")


def pytest_terminal_summary(terminalreporter) -> None:
    write = terminalreporter.write_line
    # GPU runs: seconds per step and GFLOP/s (the CPU's matmul ceiling does not apply to them).
    for name, (seconds, flops) in sorted(_RESULTS.items()):
        if name.startswith("standard "):
            write(f"{name}: {seconds / 50 * 1000:.1f} ms per step, "
                  f"{flops / seconds / 1e12:.2f} TFLOP/s")
    if not _RESULTS:
        return
    write("")
    write(_capabilities())
    emulated = not cpu_bf16()[0]
    for dims in (2, 3):
        steps = {p: _RESULTS.get(f"step {dims}D {p}") for p in ("fp32", "bf16")}
        if all(steps.values()):
            rates = ", ".join(f"{p} {1 / found[0]:.2f} steps/s"
                              + (" (emulated)" if p == "bf16" and emulated else "")
                              for p, found in steps.items())
            write(f"{dims}D quick step (G and D, forward and backward): {rates}; bf16 / fp32 "
                  f"time {steps['bf16'][0] / steps['fp32'][0]:.2f}")
    if "ceiling" not in _RESULTS:
        return
    seconds, flops = _RESULTS["ceiling"]
    ceiling = flops / seconds
    auto = resolve_precision("auto", torch.device("cpu")).name
    write(f"{auto} matmul ceiling: {ceiling / 1e9:.0f} GFLOP/s (2048^2 x 2048^2); the loops "
          f"below train in {auto}")
    for dims in (2, 3):
        for kind in ("harness", "bare", "compiled"):
            found = _RESULTS.get(f"{kind} {dims}D")
            if found:
                rate = found[1] / found[0]
                write(f"{dims}D {kind} loop: {found[1] / 16 / 1e9:.1f} GFLOP per step (R1 "
                      f"averaged in), {rate / 1e9:.0f} GFLOP/s = {100 * rate / ceiling:.0f}% of "
                      "the ceiling")
        both = [_RESULTS.get(f"{k} {dims}D") for k in ("harness", "bare")]
        if all(both):
            write(f"{dims}D harness / bare loop time: {both[0][0] / both[1][0]:.3f}")
        compiled = _RESULTS.get(f"compiled {dims}D")
        if compiled and both[1]:
            write(f"{dims}D compiled / bare loop time: {compiled[0] / both[1][0]:.3f}")
