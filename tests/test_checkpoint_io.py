"""etcore.checkpoint_io: clear errors for bad files, and writes that never leave half a file behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from etcore.checkpoint_io import load_checkpoint_file, save_atomic, write_text_atomic
from etcore.errors import UserInputError


def test_round_trip_torch_and_safetensors(tmp_path: Path) -> None:
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    save_atomic(state, tmp_path / "a.pth")
    assert torch.equal(load_checkpoint_file(tmp_path / "a.pth")["w"], state["w"])
    save_file(state, str(tmp_path / "a.safetensors"))
    assert torch.equal(load_checkpoint_file(tmp_path / "a.safetensors")["w"], state["w"])


def test_missing_and_truncated_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="nope.pth does not exist"):
        load_checkpoint_file(tmp_path / "nope.pth")
    save_atomic({"w": torch.zeros(1000)}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match=r"cut\.pth is corrupt or truncated"):
        load_checkpoint_file(tmp_path / "cut.pth")
    (tmp_path / "garbage.pth").write_bytes(b"truncated")  # not even a zip: the legacy unpickler chokes
    with pytest.raises(UserInputError, match=r"garbage\.pth is corrupt or truncated"):
        load_checkpoint_file(tmp_path / "garbage.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(UserInputError, match=r"cut\.safetensors is not a readable safetensors"):
        load_checkpoint_file(tmp_path / "cut.safetensors")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "last.pth"
    save_atomic({"epoch": 1}, target)

    def broken_writer(obj: object, tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_atomic({"epoch": 2}, target, writer=broken_writer)
    assert load_checkpoint_file(target) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]
    write_text_atomic("hello\n", tmp_path / "note.txt")
    assert (tmp_path / "note.txt").read_text() == "hello\n"
