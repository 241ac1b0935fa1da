"""The one atomic writer (exports, scale data, checkpoints): only the target itself, a
regular file or absent, is ever replaced; a link, a FIFO or a folder at the target or at
an old fixed temporary name is never written through or removed."""

from __future__ import annotations

import os

import pytest
import torch

from explorer.core.atomic_write import UnsafeTarget, write_atomic
from precompute.checkpoints import read_checkpoint, save_checkpoint
from precompute.errors import InputError


def test_a_file_at_the_old_temporary_name_is_left_alone(tmp_path):
    target = tmp_path / "best.pt"
    precious = tmp_path / "precious.txt"
    precious.write_text("the analyst's file\n")
    (tmp_path / "best.pt.tmp").symlink_to(precious)  # the name the old code wrote through
    save_checkpoint({"w": torch.ones(2)}, target)
    assert precious.read_text() == "the analyst's file\n"
    assert (tmp_path / "best.pt.tmp").is_symlink()
    assert torch.equal(read_checkpoint(target)["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "best.pt.tmp",
                                                          "precious.txt"]


@pytest.mark.parametrize("kind", ["link", "fifo", "folder"])
def test_targets_that_are_not_regular_files_are_refused(tmp_path, kind):
    target = tmp_path / "out.bin"
    if kind == "link":
        target.symlink_to(tmp_path / "elsewhere")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(UnsafeTarget, match="not a regular file"):
        write_atomic(target, lambda fh: fh.write(b"x"))
    with pytest.raises(InputError, match="not a regular file"):
        save_checkpoint({"w": torch.zeros(1)}, target)
    assert not (tmp_path / "elsewhere").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
