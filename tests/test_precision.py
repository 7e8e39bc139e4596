"""`--precision auto`: bf16 where the device computes it natively, fp32 elsewhere, said once at
the start, recorded in every row; an explicit bf16 that would be emulated runs after a warning."""

from __future__ import annotations

import json

import pytest
import torch

import bench.device
from bench.cli import main
from bench.device import NATIVE_BF16_ENV, autocast, cpu_bf16, resolve_precision

CPU = torch.device("cpu")
NO_BF16 = {"avx2": True, "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}


@pytest.fixture
def cpu_reports(monkeypatch):
    """Sets what PyTorch reports of the CPU (its capabilities, oneDNN's bf16 check), with the
    environment's override removed."""
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)

    def report(caps: dict, onednn: bool = True) -> None:
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: dict(caps))
        monkeypatch.setattr(bench.device, "_onednn_bf16", lambda: onednn)

    return report


@pytest.mark.parametrize("caps, found", [
    ({**NO_BF16, "avx512_bf16": True}, "AVX-512 BF16"),
    ({**NO_BF16, "amx_bf16": True}, "AMX"),
])
def test_auto_picks_bf16_where_the_cpu_computes_it_natively(cpu_reports, caps, found):
    cpu_reports(caps)
    chosen = resolve_precision("auto", CPU)
    assert chosen.name == "bf16" and found in chosen.reason and chosen.warning is None


def test_auto_picks_fp32_where_the_cpu_would_emulate_bf16(cpu_reports):
    cpu_reports(NO_BF16)
    chosen = resolve_precision("auto", CPU)
    assert chosen.name == "fp32" and chosen.warning is None
    assert chosen.reason == "auto: this CPU has neither AMX nor AVX-512 BF16, so bf16 would be emulated"


def test_onednn_without_bf16_kernels_counts_as_emulated(cpu_reports):
    # ONEDNN_MAX_CPU_ISA=AVX2 on a CPU that has the instructions: oneDNN emulates bf16 anyway.
    cpu_reports({**NO_BF16, "avx512_bf16": True}, onednn=False)
    native, why = cpu_bf16()
    assert not native and "oneDNN" in why
    assert resolve_precision("auto", CPU).name == "fp32"


@pytest.mark.parametrize("forced, name", [("0", "fp32"), ("1", "bf16")])
def test_the_environment_overrides_the_capability_query(cpu_reports, monkeypatch, forced, name):
    cpu_reports({**NO_BF16, "avx512_bf16": forced == "0"})  # the opposite of what is forced
    monkeypatch.setenv(NATIVE_BF16_ENV, forced)
    chosen = resolve_precision("auto", CPU)
    assert chosen.name == name and NATIVE_BF16_ENV in chosen.reason


def test_explicit_precisions_are_kept_and_emulated_bf16_warns(cpu_reports):
    cpu_reports(NO_BF16)
    bf16 = resolve_precision("bf16", CPU)
    assert bf16.name == "bf16" and "emulated" in bf16.warning and "fp32" in bf16.warning
    assert resolve_precision("fp32", CPU).warning is None
    cpu_reports({**NO_BF16, "amx_bf16": True})
    assert resolve_precision("bf16", CPU).warning is None


@pytest.mark.parametrize("capability, name", [((8, 0), "bf16"), ((9, 0), "bf16"),
                                              ((7, 0), "fp32")])
def test_auto_on_cuda_asks_the_gpu_it_trains_on(monkeypatch, capability, name):
    asked = []

    def get_device_capability(device=None):
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", get_device_capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    monkeypatch.setattr(torch.version, "hip", None)
    cuda1 = torch.device("cuda:1")
    chosen = resolve_precision("auto", cuda1)
    assert chosen.name == name and "Test GPU" in chosen.reason
    assert asked == [cuda1]  # that GPU, not the current one


def test_an_unresolved_precision_never_reaches_training():
    with pytest.raises(ValueError, match="resolve"):
        autocast(CPU, "auto")


def test_run_says_its_precision_once_and_warns_before_any_error(capsys, cpu_reports, run_env):
    cpu_reports(NO_BF16)
    assert main(["run", "--strategy", "no-such-strategy", "--device", "cpu", "--precision",
                 "bf16", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out.count("precision: ") == 1 and "precision: bf16 (--precision bf16)" in out
    warning, error = err.strip().splitlines()
    assert warning.startswith("bench: warning: bf16 is emulated here")
    assert error.startswith("bench: error:") and "no-such-strategy" in error


@pytest.mark.parametrize("command", ["tune", "stability"])
def test_tune_and_stability_say_their_precision(capsys, cpu_reports, run_env, command):
    cpu_reports(NO_BF16)
    extra = ["--trials", "1"] if command == "tune" else ["--draws", "1"]
    assert main([command, "--strategy", "no-such-strategy", "--device", "cpu",
                 "--no-progress", *extra]) == 2
    out = capsys.readouterr().out
    assert out.count("precision: ") == 1 and "precision: fp32 (auto: this CPU has neither" in out


def test_an_unknown_precision_is_one_line_with_exit_status_2(capsys, run_env):
    assert main(["run", "--precision", "fp16", "--device", "cpu"]) == 2
    assert "unknown precision 'fp16'; use one of: auto, fp32, bf16" in capsys.readouterr().err


@pytest.mark.slow
def test_explicit_bf16_where_it_is_emulated_still_runs_and_is_recorded(tmp_path, capsys,
                                                                        cpu_reports, run_env):
    cpu_reports(NO_BF16)
    out = tmp_path / "run"
    assert main(["run", "--strategy", "scratch", "--task", "phantom-2d", "--profile", "smoke",
                 "--seeds", "1", "--device", "cpu", "--precision", "bf16", "--out", str(out),
                 "--no-progress"]) == 0
    assert "bench: warning: bf16 is emulated" in capsys.readouterr().err
    row = json.loads((out / "results.jsonl").read_text())
    assert row["status"] == "ok"
    assert (row["settings"]["precision"], row["settings"]["precision_reason"]) == (
        "bf16", "--precision bf16")
    assert json.loads((out / "run.json").read_text())["precision"] == "bf16"
