"""Running what may abort the process in a child Python, for the tests of models on which onnx's
shape inference or onnxruntime's loader die (SIGABRT, SIGSEGV): there an abort fails one test
(its exit status is the child's) instead of killing pytest.

`run_python` runs this interpreter with the given arguments, `run_code` a snippet (`python -c`),
`run_cli` graphopt's `cli.main`, `bench_once` one timed run of `graphopt bench` (a session: the
loader's inference); each hands back the finished process, output captured as text.
`stdout_of` is a snippet's output where it must exit 0, `one_line_refusal` the one stderr line
of a CLI refusal (exit 2). What the output should say is each test's own assertion.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI_MAIN = "import sys\nfrom graphopt import cli\nsys.exit(cli.main(sys.argv[1:]))"


def run_python(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python *argv` in a child process of this interpreter, its output captured as text."""
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout)


def run_code(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -c code *args` in a child process (`sys.argv[1:]` is `args`)."""
    return run_python("-c", code, *args, timeout=timeout)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`graphopt *args` (graphopt.cli.main) in a child process."""
    return run_code(CLI_MAIN, *args, timeout=timeout)


def bench_once(path: str | Path) -> subprocess.CompletedProcess[str]:
    """`graphopt bench --runs 1 --warmup 0 path` in a child process: an onnxruntime session
    loads the model, which is where its loader aborts."""
    return run_cli("bench", "--runs", "1", "--warmup", "0", str(path))


def stdout_of(code: str, *args: str, timeout: float = 300) -> str:
    """What `python -c code *args` printed; it must exit 0 (the message: its stderr's tail)."""
    done = run_code(code, *args, timeout=timeout)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    return done.stdout


def one_line_refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The line a CLI run refused with: it must exit 2 with exactly one line on stderr."""
    assert done.returncode == 2, (done.returncode, done.stderr[-300:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]
