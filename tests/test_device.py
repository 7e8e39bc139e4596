"""The device path: fp32 features without TF32, evaluation in bounded chunks, an out-of-memory
error as one line, and (with a GPU only) the smoke profile end to end on CUDA."""

from __future__ import annotations

import json

import pytest
import torch

import bench.pretext
import bench.unit.lifecycle
from bench.cli import main
from bench.device import EVAL_VOXELS, by_voxels, exact_features
from bench.pretext import PretextContext, cyclegan_nets, translation_quality


@pytest.mark.parametrize("user", ["highest", "high"])
def test_features_run_in_fp32_without_tf32_and_the_flags_come_back(user):
    torch.set_float32_matmul_precision(user)  # "high": what many training scripts set
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with exact_features(torch.device("cpu")):
                assert torch.get_float32_matmul_precision() == "highest"
                assert torch.backends.cuda.matmul.fp32_precision == "ieee"
                assert torch.backends.cudnn.allow_tf32 is False
                assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32
            assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
        # Restored, and still consistent: reading the settings does not raise.
        assert torch.get_float32_matmul_precision() == user
        assert torch.backends.cudnn.allow_tf32 is True
        assert torch.backends.cuda.matmul.allow_tf32 is (user == "high")
    finally:
        torch.set_float32_matmul_precision("highest")


def test_evaluation_chunks_hold_at_most_the_voxel_budget():
    volumes = torch.zeros(5, 1, 128, 128, 128)
    assert [len(c) for c in by_voxels(volumes)] == [2, 2, 1]
    images = torch.zeros(3000, 1, 64, 64)
    assert max(c[0].numel() * len(c) for c in by_voxels(images)) <= EVAL_VOXELS
    assert sum(len(c) for c in by_voxels(images)) == 3000
    assert [len(c) for c in by_voxels(torch.zeros(2, 1, 256, 256, 256))] == [1, 1]  # never none


def test_pretext_validation_in_chunks_gives_the_unchunked_numbers(smoke_2d, monkeypatch):
    _, s, data = smoke_2d
    G = cyclegan_nets(s, torch.device("cpu"))["G_t2t1"]
    ctx = PretextContext(data, s, 0, torch.device("cpu"), "fp32", progress=False)
    whole = translation_quality(G, data.val, ctx)
    monkeypatch.setattr(bench.pretext, "by_voxels", lambda x: by_voxels(x, 3 * x[0].numel()))
    chunked = translation_quality(G, data.val, ctx)
    assert whole["eval_images"] == len(data.val.t1) > 3
    assert chunked == pytest.approx(whole, rel=1e-5)


def test_out_of_memory_is_one_line_naming_the_setting_to_lower(tmp_path, monkeypatch, capsys,
                                                              cache_dir):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\n"
                                     "(GPU 0; 79.1 GiB total capacity)")

    monkeypatch.setattr(bench.unit.lifecycle, "_run_unit", no_memory)
    code = main(["run", "--task", "phantom-2d", "--strategy", "scratch", "--seeds", "1",
                 "--profile", "smoke", "--device", "cpu", "--no-progress", "--cache",
                 str(cache_dir), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "out of memory while training phantom-2d scratch seed 0 on cpu" in err
    assert "batch_size (4)" in err and "[smoke.2d]" in err and "new --out" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_smoke_profile_end_to_end_on_cuda(tmp_path, cache_dir, capsys):
    code = main(["run", "--task", "all", "--strategy", "scratch,cyclegan-t2t1", "--seeds", "1",
                 "--profile", "smoke", "--device", "cuda", "--no-progress", "--cache",
                 str(cache_dir), "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").open()]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert all(r["hardware"]["gpu"] and r["settings"]["device"].startswith("cuda") for r in rows)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_domain_features_on_cuda_match_the_cpu(smoke_2d, cache_dir):
    """With TF32 allowed for training, the metric's features still match the CPU's fp32 ones
    (TF32 would move them by about 1e-3 relative)."""
    from bench.metrics.domain import get_domain_features
    _, s, data = smoke_2d
    features = get_domain_features(data, s, cache_dir, torch.device("cpu"), "fp32",
                                   progress=False)
    images = data.test.t1[:32]
    on_cpu = features(images)
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    try:
        on_gpu = features.to("cuda")(images)
    finally:
        torch.set_float32_matmul_precision("highest")
        features.to("cpu")
    assert torch.allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-5)
