"""Mutation testing of the exercises: does each exercise's grading notice a broken solution?

Every solution cell of a lesson (nbgrader ``solution: true``) holds the reference answer between
``### BEGIN SOLUTION`` and ``### END SOLUTION``. This tool mutates that code automatically
(operators, constants and off-by-one, dtypes, dropped, swapped and early-returning statements),
grades each mutant through the same nbgrader path as the lesson harness (``harness.Course``:
``nbgrader autograde`` in a throw-away course, network cut off), and reports per exercise the
share of mutants that lose points. Exercises are independent, so one notebook run carries one
mutant of every exercise: a lesson with at most N mutants per exercise costs N runs.

A mutant that still earns full marks *survives*. Either it is equivalent to the reference (it
computes the same thing, so no test can tell), and ``tests/mutation/equivalent.json`` says why,
or the exercise's tests have a gap, and a test should be added. The score of an exercise is
killed / (mutants - equivalent ones); the target is at least 90%.

    python tests/mutants.py                       # every lesson, all mutants (make mutation)
    python tests/mutants.py 00-template --per-exercise 4 --seed 1
    python tests/mutants.py --list 03-converting  # print the mutants, grade nothing
    python tests/mutants.py --merge other/results.json  # lessons graded on another machine

The report goes to ``tests/mutation/report.md`` and every outcome to ``tests/mutation/results.json``
(both committed). A run over some lessons replaces those lessons' rows in ``results.json`` and
writes the report from all of them, so after a lesson's tests change, re-grading that lesson
(``python tests/mutants.py 03-converting --per-exercise 6``) updates the report; a lesson
graded with another ``--per-exercise`` or ``--seed`` than the rest is named in the report.
Reasons in ``equivalent.json`` are read when the report is written, not when grading.
Not generated (they need knowledge of the tests, not of the solution): answers hard-coded from
the visible tests; those are the wrong answers of ``tests/exercises/``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import random
import re
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

# the harness, and the repository root for what it imports (tools.site), as pytest would set them
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import harness  # noqa: E402

MUTATION_DIR = harness.ROOT / "tests" / "mutation"
EQUIVALENT = MUTATION_DIR / "equivalent.json"
REPORT = MUTATION_DIR / "report.md"
#: every graded mutant, per lesson (committed): a run over some lessons replaces their rows and
#: the report is written from all of them, so one lesson can be re-graded after its tests change
RESULTS = MUTATION_DIR / "results.json"
TARGET = 0.9
_BLOCK = re.compile(
    r"(?P<head>^[ \t]*### BEGIN SOLUTION[^\n]*\n)(?P<body>.*?)(?P<tail>^[ \t]*### END SOLUTION)",
    re.S | re.M,
)


@dataclass(frozen=True)
class Mutant:
    """One change to one solution cell."""

    lesson: str
    grade_id: str
    operator: str  # which kind of change
    change: str  # what changed, one line: ``line 3: a < b -> a <= b``
    source: str  # the whole mutated cell

    @property
    def exercise(self) -> str:
        return harness.exercise_of(self.grade_id)

    @property
    def key(self) -> str:
        """Stable id: the cell and the mutated code (not the order of generation)."""
        digest = hashlib.sha1(f"{self.grade_id}\n{self.source}".encode()).hexdigest()[:10]
        return f"{self.grade_id}:{digest}"


# ---------------------------------------------------------------------------------------------
# Mutation operators. Each yields (operator, description, mutated tree) for every site it finds.

_COMPARE = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_ARITH = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
_DTYPES = {
    "float32": "float64",
    "float64": "float32",
    "float16": "float32",
    "int64": "int32",
    "int32": "int64",
    "int8": "uint8",
    "uint8": "int8",
}


def _sites(tree: ast.AST) -> Iterator[tuple[ast.AST, ast.AST | None, str | None]]:
    """Every node with its parent and the parent's field holding it."""
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        yield item, parent, name
            elif isinstance(value, ast.AST):
                yield value, parent, name


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def _variants(tree: ast.Module) -> Iterator[tuple[str, str, ast.Module]]:
    """(operator, description, mutated copy) for every mutation site of ``tree``."""
    nodes = list(ast.walk(tree))
    docs = _docstrings(tree)
    for index, node in enumerate(nodes):
        line = getattr(node, "lineno", "?")

        def mutated(edit: Callable[[ast.AST], None], _index: int = index) -> ast.Module:
            clone = copy.deepcopy(tree)
            edit(list(ast.walk(clone))[_index])
            return clone

        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in _COMPARE:
                    new = _COMPARE[type(op)]

                    def edit(n, k=k, new=new):
                        n.ops[k] = new()

                    yield (
                        "comparison",
                        f"line {line}: {type(op).__name__} -> {new.__name__}",
                        mutated(edit),
                    )
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _ARITH:
            new = _ARITH[type(node.op)]

            def edit(n, new=new):
                n.op = new()

            yield (
                "arithmetic",
                f"line {line}: {type(node.op).__name__} -> {new.__name__}",
                mutated(edit),
            )
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And

            def edit(n, new=new):
                n.op = new()

            yield (
                "boolean",
                f"line {line}: {type(node.op).__name__} -> {new.__name__}",
                mutated(edit),
            )
        elif isinstance(node, ast.If | ast.IfExp | ast.While):

            def edit(n):
                n.test = ast.UnaryOp(ast.Not(), n.test)

            yield "condition-negated", f"line {line}: condition negated", mutated(edit)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            yield (
                "unary",
                f"line {line}: {type(node.op).__name__} dropped",
                _replaced(tree, index, node.operand),
            )
        elif isinstance(node, ast.Constant) and id(node) not in docs:
            value = node.value
            if isinstance(value, bool):
                changes = [not value]
            elif isinstance(value, int):
                changes = [value + 1, value - 1] if value not in (0, 1) else [1 - value, value + 2]
            elif isinstance(value, float):
                changes = [value * 2, value / 2] if value else [1.0]
            elif isinstance(value, str) and value in _DTYPES:
                changes = [_DTYPES[value]]
            elif isinstance(value, str) and value:
                changes = [""]
            else:
                changes = []
            for new in changes:

                def edit(n, new=new):
                    n.value = new

                yield "constant", f"line {line}: {value!r} -> {new!r}", mutated(edit)
        elif isinstance(node, ast.Attribute) and node.attr in _DTYPES:
            new = _DTYPES[node.attr]

            def edit(n, new=new):
                n.attr = new

            yield "dtype", f"line {line}: .{node.attr} -> .{new}", mutated(edit)
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):

                def edit(n):
                    n.value = ast.Constant(None)

                yield "early-return", f"line {line}: return ... -> return None", mutated(edit)
    yield from _statement_variants(tree)


def _replaced(tree: ast.Module, index: int, by: ast.AST) -> ast.Module:
    """A copy of ``tree`` with the ``index``-th walked node replaced by (a copy of) ``by``."""
    clone = copy.deepcopy(tree)
    target = list(ast.walk(clone))[index]
    by_index = list(ast.walk(tree)).index(by)
    replacement = list(ast.walk(clone))[by_index]
    for node, parent, field in _sites(clone):
        if node is target:
            value = getattr(parent, field)
            if isinstance(value, list):
                value[value.index(node)] = replacement
            else:
                setattr(parent, field, replacement)
            break
    return clone


def _bodies(tree: ast.AST) -> Iterator[list[ast.stmt]]:
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                yield body


def _statement_variants(tree: ast.Module) -> Iterator[tuple[str, str, ast.Module]]:
    """Each statement dropped (replaced by ``pass``), each pair of neighbours swapped."""
    originals = list(_bodies(tree))
    for b, body in enumerate(originals):
        for s, stmt in enumerate(body):
            if isinstance(stmt, ast.Import | ast.ImportFrom | ast.Pass):
                continue
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring
            clone = copy.deepcopy(tree)
            list(_bodies(clone))[b][s] = ast.Pass()
            yield "statement-dropped", f"line {stmt.lineno}: {_first_line(stmt)} dropped", clone
            if s + 1 < len(body) and not isinstance(body[s + 1], ast.Import | ast.ImportFrom):
                clone = copy.deepcopy(tree)
                target = list(_bodies(clone))[b]
                target[s], target[s + 1] = target[s + 1], target[s]
                yield (
                    "statements-swapped",
                    f"lines {stmt.lineno}-{body[s + 1].lineno}: swapped",
                    clone,
                )


def _first_line(stmt: ast.stmt) -> str:
    text = ast.unparse(stmt).splitlines()[0]
    return text if len(text) <= 60 else text[:57] + "..."


def mutants_of_cell(lesson: str, grade_id: str, source: str) -> list[Mutant]:
    """Every distinct mutant of the solution block(s) of one cell, in a stable order."""
    out: dict[str, Mutant] = {}
    for match in _BLOCK.finditer(source):
        body = match.group("body")
        indent = re.match(r"[ \t]*", body.splitlines()[0] if body.strip() else "").group(0)
        try:
            tree = ast.parse(textwrap.dedent(body))
        except SyntaxError:
            continue
        reference = ast.unparse(tree)
        for operator, change, mutated in _variants(tree):
            try:
                code = ast.unparse(ast.fix_missing_locations(mutated))
            except Exception:  # an operator produced an impossible tree: not a mutant
                continue
            if code == reference:
                continue
            new_body = textwrap.indent(code + "\n", indent)
            cell = source[: match.start("body")] + new_body + source[match.end("body") :]
            change = _cell_lines(change, source[: match.start("body")].count("\n"))
            mutant = Mutant(lesson, grade_id, operator, change, cell)
            out.setdefault(cell, mutant)
    return list(out.values())


def _cell_lines(change: str, offset: int) -> str:
    """``line 3: ...`` counted in the block -> counted in the cell (first line 1)."""
    head, _, rest = change.partition(":")
    numbers = re.sub(r"\d+", lambda m: str(int(m.group()) + offset), head)
    return f"{numbers}:{rest}"


def lesson_mutants(lesson: str) -> dict[str, list[Mutant]]:
    """Exercise -> its mutants, over every solution cell of the lesson's source notebook."""
    nb = nbformat.read(harness.notebook_path(lesson), as_version=4)
    by_exercise: dict[str, list[Mutant]] = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and "BEGIN SOLUTION" in cell.source:
            for mutant in mutants_of_cell(lesson, meta["grade_id"], cell.source):
                by_exercise.setdefault(mutant.exercise, []).append(mutant)
    return by_exercise


def sample(mutants: list[Mutant], n: int | None, seed: int) -> list[Mutant]:
    """At most ``n`` mutants, spread over the operators (round robin), chosen with ``seed``."""
    if n is None or len(mutants) <= n:
        return list(mutants)
    rng = random.Random(seed)
    by_operator: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_operator.setdefault(m.operator, []).append(m)
    for group in by_operator.values():
        rng.shuffle(group)
    chosen: list[Mutant] = []
    while len(chosen) < n:
        for group in by_operator.values():
            if group and len(chosen) < n:
                chosen.append(group.pop())
    return chosen


# ---------------------------------------------------------------------------------------------
# Grading


@dataclass
class Outcome:
    key: str
    lesson: str
    exercise: str
    grade_id: str
    operator: str
    change: str
    points: float  # earned by the exercise with this mutant
    max_points: float
    killed: bool
    equivalent: str | None = None  # why it cannot be killed, from equivalent.json


def grade_lesson(
    lesson: str,
    mutants: dict[str, list[Mutant]],
    workdir: Path,
    graded: harness.LessonRun | None = None,
) -> list[Outcome]:
    """Grade every mutant with nbgrader; run k carries the k-th mutant of every exercise.

    ``graded``, the lesson's grading by the harness (:func:`harness.graded`), lends its course
    (generated already) and its solutions' run as the baseline, which is otherwise graded here.
    """
    source = nbformat.read(harness.notebook_path(lesson), as_version=4)
    runs = max((len(v) for v in mutants.values()), default=0)
    if graded is None:
        course = harness.Course(lesson, workdir)
        course.generate()
        course.submit("baseline", source)
        students = ["baseline"]
    else:
        course = graded.course
        for done in (course.dir / "submitted").iterdir():  # graded already: not again
            shutil.rmtree(done)
        students = []
    plan: dict[str, list[Mutant]] = {}
    for k in range(runs):
        chosen = [group[k] for group in mutants.values() if k < len(group)]
        student = f"mutant{k:03d}"
        nb = harness.with_cells_replaced(source, {m.grade_id: m.source for m in chosen})
        course.submit(student, nb)
        plan[student] = chosen
    results = course.autograde([*students, *plan])
    base = results["baseline"] if graded is None else graded.results["solution"]
    lost = {gid: s for gid, s in base.scores.items() if s[0] != s[1]}
    if lost:
        raise RuntimeError(f"{lesson}: the reference solution itself loses points: {lost}")
    equivalent = json.loads(EQUIVALENT.read_text()).get(lesson, {}) if EQUIVALENT.exists() else {}
    outcomes = []
    for student, chosen in plan.items():
        scores = results[student].scores
        for m in chosen:
            cells = [s for gid, s in scores.items() if harness.exercise_of(gid) == m.exercise]
            got, full = sum(s for s, _ in cells), sum(f for _, f in cells)
            outcomes.append(
                Outcome(
                    m.key,
                    lesson,
                    m.exercise,
                    m.grade_id,
                    m.operator,
                    m.change,
                    got,
                    full,
                    got < full,
                    equivalent.get(m.key),
                )
            )
    return outcomes


def summarise(outcomes: list[Outcome]) -> dict[tuple[str, str], dict]:
    """(lesson, exercise) -> mutants, killed, equivalent, score (killed / non-equivalent)."""
    table: dict[tuple[str, str], dict] = {}
    for o in outcomes:
        row = table.setdefault(
            (o.lesson, o.exercise),
            {"mutants": 0, "killed": 0, "equivalent": 0, "survivors": []},
        )
        row["mutants"] += 1
        if o.killed:
            row["killed"] += 1
        elif o.equivalent:
            row["equivalent"] += 1
        else:
            row["survivors"].append(o)
    for row in table.values():
        counted = row["mutants"] - row["equivalent"]
        row["score"] = row["killed"] / counted if counted else 1.0
    return table


def write_report(
    outcomes: list[Outcome], command: str, seconds: float, stored: dict[str, dict] | None = None
) -> str:
    """The markdown report; ``stored`` (from ``results.json``) says how each lesson was graded."""
    table = summarise(outcomes)
    lines = [
        "# Mutation report: do the exercises' tests notice a broken solution?",
        "",
        f"Last updated by `{command}` in {seconds:.0f} s (see `tests/mutants.py`; every outcome",
        "is in `tests/mutation/results.json`). A mutant is killed when its exercise loses points;",
        "equivalent mutants (same behaviour as the reference, listed with a reason in",
        "`tests/mutation/equivalent.json`) are not counted. Target: at",
        f"least {TARGET:.0%} killed per exercise.",
        "",
    ]
    if stored:
        lines += ["| lesson | graded with | seconds |", "|---|---|---:|"]
        lines += [
            f"| {lesson} | `python tests/mutants.py {lesson} {entry['settings']}` | "
            f"{entry['seconds']:.0f} |"
            for lesson, entry in sorted(stored.items())
        ]
        lines.append("")
    lines += [
        "| lesson | exercise | mutants | killed | equivalent | score |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (lesson, exercise), row in sorted(table.items()):
        mark = "" if row["score"] >= TARGET else " (below target)"
        lines.append(
            f"| {lesson} | {exercise} | {row['mutants']} | {row['killed']} | "
            f"{row['equivalent']} | {row['score']:.0%}{mark} |"
        )
    lessons = sorted({lesson for lesson, _ in table})
    lines += ["", "Per lesson:", ""]
    for lesson in lessons:
        rows = [r for (l_, _), r in table.items() if l_ == lesson]
        killed = sum(r["killed"] for r in rows)
        counted = sum(r["mutants"] - r["equivalent"] for r in rows)
        lines.append(f"- {lesson}: {killed}/{counted} killed ({killed / max(counted, 1):.0%})")
    survivors = [s for r in table.values() for s in r["survivors"]]
    lines += ["", "## Survivors (a test to add, or a reason to list in equivalent.json)", ""]
    lines += [
        f"- `{s.key}` {s.lesson} {s.grade_id}, {s.operator}: {s.change} "
        f"({s.points:g}/{s.max_points:g} points)"
        for s in survivors
    ] or ["None."]
    equivalents = [o for o in outcomes if o.equivalent and not o.killed]
    lines += ["", "## Equivalent mutants", ""]
    lines += [
        f"- `{o.key}` {o.lesson} {o.grade_id}: {o.change}: {o.equivalent}" for o in equivalents
    ] or ["None."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lessons to test (default: all)")
    parser.add_argument(
        "--per-exercise", type=int, default=12, help="at most N per exercise (0: all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="print the mutants, grade nothing")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="RESULTS",
        help="grade nothing: add these results.json files (lessons graded elsewhere) to the "
        "committed ones and rewrite the report",
    )
    args = parser.parse_args(argv)
    if args.merge:
        stored = load_results()
        for path in args.merge:
            stored.update(json.loads(path.read_text()))
        RESULTS.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
        merged = outcomes_of(stored)
        seconds = sum(entry["seconds"] for entry in stored.values())
        report = write_report(
            merged, "python tests/mutants.py (per lesson, below)", seconds, stored
        )
        args.report.write_text(report)
        print(report)
        return 1 if [k for k, r in summarise(merged).items() if r["score"] < TARGET] else 0
    lessons = args.lessons or harness.lessons()
    started = time.monotonic()
    outcomes: list[Outcome] = []
    per_lesson_seconds: dict[str, float] = {}
    for lesson in lessons:
        mutants = {
            ex: sample(group, args.per_exercise or None, args.seed)
            for ex, group in lesson_mutants(lesson).items()
        }
        if args.list:
            for ex, group in mutants.items():
                for m in group:
                    print(f"{lesson} {ex} {m.key} {m.operator}: {m.change}")
            continue
        total = sum(len(g) for g in mutants.values())
        runs = max((len(g) for g in mutants.values()), default=0)
        print(f"{lesson}: {total} mutants in {runs} notebook runs ...", flush=True)
        lesson_started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"mutants-{lesson}-") as tmp:
            outcomes += grade_lesson(lesson, mutants, Path(tmp))
        per_lesson_seconds[lesson] = time.monotonic() - lesson_started
    if args.list:
        return 0
    seconds = time.monotonic() - started
    argv_ = argv if argv is not None else sys.argv[1:]
    settings = f"--per-exercise {args.per_exercise} --seed {args.seed}"
    stored = load_results()
    for lesson in lessons:
        stored[lesson] = {
            "settings": settings,
            "seconds": round(per_lesson_seconds.get(lesson, 0.0), 1),
            "outcomes": [asdict(o) for o in outcomes if o.lesson == lesson],
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
    merged = outcomes_of(stored)
    command = "python tests/mutants.py " + " ".join(argv_)
    report = write_report(merged, command.strip(), seconds, stored)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report)
    print(report)
    below = [k for k, r in summarise(merged).items() if r["score"] < TARGET]
    return 1 if below else 0


def load_results() -> dict[str, dict]:
    """The committed outcomes, per lesson (empty when none were graded yet)."""
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def outcomes_of(stored: dict[str, dict]) -> list[Outcome]:
    """Every stored outcome, with today's reason from equivalent.json (not the one at grading)."""
    equivalent = json.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else {}
    out = []
    for lesson, entry in stored.items():
        for row in entry["outcomes"]:
            o = Outcome(**row)
            o.equivalent = None if o.killed else equivalent.get(lesson, {}).get(o.key)
            out.append(o)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
