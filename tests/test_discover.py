"""datasets.discover: paired T1/T2 NIfTI scans found per layout, skipped items and their reasons."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from datasets.discover import (
    DEFAULT_T1_PATTERN,
    DEFAULT_T2_PATTERN,
    LAYOUTS,
    Found,
    Pair,
    discover,
)
from ground.errors import BenchError


def touch(root: Path, *names: str) -> None:
    """Empty files: discovery goes by names only and never opens a scan."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def subjects(found: Found) -> list[str]:
    return [p.subject for p in found.pairs]


def rel(found: Found, pair: Pair) -> tuple[str, str]:
    return pair.t1.relative_to(found.root).as_posix(), pair.t2.relative_to(found.root).as_posix()


# --- errors shared by every layout -----------------------------------------------------------

def test_unknown_layout_lists_the_known_ones(tmp_path):
    with pytest.raises(BenchError, match="unknown dataset layout 'nifti'; known: ixi, brats, "
                                         "paired-folder, bids"):
        discover("nifti", tmp_path)


def test_missing_root(tmp_path):
    with pytest.raises(BenchError, match="dataset root not found: .*nowhere"):
        discover("ixi", tmp_path / "nowhere")


def test_root_that_is_a_file(tmp_path):
    touch(tmp_path, "scan.nii.gz")
    with pytest.raises(BenchError, match="not a folder: .*scan.nii.gz"):
        discover("paired-folder", tmp_path / "scan.nii.gz")


@pytest.mark.parametrize("source", LAYOUTS)
def test_root_without_nifti_says_what_layout_was_expected(tmp_path, source):
    touch(tmp_path, "README.txt", "sub-01/anat/sub-01_T1w.json", "IXI-T1/notes.csv")
    with pytest.raises(BenchError, match=f"no (NIfTI|slice) file .* the {source} layout expects"):
        discover(source, tmp_path)


def test_ixi_without_nifti_shows_an_ixi_example(tmp_path):
    with pytest.raises(BenchError, match=re.escape(
            "IXI-T1/IXI012-HH-1211-T1.nii.gz and IXI-T2/IXI012-HH-1211-T2.nii.gz")):
        discover("ixi", tmp_path)


@pytest.mark.parametrize("source", ["ixi", "brats", "bids"])
@pytest.mark.parametrize("option", ["t1_pattern", "t2_pattern"])
def test_patterns_only_for_paired_folder(tmp_path, source, option):
    with pytest.raises(BenchError, match=f"only apply to the paired-folder and paired-slices layouts, not '{source}'"):
        discover(source, tmp_path, **{option: "t1"})


@pytest.mark.parametrize("option, flag", [("t1_pattern", "--t1-pattern"),
                                          ("t2_pattern", "--t2-pattern")])
def test_invalid_pattern(tmp_path, option, flag):
    touch(tmp_path, "s1/t1.nii.gz", "s1/t2.nii.gz")
    with pytest.raises(BenchError, match=f"invalid {flag} '\\(t1'"):
        discover("paired-folder", tmp_path, **{option: "(t1"})


def test_no_complete_pair_says_how_many_were_skipped_and_why(tmp_path):
    touch(tmp_path, "IXI-T1/IXI012-HH-1211-T1.nii.gz", "IXI-T1/IXI013-HH-1212-T1.nii.gz")
    with pytest.raises(BenchError, match=re.escape(
            "2 item(s) skipped; first: IXI012-HH-1211: only T1 (no IXI-T2/IXI012-HH-1211-T2")):
        discover("ixi", tmp_path)


def test_no_pair_when_no_file_fits_the_layout(tmp_path):
    touch(tmp_path, "scans/brain.nii.gz")
    with pytest.raises(BenchError, match="no complete T1/T2 pair .*no NIfTI file fits the layout, "
                                         "which expects sub-01/"):
        discover("bids", tmp_path)


def test_root_given_as_str_and_made_absolute(tmp_path, monkeypatch):
    touch(tmp_path, "data/s1/t1.nii", "data/s1/t2.nii")
    monkeypatch.chdir(tmp_path)
    found = discover("paired-folder", "data")
    assert found.root == tmp_path / "data"
    assert found.pairs == [Pair("s1", tmp_path / "data/s1/t1.nii", tmp_path / "data/s1/t2.nii")]


# --- ixi -------------------------------------------------------------------------------------

def test_ixi_pairs_and_incomplete_subjects(tmp_path):
    touch(tmp_path,
          "IXI-T1/IXI002-Guys-0828-T1.nii.gz", "IXI-T2/IXI002-Guys-0828-T2.nii.gz",
          # Extensions in any case, and .nii as well as .nii.gz.
          "IXI-T1/IXI013-HH-1212-T1.NII.GZ", "IXI-T2/IXI013-HH-1212-T2.nii",
          "IXI-T1/IXI012-HH-1211-T1.nii.gz",
          "IXI-T2/IXI014-IOP-0001-T2.nii.gz",
          # Other modalities and non-NIfTI files are not candidates.
          "IXI-PD/IXI015-HH-1258-PD.nii.gz", "IXI-MRA/IXI002-Guys-0828-MRA.nii.gz",
          "IXI-DTI/IXI002-Guys-0828-DTI-00.nii.gz", "IXI.xls", "IXI-T1/IXI016-HH-1.txt",
          # macOS resource forks beside the real files.
          "IXI-T1/._IXI002-Guys-0828-T1.nii.gz")
    found = discover("ixi", tmp_path)
    assert found.source == "ixi"
    assert subjects(found) == ["IXI002-Guys-0828", "IXI013-HH-1212"]
    assert rel(found, found.pairs[0]) == ("IXI-T1/IXI002-Guys-0828-T1.nii.gz",
                                          "IXI-T2/IXI002-Guys-0828-T2.nii.gz")
    assert found.skipped == [
        ("IXI012-HH-1211", "only T1 (no IXI-T2/IXI012-HH-1211-T2.nii.gz)"),
        ("IXI014-IOP-0001", "only T2 (no IXI-T1/IXI014-IOP-0001-T1.nii.gz)"),
    ]


def test_ixi_flat_folder_and_real_nifti(tmp_path):
    # Generated volumes, to show real files are found like empty ones (and never read).
    for contrast in ("T1", "T2"):
        image = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
        nib.save(image, tmp_path / f"IXI002-Guys-0828-{contrast}.nii.gz")
    found = discover("ixi", tmp_path)
    assert subjects(found) == ["IXI002-Guys-0828"]
    assert nib.load(found.pairs[0].t1).shape == (4, 4, 4)


def test_ixi_duplicate_names_both_files(tmp_path):
    touch(tmp_path, "IXI-T1/IXI002-Guys-0828-T1.nii.gz", "IXI-T2/IXI002-Guys-0828-T2.nii.gz",
          "copy/IXI002-Guys-0828-T1.nii")
    with pytest.raises(BenchError, match="two files claim T1 of subject 'IXI002-Guys-0828'.*"
                                         "IXI-T1/IXI002-Guys-0828-T1.nii.gz and "
                                         "copy/IXI002-Guys-0828-T1.nii"):
        discover("ixi", tmp_path)


# --- brats -----------------------------------------------------------------------------------

def test_brats_2021_naming_uses_t1_not_t1ce(tmp_path):
    case = "BraTS2021_00000"
    touch(tmp_path, *(f"{case}/{case}_{m}.nii.gz" for m in ("t1", "t1ce", "t2", "flair", "seg")))
    found = discover("brats", tmp_path)
    assert subjects(found) == [case]
    assert rel(found, found.pairs[0]) == (f"{case}/{case}_t1.nii.gz", f"{case}/{case}_t2.nii.gz")
    assert found.skipped == []


def test_brats_2023_naming_uses_t1n_and_t2w(tmp_path):
    case = "BraTS-GLI-00000-000"
    touch(tmp_path, *(f"{case}/{case}-{m}.nii.gz" for m in ("t1n", "t1c", "t2w", "t2f", "seg")))
    found = discover("brats", tmp_path)
    assert subjects(found) == [case]
    assert rel(found, found.pairs[0]) == (f"{case}/{case}-t1n.nii.gz", f"{case}/{case}-t2w.nii.gz")


def test_brats_2023_keeps_one_timepoint_per_patient(tmp_path):
    for case in ("BraTS-GLI-00005-000", "BraTS-GLI-00005-001", "BraTS-GLI-00006-000"):
        touch(tmp_path, *(f"{case}/{case}-{m}.nii.gz" for m in ("t1n", "t2w")))
    found = discover("brats", tmp_path)
    assert subjects(found) == ["BraTS-GLI-00005-000", "BraTS-GLI-00006-000"]
    assert found.skipped == [("BraTS-GLI-00005-001", "another timepoint of BraTS-GLI-00005-000 "
                                                     "(one per patient keeps splits subject-level)")]


def test_brats_incomplete_cases_are_skipped_in_their_own_naming(tmp_path):
    touch(tmp_path,
          "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz",
          "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2w.nii.gz",
          "BraTS-GLI-00002-000/BraTS-GLI-00002-000-t1n.nii.gz",
          "BraTS-GLI-00002-000/BraTS-GLI-00002-000-t1c.nii.gz",
          "BraTS20_Training_001/BraTS20_Training_001_t2.nii.gz",
          "BraTS20_Training_002/BraTS20_Training_002_t1ce.nii.gz",
          "BraTS20_Training_002/BraTS20_Training_002_flair.nii.gz")
    found = discover("brats", tmp_path)
    assert subjects(found) == ["BraTS-GLI-00000-000"]
    assert found.skipped == [
        ("BraTS-GLI-00002-000", "only T1 (no BraTS-GLI-00002-000-t2w.nii.gz)"),
        ("BraTS20_Training_001", "only T2 (no BraTS20_Training_001_t1.nii.gz)"),
        ("BraTS20_Training_002", "no T1 or T2 file (only flair, t1ce)"),
    ]


def test_brats_duplicate_case(tmp_path):
    touch(tmp_path, "train/C1/C1_t1.nii.gz", "train/C1/C1_t2.nii.gz", "backup/C1/C1_t2.nii.gz")
    with pytest.raises(BenchError, match="two files claim T2 of subject 'C1'.*backup/C1/C1_t2"
                                         ".nii.gz and train/C1/C1_t2.nii.gz"):
        discover("brats", tmp_path)


# --- paired-folder ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["t1.nii.gz", "sub_T1w.nii.gz", "case-t1n.nii.gz",
                                  "IXI002-Guys-0828-T1.nii.gz", "T1_mprage.nii", "s1.T1.nii"])
def test_default_t1_pattern_matches(name):
    assert re.search(DEFAULT_T1_PATTERN, name, re.IGNORECASE)


@pytest.mark.parametrize("name", ["t1ce.nii.gz", "t1c.nii.gz", "T1Gd.nii.gz", "t1_ce.nii",
                                  "flair.nii.gz", "t1_flair.nii.gz", "T12.nii.gz", "part1.nii",
                                  "IXI012-HH-1211-T2.nii.gz", "t2.nii.gz"])
def test_default_t1_pattern_rejects(name):
    assert not re.search(DEFAULT_T1_PATTERN, name, re.IGNORECASE)


@pytest.mark.parametrize("name", ["t2.nii.gz", "sub_T2w.nii.gz", "case-t2w.nii.gz",
                                  "IXI012-HH-1211-T2.nii.gz", "t2_fse.nii"])
def test_default_t2_pattern_matches(name):
    assert re.search(DEFAULT_T2_PATTERN, name, re.IGNORECASE)


@pytest.mark.parametrize("name", ["t2f.nii.gz", "t2_flair.nii.gz", "flair.nii.gz", "T2star.nii",
                                  "T21.nii", "t1.nii.gz", "IXI002-Guys-0828-T1.nii.gz"])
def test_default_t2_pattern_rejects(name):
    assert not re.search(DEFAULT_T2_PATTERN, name, re.IGNORECASE)


def test_paired_folder_default_patterns(tmp_path):
    touch(tmp_path,
          "a/t1.nii.gz", "a/t2.nii.gz", "a/t1ce.nii.gz", "a/flair.nii.gz", "a/notes.txt",
          "b/sub_T1w.nii.gz", "b/sub_T2w.nii.gz",
          "c/case-t1n.nii.gz", "c/case-t1c.nii.gz", "c/case-t2w.nii.gz", "c/case-t2f.nii.gz",
          "d/IXI002-Guys-0828-T1.nii.gz", "d/IXI002-Guys-0828-T2.nii.gz",
          "e/anat/T1.nii", "e/anat/T2.nii",  # deeper inside the subject folder is fine
          "f/README.md")  # no NIfTI: not a subject at all
    found = discover("paired-folder", tmp_path)
    assert subjects(found) == ["a", "b", "c", "d", "e"]
    assert rel(found, found.pairs[2]) == ("c/case-t1n.nii.gz", "c/case-t2w.nii.gz")
    assert rel(found, found.pairs[4]) == ("e/anat/T1.nii", "e/anat/T2.nii")
    assert found.skipped == []


def test_paired_folder_skips_with_reasons(tmp_path):
    touch(tmp_path,
          "ok/t1.nii.gz", "ok/t2.nii.gz",
          "no-t2/t1.nii.gz", "no-t2/flair.nii.gz",
          "two-t1/t1.nii.gz", "two-t1/t1_brain.nii.gz", "two-t1/t2.nii.gz",
          "loose.nii.gz")
    found = discover("paired-folder", tmp_path)
    assert subjects(found) == ["ok"]
    reasons = dict(found.skipped)
    assert list(reasons) == sorted(reasons) == ["loose.nii.gz", "no-t2", "two-t1"]
    assert reasons["loose.nii.gz"].startswith("not in a subject folder")
    assert reasons["no-t2"] == (f"no T2 file matches {DEFAULT_T2_PATTERN} "
                                f"(files: flair.nii.gz, t1.nii.gz)")
    assert reasons["two-t1"] == "2 files match T1: t1.nii.gz, t1_brain.nii.gz; narrow --t1-pattern"


def test_paired_folder_custom_patterns(tmp_path):
    touch(tmp_path, "s1/mprage.nii.gz", "s1/tse.nii.gz", "s2/MPRAGE_1.nii", "s2/space.nii")
    found = discover("paired-folder", tmp_path, t1_pattern="mprage", t2_pattern="tse")
    assert subjects(found) == ["s1"]
    assert found.skipped == [("s2", "no T2 file matches tse (files: MPRAGE_1.nii, space.nii)")]


def test_paired_folder_one_file_for_both_contrasts(tmp_path):
    touch(tmp_path, "s1/t1.nii.gz", "s1/t2.nii.gz", "s2/scan.nii.gz")
    found = discover("paired-folder", tmp_path, t1_pattern="t1|scan", t2_pattern="t2|scan")
    assert subjects(found) == ["s1"]
    assert found.skipped == [("s2", "the same file matches T1 and T2: scan.nii.gz; "
                                    "narrow --t1-pattern or --t2-pattern")]


def test_paired_folder_follows_linked_subjects_and_reports_broken_links(tmp_path):
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "root"
    touch(elsewhere, "s1/t1.nii.gz", "s1/t2.nii.gz")
    touch(root, "s2/t1.nii.gz")
    root.joinpath("s1").symlink_to(elsewhere / "s1", target_is_directory=True)
    root.joinpath("s2/t2.nii.gz").symlink_to(tmp_path / "annex/missing")
    found = discover("paired-folder", root)
    assert subjects(found) == ["s1"]
    assert found.pairs[0].t1 == root / "s1/t1.nii.gz"
    reasons = dict(found.skipped)
    assert reasons["s2/t2.nii.gz"].startswith("broken link")
    assert reasons["s2"].startswith("no T2 file matches")


# --- bids ------------------------------------------------------------------------------------

def test_bids_simple_and_with_acquisition(tmp_path):
    touch(tmp_path,
          "dataset_description.json", "participants.tsv",
          "sub-01/anat/sub-01_T1w.nii.gz", "sub-01/anat/sub-01_T2w.nii.gz",
          "sub-01/anat/sub-01_T1w.json", "sub-01/anat/sub-01_FLAIR.nii.gz",
          "sub-01/func/sub-01_task-rest_bold.nii.gz",
          "sub-02/anat/sub-02_acq-mprage_T1w.nii", "sub-02/anat/sub-02_acq-tse_T2w.nii",
          # Processed copies are not the raw scans.
          "derivatives/tool/sub-01/anat/sub-01_T1w.nii.gz",
          "derivatives/tool/sub-03/anat/sub-03_T2w.nii.gz")
    found = discover("bids", tmp_path)
    assert subjects(found) == ["sub-01", "sub-02"]
    assert rel(found, found.pairs[1]) == ("sub-02/anat/sub-02_acq-mprage_T1w.nii",
                                          "sub-02/anat/sub-02_acq-tse_T2w.nii")
    assert found.skipped == []


def test_bids_one_session_per_subject(tmp_path):
    touch(tmp_path,
          "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz",  # incomplete: not used
          "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz", "sub-01/ses-2/anat/sub-01_ses-2_T2w.nii.gz",
          "sub-01/ses-10/anat/sub-01_ses-10_T1w.nii.gz",
          "sub-01/ses-10/anat/sub-01_ses-10_T2w.nii.gz",
          "sub-02/ses-a/anat/sub-02_ses-a_T2w.nii.gz")
    found = discover("bids", tmp_path)
    assert subjects(found) == ["sub-01"]
    # ses-2 comes before ses-10: numbers sort as numbers.
    assert rel(found, found.pairs[0]) == ("sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz",
                                          "sub-01/ses-2/anat/sub-01_ses-2_T2w.nii.gz")
    assert found.skipped == [
        ("sub-01/ses-1", "only T1w (no sub-01/ses-1/anat/*_T2w.nii.gz)"),
        ("sub-01/ses-10", "sub-01 already uses sub-01/ses-2/anat; one session per subject keeps "
                          "splits subject-level"),
        ("sub-02/ses-a", "only T2w (no sub-02/ses-a/anat/*_T1w.nii.gz)"),
    ]


def test_bids_first_run_is_used(tmp_path):
    touch(tmp_path,
          "sub-01/anat/sub-01_run-1_T1w.nii.gz", "sub-01/anat/sub-01_run-2_T1w.nii.gz",
          "sub-01/anat/sub-01_run-10_T2w.nii.gz", "sub-01/anat/sub-01_run-2_T2w.nii.gz")
    found = discover("bids", tmp_path)
    assert rel(found, found.pairs[0]) == ("sub-01/anat/sub-01_run-1_T1w.nii.gz",
                                          "sub-01/anat/sub-01_run-2_T2w.nii.gz")
    assert found.skipped == [
        ("sub-01/anat/sub-01_run-10_T2w.nii.gz",
         "sub-01 already uses sub-01_run-2_T2w.nii.gz; one scan per contrast and subject"),
        ("sub-01/anat/sub-01_run-2_T1w.nii.gz",
         "sub-01 already uses sub-01_run-1_T1w.nii.gz; one scan per contrast and subject"),
    ]


def test_bids_misplaced_files_are_skipped(tmp_path):
    touch(tmp_path,
          "sub-01/anat/sub-01_T1w.nii.gz", "sub-01/anat/sub-01_T2w.nii.gz",
          "sub-02/sub-02_T1w.nii.gz",  # no anat/ folder
          "sub-03/anat/sub-04_T1w.nii.gz")  # name disagrees with its folder
    found = discover("bids", tmp_path)
    assert subjects(found) == ["sub-01"]
    assert found.skipped == [
        ("sub-02/sub-02_T1w.nii.gz", "not in sub-<label>/[ses-<label>/]anat/"),
        ("sub-03/anat/sub-04_T1w.nii.gz", "name does not start with sub-03_ like its folder"),
    ]


def test_bids_duplicate_extension(tmp_path):
    touch(tmp_path, "sub-01/anat/sub-01_T1w.nii", "sub-01/anat/sub-01_T1w.nii.gz",
          "sub-01/anat/sub-01_T2w.nii.gz")
    with pytest.raises(BenchError, match="two files claim T1w of subject 'sub-01'.*"
                                         "sub-01_T1w.nii and .*sub-01_T1w.nii.gz"):
        discover("bids", tmp_path)


# --- real scans (BENCH_REAL_DATA) ------------------------------------------------------------

def real_data(layout: str) -> Path:
    base = os.environ.get("BENCH_REAL_DATA")
    if not base:
        pytest.skip("BENCH_REAL_DATA is not set")
    folder = Path(base).expanduser() / layout
    if not folder.is_dir():
        pytest.skip(f"no real {layout} data at {folder}")
    return folder


def test_real_brats():
    found = discover("brats", real_data("brats"))
    assert subjects(found) == ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000"]
    assert found.pairs[0].t1.name == "BraTS-GLI-00000-000-t1n.nii.gz"
    assert found.pairs[0].t2.name == "BraTS-GLI-00000-000-t2w.nii.gz"
    assert all(p.t1.is_file() and p.t2.is_file() for p in found.pairs)


def test_real_ixi():
    found = discover("ixi", real_data("ixi"))
    assert subjects(found) == ["IXI002-Guys-0828"]
    assert found.pairs[0].t1.name == "IXI002-Guys-0828-T1.nii.gz"
    assert found.pairs[0].t2.name == "IXI002-Guys-0828-T2.nii.gz"
