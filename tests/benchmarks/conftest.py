"""The speed summary of `make bench-speed`: every rate in one run, against that run's ceiling, so
that machines with other CPUs compare by ratio, never by absolute time."""

from __future__ import annotations

import pytest

_RESULTS: dict[str, tuple[float, int]] = {}  # name -> (mean seconds, FLOPs per call)


class _Speed:
    def record(self, name: str, benchmark, flops: int) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is not None:  # None under --benchmark-disable: nothing was timed
            _RESULTS[name] = (stats.stats.mean, flops)


@pytest.fixture
def speed() -> _Speed:
    return _Speed()


def pytest_terminal_summary(terminalreporter) -> None:
    # GPU runs: seconds per step and GFLOP/s (the CPU's matmul ceiling does not apply to them).
    for name, (seconds, flops) in sorted(_RESULTS.items()):
        if name.startswith("standard "):
            terminalreporter.write_line(f"{name}: {seconds / 50 * 1000:.1f} ms per step, "
                                        f"{flops / seconds / 1e12:.2f} TFLOP/s")
    if "ceiling" not in _RESULTS:
        return
    seconds, flops = _RESULTS["ceiling"]
    ceiling = flops / seconds
    write = terminalreporter.write_line
    write("")
    write(f"bf16 matmul ceiling: {ceiling / 1e9:.0f} GFLOP/s (2048^2 x 2048^2)")
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
