"""Every GraphoptError pickles and unpickles as it was (H237).

Exception pickles as `type(e)(*e.args)`, and a GraphoptError's args hold its message only, so
`OpsetConversionError(kind, reason, message)` could not be unpickled (TypeError: missing
'reason' and 'message') and `NonFiniteValues(what)` came back with its message wrapped in a
second one ('... (calibration values contain NaN or infinity (NaN))'). multiprocessing and
concurrent.futures pickle an error raised in a worker. Every subclass, in every module of the
package, is checked here: a new one whose `__init__` takes other arguments is named below.
"""

from __future__ import annotations

import copy
import importlib
import pickle
import pkgutil
from typing import Any

import pytest

import graphopt
from graphopt.errors import GraphoptError


def _all_subclasses() -> list[type[GraphoptError]]:
    for module in pkgutil.walk_packages(graphopt.__path__, "graphopt."):
        if module.name not in ("graphopt.__main__",):  # (runs the CLI)
            importlib.import_module(module.name)
    found: list[type[GraphoptError]] = []
    todo: list[type[GraphoptError]] = [GraphoptError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


# the errors whose __init__ takes other arguments than a message: how to make one
CUSTOM: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "graphopt.errors.PassError": (("bad",), {"pass_name": "fold", "node": "n", "op": "Conv"}),
    "graphopt.errors.OpsetConversionError": (
        ("misconverted", "a linear Upsample", "cannot convert: a linear Upsample"),
        {},
    ),
    "graphopt.quant.histogram.NonFiniteValues": (("NaN",), {}),
}

SUBCLASSES = _all_subclasses()


def _make(cls: type[GraphoptError]) -> GraphoptError:
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name in CUSTOM:
        args, kwargs = CUSTOM[name]
        return cls(*args, **kwargs)
    assert cls.__init__ is BaseException.__init__ or cls.__init__ in (
        c.__init__ for c in (GraphoptError, ValueError, Exception)
    ), f"{name} has its own __init__: add how to make one to CUSTOM"
    return cls("tensor 'w': something is wrong")


def test_the_known_errors_are_found() -> None:
    names = {f"{c.__module__}.{c.__qualname__}" for c in SUBCLASSES}
    assert set(CUSTOM) <= names
    assert {"graphopt.errors.LoadError", "graphopt.errors.OptionError"} <= names


@pytest.mark.parametrize("cls", SUBCLASSES, ids=lambda c: c.__qualname__)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(cls: type[GraphoptError], protocol: int) -> None:
    error = _make(cls)
    error.add_note("a note")
    back = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(back) is cls
    assert str(back) == str(error) and back.args == error.args
    assert back.__dict__ == error.__dict__  # PassError's node, OpsetConversionError's kind ...
    assert isinstance(back, GraphoptError)
    assert str(copy.deepcopy(error)) == str(error)


def test_opset_conversion_error_keeps_kind_and_reason() -> None:
    from graphopt.errors import OpsetConversionError

    back = pickle.loads(pickle.dumps(OpsetConversionError("local-functions", "r", "m")))
    assert (back.kind, back.reason, str(back)) == ("local-functions", "r", "m")
