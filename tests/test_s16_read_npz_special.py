"""read_npz (bench --backend tensorrt --inputs, build --calib): a FIFO or a folder is a
ValueError at once; numpy's read of a FIFO waited for a writer for ever."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "feeds.npz"
    os.mkfifo(fifo)
    code = (
        "import sys\nfrom graphopt.commands._common import read_npz\n"
        "try:\n    read_npz(sys.argv[1])\nexcept ValueError as e:\n    print(e)\n"
    )
    try:
        run = subprocess.run(
            [sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("read_npz waited on the FIFO")
    assert run.stdout.strip() == "it is not a regular file (a FIFO)", run


def test_a_folder_is_refused(tmp_path):
    from graphopt.commands._common import read_npz

    with pytest.raises(ValueError, match=r"^it is a folder, not an \.npz file$"):
        read_npz(tmp_path)
