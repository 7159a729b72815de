"""Paths built from data never leave their output folder; nothing is overwritten without force."""

from __future__ import annotations

import pytest

from trainer.data.errors import DataError
from trainer.data.output_paths import inside, prepare_output, write_text


def test_inside_refuses_paths_that_leave_the_folder(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    assert inside(out, "sub/a.txt") == out / "sub" / "a.txt"
    assert inside(out, "sub/../b.txt") == out / "sub" / ".." / "b.txt"  # still inside
    with pytest.raises(DataError, match=r"x\.json: images\[3\]\.file_name: '\.\./a\.txt' leads outside"):
        inside(out, "../a.txt", source="x.json: images[3].file_name")
    with pytest.raises(DataError, match="is an absolute path"):
        inside(out, tmp_path / "a.txt")
    (out / "link").symlink_to(tmp_path)
    with pytest.raises(DataError, match="leads outside"):
        inside(out, "link/a.txt")


def test_write_text_replaces_only_with_force_and_never_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    target = tmp_path / "out" / "a.txt"
    write_text(target, "one", force=False)
    with pytest.raises(DataError, match="--force"):
        write_text(target, "two", force=False)
    target.unlink()
    target.symlink_to(victim)
    write_text(target, "three", force=True)
    assert victim.read_text() == "keep" and target.read_text() == "three" and not target.is_symlink()


def test_prepare_output(tmp_path):
    prepare_output(tmp_path / "new", folder=True, force=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        prepare_output(tmp_path / "full", folder=True, force=False)
    prepare_output(tmp_path / "full", folder=True, force=True)
    with pytest.raises(DataError, match="is a file"):
        prepare_output(tmp_path / "full" / "x", folder=True, force=True)
    with pytest.raises(DataError, match="is a folder"):
        prepare_output(tmp_path / "full", folder=False, force=True)
