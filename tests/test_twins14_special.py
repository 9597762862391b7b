"""One function says what a special file is (`model_io.special_file_kind`): `is_stream` (where
a save writes straight) and the loader's refusal of devices and sockets (`_refuse_special_file`)
each read the file's mode in their own way, and distill-targets --data said "(a device or
FIFO?)" where the kind is known."""

from __future__ import annotations

import os
import socket

import pytest


def test_special_file_kind_names_each_kind(tmp_path):
    from graphopt.ir.model_io import is_stream, special_file_kind

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "fifo")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "sock"))
        kinds = {
            name: special_file_kind(tmp_path / name)
            for name in ("fifo", "file", "link", "sock", "missing")
        }
    assert kinds == {
        "fifo": "a FIFO",
        "file": None,
        "link": "a FIFO",  # links followed
        "sock": "a socket",
        "missing": None,
    }
    assert special_file_kind(tmp_path) is None
    assert special_file_kind("/dev/null") == "a character device"
    assert special_file_kind("a\0b") is None  # refused by the system: nothing there
    assert [is_stream(tmp_path / n) for n in ("fifo", "file", "missing")] == [True, False, False]


@pytest.mark.parametrize(
    ("name", "kind"), [("fifo", "a FIFO"), ("/dev/null", "a character device")]
)
def test_distill_data_names_the_kind_of_special_file(tmp_path, name, kind):
    from graphopt.distill import DistillError, data_sources

    path = tmp_path / name if name == "fifo" else name
    if name == "fifo":
        os.mkfifo(path)
    with pytest.raises(DistillError) as e:
        data_sources(str(path))
    assert str(e.value) == f"{path}: is not a regular file or folder ({kind})"
