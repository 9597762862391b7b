"""`graphopt`'s lazy attributes (078d642) answer only names an attribute can have (H235).

078d642 made `graphopt.__getattr__` import `graphopt.<name>` for any name not starting with
'__', so that `graphopt.ir` works without `import graphopt.ir`. A name that is no identifier
went to `importlib.import_module` as it was: `getattr(graphopt, "ir.model_io")` gave the
module graphopt.ir.model_io, and `hasattr(graphopt, ".x")` or `hasattr(graphopt, "ir..x")`
raised ModuleNotFoundError (hasattr catches only AttributeError; a module's `__getattr__` is
to raise that). The parent of 078d642 raised AttributeError for all of them, and now does
again. Subpackages and the public names load as before (the controls).

The names load on first use, so type checkers and IDEs see them only through the
`if TYPE_CHECKING:` imports, which 078d642 wrote for all but `merge` and `split`: mypy typed
`graphopt.merge` and `graphopt.split` as Any (`graphopt.quantize` as its function). Every
public name is imported there now.
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import graphopt

ODD_NAMES = ["ir.model_io", "analysis.dominators", ".x", "ir..x", "ir.", "a b", "a-b", ""]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_name_that_is_no_identifier_is_no_attribute(name: str) -> None:
    assert hasattr(graphopt, name) is False
    with pytest.raises(AttributeError) as raised:
        getattr(graphopt, name)
    assert str(raised.value) == f"module 'graphopt' has no attribute {name!r}"


def test_subpackages_and_public_names_still_load() -> None:  # (passes on both)
    assert isinstance(graphopt.ir, types.ModuleType) and callable(graphopt.ir.load)
    assert isinstance(graphopt.analysis, types.ModuleType)
    assert callable(graphopt.analysis.post_dominator_tree)
    assert issubclass(graphopt.PipelineError, graphopt.GraphoptError)
    assert hasattr(graphopt, "nosuch") is False


def _type_checking_imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    names.update(a.asname or a.name for a in statement.names)
    return names


def test_type_checkers_see_every_public_name() -> None:
    tree = ast.parse(Path(graphopt.__file__).read_text(encoding="utf-8"))
    public = set(graphopt.__all__) - {"__version__"}
    assert public - _type_checking_imports(tree) == set()
