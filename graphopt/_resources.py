"""Where the built-in data (pipelines in `passes/`, rules in `patterns/`) lives.

In a wheel they are shipped as `graphopt/_builtin/{passes,patterns}`; in a source checkout
(editable install, tests) they are the top-level `passes/` and `patterns/` folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def builtin_dir(kind: str) -> Path:
    """The folder of built-in `kind` files ("passes" or "patterns")."""
    shipped = _PACKAGE / "_builtin" / kind
    if shipped.is_dir():
        return shipped
    checkout = _PACKAGE.parent / kind
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"graphopt's built-in {kind}/ folder is missing from the installation")
