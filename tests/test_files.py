"""atomic_path: a file is the old version or the complete new one, whoever writes it and however the write ends."""
import os
import threading

import numpy as np
import pytest

from automm_lite.files import atomic_path


def test_a_write_replaces_the_target_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "settings.json"
    target.write_text("old")
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".") and temporary != target
        temporary.write_text("new")
        assert target.read_text() == "old"  # until the block ends
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


@pytest.mark.parametrize("existed", [True, False])
def test_a_failing_write_leaves_the_target_as_it_was_and_no_temporary_file(tmp_path, existed):
    target = tmp_path / "outputs.json"
    if existed:
        target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as temporary:
            temporary.write_text("half of the")
            raise RuntimeError("disk full")
    assert (target.read_text() == "old") if existed else not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["outputs.json"] if existed else [])


def test_two_writers_of_one_target_write_to_different_files(tmp_path):
    target = tmp_path / "last_epoch.ckpt"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        first.write_text("first " * 1000)
        second.write_text("second " * 1000)
    assert target.read_text() == "first " * 1000  # the outer block ends last: the last rename wins, whole
    assert [p.name for p in tmp_path.iterdir()] == ["last_epoch.ckpt"]


def test_concurrent_writers_leave_one_whole_version(tmp_path):
    target = tmp_path / "metrics.csv"
    versions = [f"{n}," * 20_000 for n in range(8)]
    barrier = threading.Barrier(len(versions))

    def write(text):
        barrier.wait()
        with atomic_path(target) as temporary:
            temporary.write_text(text)

    threads = [threading.Thread(target=write, args=(text,)) for text in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_text() in versions
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_the_temporary_file_keeps_the_suffix_and_gets_a_new_files_permissions(tmp_path):
    target = tmp_path / "teacher_logits.npy"
    with atomic_path(target) as temporary:
        assert temporary.suffix == ".npy"
        np.save(temporary, np.arange(3), allow_pickle=False)  # numpy adds ".npy" to a name without it
    assert np.load(target).tolist() == [0, 1, 2]
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
