"""The mutation tool (tests/mutants.py): its mutants, and a sample graded as CI can afford."""

from __future__ import annotations

import ast
import json

import harness
import mutants
import pytest

CELL = """def f(xs, limit):
    ### BEGIN SOLUTION
    total = 0
    for x in xs:
        if x < limit and x != 3:
            total += x * 2
    return total
    ### END SOLUTION
"""


def _apply(m: mutants.Mutant, *args):
    scope: dict = {}
    exec(m.source, scope)
    return scope["f"](*args)


def test_every_operator_finds_its_sites():
    found = mutants.mutants_of_cell("L", "ex1-f", CELL)
    operators = {m.operator for m in found}
    want = {
        "comparison",
        "arithmetic",
        "boolean",
        "constant",
        "early-return",
        "condition-negated",
        "statement-dropped",
        "statements-swapped",
    }
    assert want <= operators, (
        f"expected mutants of every kind in {sorted(want)}, got {sorted(operators)}"
    )
    changes = {m.change for m in found}
    assert "line 5: Lt -> LtE" in changes and "line 6: Mult -> Div" in changes, sorted(changes)


def test_mutants_compile_keep_the_markers_and_differ_from_the_reference():
    found = mutants.mutants_of_cell("L", "ex1-f", CELL)
    reference = _apply(mutants.Mutant("L", "ex1-f", "none", "", CELL), [1, 2, 3, 4, 5], 5)
    assert reference == 14, f"the reference computes 2*(1+2+4) = 14, got {reference}"
    outputs = set()
    for m in found:
        assert m.source.startswith("def f(xs, limit):\n    ### BEGIN SOLUTION\n"), m.source
        assert m.source.rstrip().endswith("### END SOLUTION"), m.source
        ast.parse(m.source)
        try:
            outputs.add(_apply(m, [1, 2, 3, 4, 5], 5))
        except Exception as exc:  # a mutant may also crash: that is a detectable change
            outputs.add(type(exc).__name__)
    assert len({m.source for m in found}) == len(found), "expected no duplicate mutants"
    assert len(outputs - {14}) >= 5, f"expected mutants with many different results, got {outputs}"


def test_sample_is_deterministic_and_spread_over_operators():
    found = mutants.mutants_of_cell("L", "ex1-f", CELL)
    a, b = mutants.sample(found, 6, seed=3), mutants.sample(found, 6, seed=3)
    assert [m.key for m in a] == [m.key for m in b], "expected the same sample for the same seed"
    assert len(a) == 6 and len({m.operator for m in a}) == 6, (
        f"expected 6 mutants of 6 kinds, got {[m.operator for m in a]}"
    )
    assert mutants.sample(found, None, 0) == found


def test_equivalent_list_names_real_mutants_with_reasons():
    listed = json.loads(mutants.EQUIVALENT.read_text())
    for lesson, entries in listed.items():
        keys = {m.key for group in mutants.lesson_mutants(lesson).values() for m in group}
        for key, reason in entries.items():
            assert key in keys, f"{lesson}: equivalent.json lists {key}, which no longer exists"
            assert len(reason) > 20, f"{lesson} {key}: expected a reason, got {reason!r}"


@pytest.mark.notebook
@pytest.mark.xdist_group("00-template")
def test_template_mutants_are_killed(tmp_path):
    """A sample of the warm-up lesson's mutants, graded by nbgrader: each loses points or is
    listed as equivalent with a reason (the full run is `make mutation`)."""
    found = {
        ex: mutants.sample(group, 3, seed=0)
        for ex, group in mutants.lesson_mutants("00-template").items()
    }
    # the lesson's own grading (tests/test_lessons.py, same xdist group) gives the course and the
    # solutions' run: only the mutants are graded here
    graded = harness.graded("00-template")
    outcomes = mutants.grade_lesson("00-template", found, tmp_path, graded)
    assert len(outcomes) == sum(len(g) for g in found.values())
    survivors = [f"{o.grade_id} {o.change}" for o in outcomes if not o.killed and not o.equivalent]
    assert not survivors, f"expected every sampled mutant to lose points, survivors: {survivors}"
