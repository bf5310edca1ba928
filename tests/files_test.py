import json
import os
import socket
import stat

import pytest

from stacnas_tf import files

import helpers


@pytest.fixture
def user_umask():
    def set_mask(mask):
        os.umask(mask)

    previous = os.umask(0o022)
    yield set_mask
    os.umask(previous)


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775),
                                                     (0o077, 0o600, 0o700)])
def test_outputs_take_the_permissions_of_the_users_umask(tmp_path, user_umask, mask, file_mode,
                                                         dir_mode):
    user_umask(mask)
    assert files.umask() == mask
    path = tmp_path / "genotype.json"
    files.write_json(str(path), {"a": 1})
    assert stat.S_IMODE(os.stat(path).st_mode) == file_mode
    folder = files.make_temp_dir(str(tmp_path), ".export.partial-")
    assert stat.S_IMODE(os.stat(folder).st_mode) == dir_mode


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    files.write_text(str(path), "old\n")
    files.write_text(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["config.json"]


def test_a_folder_in_use_is_refused_with_its_holder(tmp_path):
    with files.output_lock(str(tmp_path)):
        lock = json.loads((tmp_path / files.LOCK_NAME).read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
        with pytest.raises(ValueError, match=f"in use by another run .*pid {os.getpid()}"):
            with files.output_lock(str(tmp_path)):
                pass
        assert (tmp_path / files.LOCK_NAME).exists()  # the refused run did not take it
    assert not (tmp_path / files.LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    (tmp_path / files.LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": helpers.dead_pid(), "started": "x",
         "command": "killed"}))
    with files.output_lock(str(tmp_path)):
        assert json.loads((tmp_path / files.LOCK_NAME).read_text())["pid"] == os.getpid()
    # Another host's lock cannot be checked from here: refused, with what to do.
    (tmp_path / files.LOCK_NAME).write_text(json.dumps(
        {"host": "elsewhere", "pid": 1, "started": "x", "command": "search"}))
    with pytest.raises(ValueError, match="host elsewhere.*delete .*stacnas.lock"):
        with files.output_lock(str(tmp_path)):
            pass
