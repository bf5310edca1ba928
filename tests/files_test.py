import os
import stat

import pytest

from stacnas_tf import files


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
