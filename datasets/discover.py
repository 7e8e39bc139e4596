"""Find paired T1/T2 NIfTI scans (or, for `paired-slices`, 2D slices) of a brain MR dataset.

    found = discover("ixi", "/data/IXI")
    found.pairs    # [Pair(subject="IXI002-Guys-0828", t1=..., t2=...), ...], sorted by subject
    found.skipped  # [("IXI012-HH-1211", "only T1 (no IXI-T2/IXI012-HH-1211-T2.nii.gz)"), ...]

Each layout turns the NIfTI files under a root into complete pairs plus the items it left out,
each with a reason: a subject that silently goes missing shrinks the splits without anyone
noticing, so nothing a user would expect to be used is dropped without a word. Discovery only
looks at names; it never opens a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ground.errors import BenchError

LAYOUTS: tuple[str, ...] = ("ixi", "brats", "paired-folder", "bids", "paired-slices")
# Layouts of 2D slices: usable by 2D tasks only.
SLICE_LAYOUTS: tuple[str, ...] = ("paired-slices",)
SLICE_SUFFIXES = (".png", ".npy", ".nii.gz", ".nii")

# One example per layout, for the messages that tell a user what the root should look like.
_EXPECTED = {
    "ixi": "IXI-T1/IXI012-HH-1211-T1.nii.gz and IXI-T2/IXI012-HH-1211-T2.nii.gz",
    "brats": "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz and -t2w.nii.gz "
             "(BraTS 2023) or BraTS2021_00000/BraTS2021_00000_t1.nii.gz and _t2.nii.gz "
             "(BraTS 2020/2021)",
    "paired-folder": "<subject>/t1.nii.gz and <subject>/t2.nii.gz, one folder per subject",
    "bids": "sub-01/[ses-1/]anat/sub-01_T1w.nii.gz and sub-01_T2w.nii.gz",
    "paired-slices": "<subject>/t1.png and <subject>/t2.png, or several slices such as "
                     "<subject>/z050_t1.npy and z050_t2.npy (PNG, .npy or 2D NIfTI)",
}

# How each layout lays out a dataset, for `bench list sources`.
DESCRIPTIONS = {
    "ixi": "3D NIfTI, IXI release names: " + _EXPECTED["ixi"],
    "brats": "3D NIfTI, BraTS names: " + _EXPECTED["brats"],
    "paired-folder": "3D NIfTI, a folder per subject, T1/T2 matched by name: "
                     + _EXPECTED["paired-folder"],
    "bids": "3D NIfTI, BIDS raw data: " + _EXPECTED["bids"],
    "paired-slices": "2D slices (2D tasks only), a folder per subject, T1/T2 matched by name "
                     "and paired by the rest of it: " + _EXPECTED["paired-slices"],
}

# Default paired-folder patterns. A contrast name must start a token and not run on into a
# digit, so that 'part1', 'IXI012' or 'T12' never pass for T1. Contrast-enhanced T1 (t1c, t1ce,
# t1gd, t1post), FLAIR of either weighting, T2-FLAIR (t2f) and T2* are different images, so they
# never match.
DEFAULT_T1_PATTERN = r"^(?!.*flair).*(?<![a-z0-9])t1(?![0-9]|[-_]?(?:ce?|gd|post)(?![a-z]))"
DEFAULT_T2_PATTERN = r"^(?!.*flair).*(?<![a-z0-9])t2(?![0-9]|f(?![a-z])|[-_]?star|\*)"

# IXI release names: <id>-T1.nii.gz in IXI-T1/, <id>-T2.nii.gz in IXI-T2/. PD, MRA and DTI
# files do not fit and are simply not candidates.
_IXI_NAME = re.compile(r"(IXI\d+-\w+-\d+)-(T1|T2)")

# Every BraTS modality, so that a case holding none of T1/T2 is still seen as a case.
# 2020/2021: <case>_t1, _t1ce, _t2, _flair, _seg; 2023: <case>-t1n, -t1c, -t2w, -t2f, -seg.
_BRATS_NAME = re.compile(r"(.+?)(_(?:t1|t1ce|t2|flair|seg)|-(?:t1n|t1c|t2w|t2f|seg))",
                         re.IGNORECASE)
_BRATS_TIMEPOINT = re.compile(r"^(BraTS-[A-Za-z]+-\d+)-\d{3}$")
_BRATS_CONTRAST = {"_t1": "T1", "_t2": "T2", "-t1n": "T1", "-t2w": "T2"}
_BRATS_SUFFIX = {("_", "T1"): "_t1", ("_", "T2"): "_t2", ("-", "T1"): "-t1n", ("-", "T2"): "-t2w"}

# Top-level BIDS folders that hold processed or unconverted data, never the raw scans.
_BIDS_NOT_RAW = {"derivatives", "sourcedata"}

_Skipped = list[tuple[str, str]]


@dataclass(frozen=True)
class Pair:
    subject: str  # subject id, unique within a Found
    t1: Path
    t2: Path
    # 2D slice layouts: every (T1, T2) slice pair of the subject; t1 and t2 are the first's.
    slices: tuple[tuple[Path, Path], ...] = ()

    def files(self) -> list[Path]:
        return [p for pair in (self.slices or ((self.t1, self.t2),)) for p in pair]


@dataclass
class Found:
    source: str
    root: Path
    pairs: list[Pair]  # sorted by subject id
    skipped: list[tuple[str, str]]  # (subject id or path relative to root, reason), sorted


def discover(source: str, root: Path | str, t1_pattern: str | None = None,
             t2_pattern: str | None = None) -> Found:
    """The complete T1/T2 pairs under `root` in layout `source`, and what was skipped and why.

    Raises BenchError when nothing usable is found, so a run never starts on an empty dataset.
    """
    if source not in LAYOUTS:
        raise BenchError(f"unknown dataset layout '{source}'; known: {', '.join(LAYOUTS)}")
    if source not in ("paired-folder", *SLICE_LAYOUTS) and (t1_pattern is not None or t2_pattern is not None):
        raise BenchError(f"--t1-pattern/--t2-pattern only apply to the paired-folder and "
                         f"paired-slices layouts, not '{source}'; drop them")
    t1_re = _compile(t1_pattern, DEFAULT_T1_PATTERN, "--t1-pattern")
    t2_re = _compile(t2_pattern, DEFAULT_T2_PATTERN, "--t2-pattern")
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise BenchError(f"dataset root not found: {root}; give the folder that holds the "
                         f"{source} scans")
    if not root.is_dir():
        raise BenchError(f"dataset root is not a folder: {root}; give the folder that holds the "
                         f"{source} scans")

    suffixes = SLICE_SUFFIXES if source in SLICE_LAYOUTS else (".nii.gz", ".nii")
    files, skipped = _image_files(root, suffixes)
    if not files and not skipped:
        kind = ("slice file (.png, .npy, .nii.gz or .nii)" if source in SLICE_LAYOUTS
                else "NIfTI file (.nii or .nii.gz)")
        raise BenchError(f"no {kind} under {root}; the {source} layout expects "
                         f"{_EXPECTED[source]}")
    if source == "paired-folder":
        pairs, layout_skipped = _paired_folder(root, files, t1_re, t2_re)
    elif source == "paired-slices":
        pairs, layout_skipped = _paired_slices(root, files, t1_re, t2_re)
    else:
        pairs, layout_skipped = _LAYOUT_FINDERS[source](root, files)
    skipped = sorted(skipped + layout_skipped)
    if not pairs:
        if skipped:
            item, reason = skipped[0]
            why = f"{len(skipped)} item(s) skipped; first: {item}: {reason}"
        else:
            why = f"no NIfTI file fits the layout, which expects {_EXPECTED[source]}"
        raise BenchError(f"no complete T1/T2 pair under {root} for layout '{source}' ({why})")
    return Found(source, root, sorted(pairs, key=lambda p: p.subject), skipped)


def _compile(pattern: str | None, default: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(default if pattern is None else pattern, re.IGNORECASE)
    except re.error as e:
        raise BenchError(f"invalid {option} {pattern!r} ({e}); give a Python regular expression, "
                         f"searched case-insensitively in each file name") from None


def _nifti_stem(name: str, suffixes: tuple[str, ...] = (".nii.gz", ".nii")) -> str | None:
    """The name without its extension (one of `suffixes`), or None for any other file."""
    lower = name.lower()
    for ext in suffixes:
        if lower.endswith(ext):
            return name[:-len(ext)]
    return None


def _image_files(root: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], _Skipped]:
    """Every file below `root` ending in one of `suffixes` (relative, sorted), and the broken
    links among them."""
    files: list[Path] = []
    broken: _Skipped = []
    seen: set[str] = set()
    # Linked folders are followed because datasets are often assembled from links; each real
    # folder is read once, which also stops link cycles.
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        # Hidden entries are tool clutter (macOS '._x.nii.gz' forks, .git, .datalad), not scans.
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in names:
            if name.startswith(".") or _nifti_stem(name, suffixes) is None:
                continue
            path = Path(folder) / name
            rel = path.relative_to(root)
            if path.is_file():
                files.append(rel)
            else:
                # DataLad/git-annex datasets hold such links until their content is fetched.
                broken.append((rel.as_posix(), "broken link: the file's content is missing "
                                               "(for a DataLad dataset, run `datalad get`)"))
    return sorted(files), broken


def _claim(table: dict[str, dict[str, Path]], root: Path, subject: str, contrast: str,
           rel: Path) -> None:
    """Record `rel` as `subject`'s `contrast`; a second file for the same slot is an error
    because picking either one silently could pair scans from different copies."""
    slot = table.setdefault(subject, {})
    if contrast in slot:
        raise BenchError(f"two files claim {contrast} of subject '{subject}' under {root}: "
                         f"{slot[contrast].as_posix()} and {rel.as_posix()}; keep only one")
    slot[contrast] = rel


def _complete(root: Path, table: dict[str, dict[str, Path]],
              missing: Callable[[str, str, Path], str]) -> tuple[list[Pair], _Skipped]:
    """Pairs for subjects holding both T1 and T2; `missing(subject, have, rel)` explains the
    others, where `have` is the one contrast present and `rel` its file."""
    pairs: list[Pair] = []
    skipped: _Skipped = []
    for subject, slot in table.items():
        if "T1" in slot and "T2" in slot:
            pairs.append(Pair(subject, root / slot["T1"], root / slot["T2"]))
        else:
            (have, rel), = slot.items()
            skipped.append((subject, missing(subject, have, rel)))
    return pairs, skipped


def _other(contrast: str) -> str:
    return "T2" if contrast == "T1" else "T1"


def _ixi(root: Path, files: list[Path]) -> tuple[list[Pair], _Skipped]:
    table: dict[str, dict[str, Path]] = {}
    for rel in files:
        m = _IXI_NAME.fullmatch(_nifti_stem(rel.name) or "")
        if m:
            _claim(table, root, m[1], m[2], rel)

    def missing(subject: str, have: str, rel: Path) -> str:
        lack = _other(have)
        return f"only {have} (no IXI-{lack}/{subject}-{lack}.nii.gz)"

    return _complete(root, table, missing)


def _brats(root: Path, files: list[Path]) -> tuple[list[Pair], _Skipped]:
    table: dict[str, dict[str, Path]] = {}
    others: dict[str, list[str]] = {}  # case -> modalities that are neither T1 nor T2
    for rel in files:
        m = _BRATS_NAME.fullmatch(_nifti_stem(rel.name) or "")
        if not m:
            continue
        case, suffix = m[1], m[2].lower()
        if suffix in _BRATS_CONTRAST:
            _claim(table, root, case, _BRATS_CONTRAST[suffix], rel)
        else:
            others.setdefault(case, []).append(suffix[1:])

    def missing(case: str, have: str, rel: Path) -> str:
        # Name the missing file in the naming scheme (2020/2021 or 2023) of the one present.
        separator = _nifti_stem(rel.name)[len(case)]  # type: ignore[index]
        return f"only {have} (no {case}{_BRATS_SUFFIX[separator, _other(have)]}.nii.gz)"

    pairs, skipped = _complete(root, table, missing)
    for case in sorted(set(others) - set(table)):
        skipped.append((case, f"no T1 or T2 file (only {', '.join(sorted(others[case]))})"))
    # BraTS 2023 names cases PATIENT-TIMEPOINT (BraTS-GLI-00000-000): one timepoint per patient,
    # or one person's scans could sit in two splits.
    kept: dict[str, Pair] = {}
    for pair in pairs:
        patient = _BRATS_TIMEPOINT.sub(r"\1", pair.subject)
        if patient in kept:
            skipped.append((pair.subject, f"another timepoint of {kept[patient].subject} (one "
                                          "per patient keeps splits subject-level)"))
        else:
            kept[patient] = pair
    return list(kept.values()), skipped


def _by_subject(files: list[Path]) -> tuple[dict[str, list[Path]], _Skipped]:
    """Files per subject folder (ROOT/<subject>/...), and those outside any."""
    skipped: _Skipped = []
    by_subject: dict[str, list[Path]] = {}
    for rel in files:
        if len(rel.parts) == 1:
            skipped.append((rel.as_posix(), "not in a subject folder "
                                            "(expected ROOT/<subject>/<file>)"))
        else:
            # Files further down a subject's folder still belong to it; an ambiguous extra
            # match is reported rather than ignored.
            by_subject.setdefault(rel.parts[0], []).append(rel)
    return by_subject, skipped


def _paired_folder(root: Path, files: list[Path], t1_re: re.Pattern[str],
                   t2_re: re.Pattern[str]) -> tuple[list[Pair], _Skipped]:
    by_subject, skipped = _by_subject(files)
    pairs: list[Pair] = []
    for subject, rels in by_subject.items():
        chosen: dict[str, Path] = {}
        problems: list[str] = []
        for contrast, pattern, option in (("T1", t1_re, "--t1-pattern"),
                                          ("T2", t2_re, "--t2-pattern")):
            matches = [r for r in rels if pattern.search(r.name)]
            if not matches:
                problems.append(f"no {contrast} file matches {pattern.pattern} "
                                f"(files: {_listing(rels, subject)})")
            elif len(matches) > 1:
                problems.append(f"{len(matches)} files match {contrast}: "
                                f"{_listing(matches, subject)}; narrow {option}")
            else:
                chosen[contrast] = matches[0]
        if not problems and chosen["T1"] == chosen["T2"]:
            problems.append(f"the same file matches T1 and T2: {chosen['T1'].name}; "
                            f"narrow --t1-pattern or --t2-pattern")
        if problems:
            skipped.append((subject, "; ".join(problems)))
        else:
            pairs.append(Pair(subject, root / chosen["T1"], root / chosen["T2"]))
    return pairs, skipped


# The contrast inside a slice's name under the default patterns; what is left of the name pairs
# a T1 slice with its T2 slice ("z050_t1.png" and "z050_t2.png": "z050_.png").
_CONTRAST_TOKEN = re.compile(r"(?<![a-z0-9])t[12](?![0-9])", re.IGNORECASE)


def _slice_key(rel: Path, subject: str, match: re.Match[str], default: bool) -> str:
    """The slice's path within its subject with the contrast and the extension taken out,
    lower-cased."""
    name = rel.name
    if default:
        *_, token = _CONTRAST_TOKEN.finditer(name, 0, match.end())
        start, end = token.span()
    else:
        start, end = match.span()
    stem = _nifti_stem(name, SLICE_SUFFIXES) or name  # t1.png and t1.npy are one slice
    inside = rel.parent.relative_to(subject).as_posix()
    return f"{inside}/{stem[:start]}{stem[end:]}".lower()


def _paired_slices(root: Path, files: list[Path], t1_re: re.Pattern[str],
                   t2_re: re.Pattern[str]) -> tuple[list[Pair], _Skipped]:
    """Per subject, every T1 slice paired with the T2 slice whose name differs only in the
    contrast; a subject holding one T1 and one T2 file pairs them whatever their names."""
    by_subject, skipped = _by_subject(files)
    pairs: list[Pair] = []
    defaults = {"T1": t1_re.pattern == DEFAULT_T1_PATTERN, "T2": t2_re.pattern == DEFAULT_T2_PATTERN}
    for subject, rels in by_subject.items():
        found: dict[str, dict[str, Path]] = {"T1": {}, "T2": {}}
        for rel in rels:
            hits = [(c, m) for c, pattern in (("T1", t1_re), ("T2", t2_re))
                    if (m := pattern.search(rel.name))]
            if len(hits) == 2:
                skipped.append((rel.as_posix(), "matches both T1 and T2; narrow --t1-pattern "
                                                "or --t2-pattern"))
            if len(hits) != 1:
                continue  # FLAIR, T1ce, a mask: not a candidate
            contrast, match = hits[0]
            key = _slice_key(rel, subject, match, defaults[contrast])
            earlier = found[contrast].setdefault(key, rel)
            if earlier != rel:
                raise BenchError(f"two files claim the {contrast} slice '{key}' of subject "
                                 f"'{subject}' under {root}: {earlier.as_posix()} and "
                                 f"{rel.as_posix()}; keep only one")
        t1s, t2s = found["T1"], found["T2"]
        if len(t1s) == 1 and len(t2s) == 1:
            keys = {next(iter(t1s)): next(iter(t2s))}
        else:
            keys = {k: k for k in t1s if k in t2s}
        matched = [(root / t1s[a], root / t2s[b]) for a, b in sorted(keys.items())]
        for contrast, mine, used in (("T1", t1s, set(keys)), ("T2", t2s, set(keys.values()))):
            lack = _other(contrast)
            for key in sorted(set(mine) - used):
                skipped.append((mine[key].as_posix(), f"no {lack} slice named like it apart "
                                                      f"from the contrast"))
        if matched:
            pairs.append(Pair(subject, *matched[0], slices=tuple(matched)))
        elif not t1s and not t2s:
            skipped.append((subject, f"no T1 or T2 slice (files: {_listing(rels, subject)})"))
    return pairs, skipped


def _listing(rels: list[Path], subject: str) -> str:
    return ", ".join(r.relative_to(subject).as_posix() for r in rels)


def _natural(text: str) -> list[int | str]:
    """Sort key that puts run-2 before run-10 and ses-2 before ses-10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _bids(root: Path, files: list[Path]) -> tuple[list[Pair], _Skipped]:
    skipped: _Skipped = []
    # subject -> session folder ("" when there are none) -> "T1w"/"T2w" -> files
    table: dict[str, dict[str, dict[str, list[Path]]]] = {}
    stems: dict[tuple[Path, str], Path] = {}
    for rel in files:
        stem = _nifti_stem(rel.name) or ""
        contrast = stem.rsplit("_", 1)[-1]
        # Other suffixes (FLAIR, PD, dwi, bold, ...) are not candidates.
        if contrast not in ("T1w", "T2w") or rel.parts[0] in _BIDS_NOT_RAW:
            continue
        folders = rel.parts[:-1]
        in_session = len(folders) == 3 and folders[1].startswith("ses-")
        if not (len(folders) in (2, 3) and folders[0].startswith("sub-") and folders[-1] == "anat"
                and (len(folders) == 2 or in_session)):
            skipped.append((rel.as_posix(), "not in sub-<label>/[ses-<label>/]anat/"))
            continue
        subject, session = folders[0], folders[1] if in_session else ""
        # BIDS repeats the folders' entities in the name; a mismatch means a misplaced file.
        expected = f"{subject}_{session}_" if session else f"{subject}_"
        if not stem.startswith(expected):
            skipped.append((rel.as_posix(), f"name does not start with {expected} like its "
                                            f"folder"))
            continue
        earlier = stems.setdefault((rel.parent, stem), rel)
        if earlier != rel:
            raise BenchError(f"two files claim {contrast} of subject '{subject}' under {root}: "
                             f"{earlier.as_posix()} and {rel.as_posix()}; keep only one")
        table.setdefault(subject, {}).setdefault(session, {}).setdefault(contrast, []).append(rel)

    pairs: list[Pair] = []
    for subject, sessions in table.items():
        used: Path | None = None  # anat folder of the session this subject's pair comes from
        for session in sorted(sessions, key=_natural):
            found = sessions[session]
            label = f"{subject}/{session}" if session else subject
            if used is not None:
                # Two sessions of one subject could land in different splits.
                skipped.append((label, f"{subject} already uses {used.as_posix()}; one session "
                                       f"per subject keeps splits subject-level"))
            elif len(found) == 2:
                t1, *extra_t1 = sorted(found["T1w"], key=lambda r: _natural(r.name))
                t2, *extra_t2 = sorted(found["T2w"], key=lambda r: _natural(r.name))
                for extra, chosen in [(r, t1) for r in extra_t1] + [(r, t2) for r in extra_t2]:
                    skipped.append((extra.as_posix(), f"{subject} already uses {chosen.name}; "
                                                      f"one scan per contrast and subject"))
                pairs.append(Pair(subject, root / t1, root / t2))
                used = t1.parent
            else:
                (have,) = found
                lack = "T2w" if have == "T1w" else "T1w"
                skipped.append((label, f"only {have} (no {label}/anat/*_{lack}.nii.gz)"))
    return pairs, skipped


_LAYOUT_FINDERS = {"ixi": _ixi, "brats": _brats, "bids": _bids}
