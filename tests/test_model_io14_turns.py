"""Two saves with external data to one path at once: the one whose data file the other
replaced meanwhile put its model naming its data under a name of its own (m.onnx-1.data), and
when the other's model went in after that, nothing named m.onnx-1.data any more: it stayed
for good. Saves into one folder now put their files in place one at a time (a flock on the
folder), so the second waits for the first and the folder holds one model and its data."""

from __future__ import annotations

import threading
from pathlib import Path

import onnx
import onnx.parser
from onnx import numpy_helper

import graphopt.ir.model_io as model_io
from graphopt.ir import save_model
from tests.models_util import add_model


def test_a_save_racing_another_to_one_path_leaves_no_orphan_data_file(tmp_path, monkeypatch):
    """Save A has replaced m.onnx.data by its data when save B starts; B replaces it again
    and stops before putting its model naming it, A finishes, then B does: the interleaving
    that left A's data as m.onnx-1.data, named by no model. B may wait for A now (here at most
    2 s: then A goes on as before)."""
    path = tmp_path / "m.onnx"
    save_model(add_model(1), path, external_data=True)
    a_thread = threading.current_thread()
    b_at_last_put, a_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def save_b() -> None:
        try:
            save_model(add_model(3), path, external_data=True)
        except BaseException as e:  # reported by the test, not lost in the thread
            errors.append(e)

    b = threading.Thread(target=save_b)
    real_link, real_put = model_io._replace_by_link, model_io._put_model_file

    def replace_by_link(fresh, final, mode):  # type: ignore[no-untyped-def]
        ours = real_link(fresh, final, mode)
        if threading.current_thread() is a_thread and not b.is_alive():
            b.start()
            b_at_last_put.wait(2)  # (never set where B waits for A's turn to end)
        return ours

    def put_model_file(file, at, target):  # type: ignore[no-untyped-def]
        if threading.current_thread() is b and Path(file).name == ".graphopt-model":
            b_at_last_put.set()
            a_done.wait(10)
        return real_put(file, at, target)

    monkeypatch.setattr(model_io, "_replace_by_link", replace_by_link)
    monkeypatch.setattr(model_io, "_put_model_file", put_model_file)
    save_model(add_model(2), path, external_data=True)
    a_done.set()
    b.join(30)
    monkeypatch.undo()
    assert not b.is_alive() and not errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    loaded = onnx.load(str(path))
    assert float(numpy_helper.to_array(loaded.graph.initializer[0])[0, 0]) == 3  # B's, last


def test_saves_into_one_folder_take_turns(tmp_path):
    """While one save holds its folder's turn, another waits for it (the same process's other
    thread here; another process alike)."""
    path = tmp_path / "m.onnx"
    save_model(add_model(1), path, external_data=True)
    order: list[str] = []
    with model_io._saves_take_turns(tmp_path):
        other = threading.Thread(
            target=lambda: (save_model(add_model(2), path, external_data=True), order.append("b"))
        )
        other.start()
        other.join(1)
        order.append("a")
    other.join(30)
    assert order == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
