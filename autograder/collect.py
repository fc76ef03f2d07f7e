"""Import submissions exported by a learning-management system into nbgrader's layout.

An export is a folder or a zip. Notebooks are matched to students by their file name, in the
ways LMSs name them, or by the folder they sit in:

- ``lastname_studentid_attempt_2024-03-01-10-15-00_lesson.ipynb`` (Blackboard style);
- ``lastname_[LATE_]12345_67890_lesson.ipynb`` (Canvas style: user id, submission id);
- ``Full Name_12345_assignsubmission_file_/lesson.ipynb`` (Moodle style: a folder per student);
- ``STUDENT/lesson.ipynb`` or ``STUDENT/ASSIGNMENT/lesson.ipynb`` (a folder per student);
- or a regular expression of your own with a ``student`` group (``--pattern``).

Each student's chosen notebook is written to ``submitted/STUDENT/ASSIGNMENT/NOTEBOOK.ipynb``
with nbgrader's ``timestamp.txt``. When a student has several notebooks (attempts, browser
duplicates such as ``lesson (1).ipynb``), the latest attempt wins and the others are reported.
Entries that try to leave the export (absolute paths, ``..``, links, devices) are refused and
never read; nothing outside ``submitted/`` is ever written.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from .course import Course, valid_student_id

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
MAX_RATIO = 200  # zip entries that expand more than this are refused (zip bombs)

PATTERNS = [
    (
        "lastname_studentid_attempt_..._file",
        re.compile(
            r"^(?P<last>[^_/]+)_(?P<student>[^_/]+)_attempt_(?P<attempt>\d[\d_:. -]*?)_(?P<file>[^/]+)$"
        ),
    ),
    (
        "lastname_[LATE_]userid_submissionid_file",
        re.compile(
            r"^(?P<last>[^_/]+)_(?:late_)?(?P<student>\d+)_(?P<attempt>\d+)_(?P<file>[^/]+)$",
            re.IGNORECASE,
        ),
    ),
]
MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<student>\d+)_assignsubmission_file_?$")
COPY_SUFFIX = re.compile(r"^(?P<stem>.*?)(?:\s*\((?P<copy>\d+)\))?$")
ATTEMPT_FORMATS = ("%Y-%m-%d-%H-%M-%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y-%m-%d")


@dataclass
class Entry:
    """One file of the export (a zip member or a file under the export folder)."""

    path: str  #: relative, '/'-separated
    size: int
    mtime: float
    _read: object = field(repr=False, default=None)

    def read(self) -> bytes:
        return self._read()  # type: ignore[operator]


@dataclass
class Candidate:
    entry: Entry
    student: str
    how: str
    last_name: str | None = None
    attempt: str = ""
    original: str = ""  #: file name the student gave it

    @property
    def copy(self) -> int:
        stem = PurePosixPath(self.original).stem
        m = COPY_SUFFIX.match(stem)
        return int(m.group("copy")) if m and m.group("copy") else 0

    @property
    def base_name(self) -> str:
        """The file name without a browser duplicate suffix: ``lesson (1).ipynb`` -> ``lesson.ipynb``."""
        p = PurePosixPath(self.original)
        m = COPY_SUFFIX.match(p.stem)
        return f"{(m.group('stem') if m else p.stem).strip()}{p.suffix}"


@dataclass
class CollectReport:
    assignment: str
    source: str
    collected: list[dict] = field(default_factory=list)  #: student, file, from, notes
    unmatched: list[dict] = field(default_factory=list)  #: path, reason
    refused: list[dict] = field(default_factory=list)  #: path, reason
    ignored: list[dict] = field(default_factory=list)  #: path, reason

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"collect {self.assignment} from {self.source}: {len(self.collected)} students "
            f"collected, {len(self.unmatched)} files unmatched, {len(self.refused)} refused, "
            f"{len(self.ignored)} ignored"
        ]
        for row in self.collected:
            notes = f" ({'; '.join(row['notes'])})" if row["notes"] else ""
            lines.append(f"  {row['student']:<24} <- {row['from']}{notes}")
        for title, rows in (("UNMATCHED", self.unmatched), ("REFUSED", self.refused)):
            for row in rows:
                lines.append(f"  {title}: {row['path']}: {row['reason']}")
        for row in self.ignored:
            lines.append(f"  ignored: {row['path']}: {row['reason']}")
        return "\n".join(lines)


def _safe_relative(name: str) -> tuple[str | None, str | None]:
    """(normalised relative path, None) or (None, why it is refused)."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None, "absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "path with '..' (would leave the export)"
    if not parts:
        return None, "empty path"
    if any(p != p.strip() or "\x00" in p for p in parts):
        return None, "path with control characters or padding"
    return "/".join(parts), None


def _zip_entries(path: Path, report: CollectReport) -> list[Entry]:
    entries = []
    archive = zipfile.ZipFile(path)
    for info in archive.infolist():
        rel, why = _safe_relative(info.filename)
        if why:
            report.refused.append({"path": info.filename, "reason": why})
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            report.refused.append({"path": rel, "reason": "symbolic link"})
            continue
        if info.is_dir():
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # DOS/Windows zips carry no type bits
            report.refused.append({"path": rel, "reason": "not a regular file"})
            continue
        if info.file_size > MAX_NOTEBOOK_BYTES:
            report.refused.append(
                {"path": rel, "reason": f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"}
            )
            continue
        if (
            info.compress_size
            and info.file_size / info.compress_size > MAX_RATIO
            and (info.file_size > 5 * 2**20)
        ):
            report.refused.append({"path": rel, "reason": "expands suspiciously (zip bomb?)"})
            continue
        mtime = datetime(*info.date_time).replace(tzinfo=UTC).timestamp()

        def read(info=info):
            with archive.open(info) as fh:
                data = fh.read(MAX_NOTEBOOK_BYTES + 1)
            if len(data) > MAX_NOTEBOOK_BYTES:
                raise ValueError("larger than its declared size")
            return data

        entries.append(Entry(rel, info.file_size, mtime, read))
    return entries


def _folder_entries(root: Path, report: CollectReport) -> list[Entry]:
    entries = []
    root = root.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in list(dirs):
            full = Path(folder) / name
            if full.is_symlink():
                dirs.remove(name)
                report.refused.append(
                    {"path": str(full.relative_to(root)), "reason": "symbolic link"}
                )
        for name in files:
            full = Path(folder) / name
            rel = str(full.relative_to(root)).replace(os.sep, "/")
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                report.refused.append({"path": rel, "reason": "symbolic link"})
                continue
            if not stat.S_ISREG(st.st_mode):
                report.refused.append({"path": rel, "reason": "not a regular file"})
                continue
            if st.st_size > MAX_NOTEBOOK_BYTES:
                report.refused.append(
                    {"path": rel, "reason": f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"}
                )
                continue

            def read(full=full):
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as fh:
                    return fh.read(MAX_NOTEBOOK_BYTES + 1)[:MAX_NOTEBOOK_BYTES]

            entries.append(Entry(rel, st.st_size, st.st_mtime, read))
    return entries


class Impersonation(ValueError):
    """A file whose name claims another student than the folder the LMS put it in."""


def _flat(base: str, patterns: list[tuple[str, re.Pattern]]) -> Candidate | None:
    for how, pattern in patterns:
        m = pattern.match(base)
        if m and m.groupdict().get("student"):
            g = m.groupdict()
            return Candidate(
                None,  # type: ignore[arg-type]
                g["student"],
                how,
                last_name=g.get("last"),
                attempt=g.get("attempt") or "",
                original=g.get("file") or base,
            )
    return None


def _match(
    parts: list[str], assignment: str, patterns: list[tuple[str, re.Pattern]], root_depth: int = 0
) -> Candidate | None:
    """Whose file this is, from the parts of its path the LMS controls.

    A flat LMS name (Blackboard, Canvas, ``--pattern``) counts only for a file at the top of the
    export (``root_depth`` folders deep: the folder all notebooks share), where the LMS wrote the
    whole name. Below it, the folder says whose it is (Moodle's ``Name_id_assignsubmission_file_``
    or a folder per student); a file there whose name claims another id is refused
    (:class:`Impersonation`): the student chose that name.
    """
    base = parts[-1]
    folders = parts[:-1]
    flat = _flat(base, patterns)
    if len(folders) <= root_depth:
        if flat is not None:
            return flat
        inner = [p for p in folders if p != assignment]
        if inner:  # a single student's folder is the export's whole top
            return Candidate(None, inner[-1], "STUDENT/file", original=base)  # type: ignore[arg-type]
        return None
    owner: Candidate | None = None
    for folder in reversed(folders[root_depth:]):
        m = MOODLE_FOLDER.match(folder)
        if m:
            name = m.group("name").split()
            owner = Candidate(
                None,  # type: ignore[arg-type]
                m.group("student"),
                "Name_id_assignsubmission_file_/file",
                last_name=name[-1] if name else None,
                original=base,
            )
            break
    if owner is None:
        inner = [p for p in folders[root_depth:] if p != assignment] or [
            p for p in folders if p != assignment
        ]
        if not inner:
            return None
        # the per-student folder: the innermost (STUDENT/file, STUDENT/ASSIGNMENT/file)
        owner = Candidate(None, inner[-1], "STUDENT/file", original=base)  # type: ignore[arg-type]
    if flat is not None and flat.student != owner.student:
        raise Impersonation(
            f"the file name claims student {flat.student!r} but it is in {owner.student!r}'s "
            "folder: refused (identity comes from the folder the LMS made)"
        )
    if flat is not None:
        owner.attempt, owner.original = flat.attempt, flat.original
    return owner


def _root_depth(split: list[list[str]]) -> int:
    """How many folders all notebooks of the export share (the export's own top folders)."""
    if not split:
        return 0
    common = split[0][:-1]
    for parts in split[1:]:
        n = 0
        while n < min(len(common), len(parts) - 1) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return len(common)


def _attempt_key(c: Candidate) -> tuple:
    digits = re.sub(r"\D", "", c.attempt)
    return (len(digits), digits)


def _timestamp(c: Candidate) -> datetime:
    text = c.attempt.strip()
    for fmt in ATTEMPT_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return datetime.fromtimestamp(c.entry.mtime, tz=UTC)


def collect(
    course: Course,
    assignment: str,
    source: Path | str,
    *,
    patterns: list[str] | None = None,
) -> CollectReport:
    """Import an LMS export (folder or zip) of ``assignment`` into ``submitted/``.

    Example:
        >>> report = collect(Course("."), "00-template", "export.zip")  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    course.check_assignment(assignment)
    expected = course.notebook_names(assignment)
    source = Path(source)
    report = CollectReport(assignment, str(source))
    compiled = [(f"--pattern {p}", re.compile(p)) for p in patterns or []]
    for how, pattern in compiled:
        if "student" not in pattern.groupindex:
            raise ValueError(f"{how}: the pattern needs a (?P<student>...) group")
    if source.is_file() and zipfile.is_zipfile(source):
        entries = _zip_entries(source, report)
    elif source.is_dir():
        entries = _folder_entries(source, report)
    else:
        raise FileNotFoundError(f"{source} is neither a folder nor a zip file")

    notebooks = []
    for entry in entries:
        parts = entry.path.split("/")
        if "__MACOSX" in parts or ".ipynb_checkpoints" in parts or parts[-1].startswith("._"):
            report.ignored.append({"path": entry.path, "reason": "editor or OS metadata"})
        elif not parts[-1].lower().endswith(".ipynb"):
            report.ignored.append({"path": entry.path, "reason": "not a notebook"})
        else:
            notebooks.append(entry)

    split = [e.path.split("/") for e in notebooks]
    depth = _root_depth(split)
    by_student: dict[str, list[Candidate]] = {}
    for entry, parts in zip(notebooks, split, strict=True):
        try:
            cand = _match(parts, assignment, compiled + PATTERNS, depth)
        except Impersonation as exc:
            report.refused.append({"path": entry.path, "reason": str(exc)})
            continue
        if cand is None:
            report.unmatched.append(
                {
                    "path": entry.path,
                    "reason": "the name does not say whose it is (expected e.g. "
                    "lastname_studentid_attempt_..._lesson.ipynb, or a folder per student; "
                    "see --pattern)",
                }
            )
            continue
        cand.entry = entry
        if not valid_student_id(cand.student):
            report.unmatched.append(
                {"path": entry.path, "reason": f"student id {cand.student!r} is not usable"}
            )
            continue
        if len(expected) > 1 and PurePosixPath(cand.base_name).stem not in expected:
            report.unmatched.append(
                {
                    "path": entry.path,
                    "reason": f"not one of the assignment's notebooks ({', '.join(expected)})",
                }
            )
            continue
        by_student.setdefault(cand.student, []).append(cand)

    submitted_root = course.folder("submitted").resolve()
    students = {}
    for student, cands in sorted(by_student.items()):
        groups: dict[str, list[Candidate]] = {}
        for cand in cands:
            key = PurePosixPath(cand.base_name).stem if len(expected) > 1 else expected[0]
            groups.setdefault(key, []).append(cand)
        for nb_name, group in sorted(groups.items()):
            group.sort(
                key=lambda c, nb=nb_name: (
                    _attempt_key(c),
                    PurePosixPath(c.base_name).stem == nb,
                    c.copy,
                    c.entry.mtime,
                ),
                reverse=True,
            )
            chosen, others = group[0], group[1:]
            notes = []
            for other in others:
                report.ignored.append(
                    {
                        "path": other.entry.path,
                        "reason": f"{student} has a later or preferred file: {chosen.entry.path}",
                    }
                )
            if others:
                notes.append(f"{len(others)} other file(s) of this student ignored")
            if chosen.base_name != f"{nb_name}.ipynb":
                notes.append(f"renamed from {chosen.original}")
            target_dir = (submitted_root / student / assignment).resolve()
            if submitted_root not in target_dir.parents:
                report.refused.append({"path": chosen.entry.path, "reason": "unsafe target"})
                continue
            try:
                data = chosen.entry.read()
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                report.unmatched.append({"path": chosen.entry.path, "reason": f"unreadable: {exc}"})
                continue
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / f"{nb_name}.ipynb"
            if target.exists():
                notes.append("unchanged" if target.read_bytes() == data else "replaced")
            _write_atomic(target, data)
            stamp = _timestamp(chosen).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
            _write_atomic(target_dir / "timestamp.txt", stamp.encode())
            students[student] = chosen.last_name
            report.collected.append(
                {
                    "student": student,
                    "file": str(target.relative_to(course.root)),
                    "from": chosen.entry.path,
                    "how": chosen.how,
                    "timestamp": stamp,
                    "notes": notes,
                }
            )
    if students:
        with course.gradebook() as gb:
            for student, last in students.items():
                kw = {"last_name": last} if last else {}
                gb.update_or_create_student(student, **kw)
    out = course.grading_dir(assignment)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "collect.json", json.dumps(report.to_dict(), indent=2).encode())
    return report


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
