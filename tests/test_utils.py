import pytest

from selectgym.utils import atomic_dir, atomic_path, stable_hash


def test_atomic_dir_publishes_only_on_success(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.bin").write_text("x")
        raise RuntimeError("killed mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"


def test_atomic_dir_replace_or_keep_the_first_writer(tmp_path):
    target = tmp_path / "cache"
    with atomic_dir(target) as tmp:
        (tmp / "v").write_text("first")
    with atomic_dir(target, replace=False) as tmp:
        (tmp / "v").write_text("second")
    assert (target / "v").read_text() == "first"
    with atomic_dir(target) as tmp:
        (tmp / "v").write_text("third")
    assert (target / "v").read_text() == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_atomic_path_and_stable_hash(tmp_path):
    out = tmp_path / "f.json"
    with pytest.raises(ValueError), atomic_path(out) as tmp:
        tmp.write_text("partial")
        raise ValueError
    assert not out.exists()
    assert stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_written_files_and_folders_follow_the_umask(tmp_path):
    import os

    from selectgym.utils import atomic_dir, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
