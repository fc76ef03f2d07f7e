"""course.artefacts: where a built artefact is looked for (a read-only copy first, as the
autograder's sandbox shows it, then the course cache)."""

from __future__ import annotations

from course import artefacts


def test_folder_is_in_the_course_cache_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(artefacts.ENV, raising=False)
    got = artefacts.folder("text-encoder-abc")
    assert got == tmp_path / "cache" / "artefacts" / "text-encoder-abc", f"got {got}"
    assert artefacts.built_home() is None, "nothing built yet: expected no home to show"
    got.mkdir(parents=True)
    assert artefacts.built_home() == tmp_path / "cache" / "artefacts"


def test_folder_prefers_the_read_only_copy_when_it_holds_the_artefact(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    shared = tmp_path / "instructor" / "artefacts"
    (shared / "decoder-1").mkdir(parents=True)
    monkeypatch.setenv(artefacts.ENV, str(shared))
    assert artefacts.folder("decoder-1") == shared / "decoder-1"
    # an artefact the copy lacks (another version) is built in the student's own cache
    got = artefacts.folder("decoder-2")
    assert got == tmp_path / "cache" / "artefacts" / "decoder-2", f"got {got}"


def test_an_unknown_builder_is_named_with_the_known_ones():
    import pytest

    with pytest.raises(KeyError, match="no builder called nope"):
        artefacts.build(["nope"], echo=lambda _: None)
