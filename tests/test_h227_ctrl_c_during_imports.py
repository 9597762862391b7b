"""Ctrl-C while the `graphopt` command imports onnx and numpy is one line and exit 130 (H227).

The console script imports `graphopt.cli` before it calls `run_cli`, whose handler turns a
KeyboardInterrupt into "graphopt: interrupted; nothing was written"; but importing any module
of the package ran `graphopt/__init__.py`, which imported graphopt.api and with it onnx and
numpy (~1.5 s), and an interrupt there was a KeyboardInterrupt traceback. Now `import graphopt`
and `import graphopt.cli` import neither, so the heavy imports start inside `run_cli`. The
interrupt is made by an `onnx` package that raises KeyboardInterrupt when imported (first on
the path), where a timed SIGINT cannot be aimed. `import graphopt` keeps its API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# what the `graphopt` console script runs (pyproject: graphopt = "graphopt.cli:run_cli")
SCRIPT = "import sys\nfrom graphopt.cli import run_cli\nsys.exit(run_cli())\n"


def _run(args: list[str], fake: Path | None) -> subprocess.CompletedProcess[str]:
    path = [str(fake)] if fake else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPO)])}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )


def _interrupting_onnx(tmp_path: Path) -> Path:
    fake = tmp_path / "fake"
    (fake / "onnx").mkdir(parents=True)
    (fake / "onnx" / "__init__.py").write_text("raise KeyboardInterrupt\n")
    return fake


def test_console_script_interrupted_while_onnx_imports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _run(["-c", SCRIPT, "optimize", "m.onnx", "-o", "o.onnx"], _interrupting_onnx(tmp_path))
    assert done.returncode == 130, done.stderr
    assert done.stderr == "graphopt: interrupted; nothing was written\n"


def test_python_m_graphopt_interrupted_while_onnx_imports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _run(["-m", "graphopt", "inspect", "m.onnx"], _interrupting_onnx(tmp_path))
    assert done.returncode == 130, done.stderr
    assert done.stderr == "graphopt: interrupted; nothing was written\n"


def test_import_graphopt_keeps_its_api() -> None:
    code = (
        "import sys\n"
        "import graphopt, graphopt.cli\n"
        "print(sorted(m for m in ('onnx', 'numpy') if m in sys.modules))\n"
        "from graphopt import PipelineError, optimize\n"
        "print(optimize is graphopt.optimize, issubclass(PipelineError, graphopt.GraphoptError))\n"
        "print(graphopt.errors.SaveError is graphopt.SaveError, callable(graphopt.quantize))\n"
        "print(callable(graphopt.merge), graphopt.ir.load.__name__, sorted(graphopt.__all__)[:2])\n"
        "try:\n    graphopt.nosuch\nexcept AttributeError as e:\n    print(e)\n"
    )
    done = _run(["-c", code], None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[]",
        "True True",
        "True True",
        "True load ['BackendError', 'GraphoptError']",
        "module 'graphopt' has no attribute 'nosuch'",
    ]
