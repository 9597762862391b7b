"""H213: README claims checked against the code and the results files, beyond the earlier
README tests (test_readme, test_h138_readme_python, test_h147_readme_figures,
test_h171_readme_claims, test_s17_readme_results_render).

- The fusion table's `fold-batchnorm` row says which per-channel ops fold into Conv and which
  into ConvTranspose: Div and Sub after a ConvTranspose stay (no rule for them); the row said
  Mul/Div/Add/Sub into both.
- The kernels paragraph names every rule that has a kernel (`patterns.kernels.KERNELS`); it
  named Conv+BN and HardSwish only, after kernels for Conv·c + d and the input Add/Mul folds.
- The multi-task table is what `bench_multitask.table` renders from `results/multitask.json`
  (all but the set's label, which the README spells out), and the sentence on how far the
  speed-up runs above the MACs ratio quotes that file ("a few percent" was 6-13 %).
- What the README's test command installs (`pip install -e '.[dev]'`) covers what the tests
  and the library import unguarded (scipy was missing from the dev extra).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import graphopt
from graphopt.patterns.kernels import KERNELS
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"


def _text() -> str:
    return " ".join(README.read_text(encoding="utf-8").split())


# ------------------------------------------------------------------ fold-batchnorm's row

AFFINE_OPS = ("Mul", "Div", "Add", "Sub")


def _conv_then(conv: str, op: str):  # type: ignore[no-untyped-def]
    """conv(x, W, B) then `op` by a per-output-channel constant (positive, so Div is defined)."""
    rng = np.random.default_rng(0)
    if conv == "Conv":
        out, weight = "float[1,2,7,7]", rng.standard_normal((2, 4, 2, 2))
    else:
        out, weight = "float[1,2,9,9]", rng.standard_normal((4, 2, 2, 2))
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,8,8] x) => ({out} y) {{
          t = {conv}(x, W, B)
          y = {op}(t, c)
        }}""",
        {
            "W": weight.astype(np.float32),
            "B": rng.standard_normal(2).astype(np.float32),
            "c": (rng.random((1, 2, 1, 1)) + 0.5).astype(np.float32),
        },
    )


def _folded(conv: str) -> set[str]:
    folded = set()
    for op in AFFINE_OPS:
        model = _conv_then(conv, op)
        out = graphopt.optimize(model)
        assert_same_outputs(model, out, feeds(model))
        if ops(out) == [conv]:
            folded.add(op)
        else:
            assert ops(out) == [conv, op], ops(out)
    return folded


def test_the_fold_batchnorm_row_says_which_per_channel_ops_fold_into_which_conv():
    m = re.search(r"per-channel ([A-Za-z/]+) into Conv, ([A-Za-z/]+) into ConvTranspose", _text())
    assert m, "README's fold-batchnorm row no longer says what folds into Conv and ConvTranspose"
    stated = {"Conv": set(m.group(1).split("/")), "ConvTranspose": set(m.group(2).split("/"))}
    assert {conv: _folded(conv) for conv in stated} == stated


# ------------------------------------------------------------------ kernels


def test_the_kernels_paragraph_names_every_rule_with_a_kernel():
    text = _text()
    start = text.index("The hottest built-in rules also have kernels")
    paragraph = text[start : text.index("A kernel is used only while its rule is unchanged", start)]
    named = set(re.findall(r"`([a-z]+(?:-[a-z]+)*)`", paragraph))
    assert named == set(KERNELS)
    assert "proves that the engine refuses the anchor" in paragraph


# ------------------------------------------------------------------ multi-task table

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_multitask  # noqa: E402 - benchmarks/ is a folder of scripts, not a package


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _multitask_rows() -> list[dict]:
    return json.loads((RESULTS / "multitask.json").read_text(encoding="utf-8"))


def test_the_multitask_table_is_what_bench_multitask_renders_from_its_json():
    rendered = bench_multitask.table(_multitask_rows()).splitlines()
    header, rows = rendered[0], rendered[2:]
    lines = README.read_text(encoding="utf-8").splitlines()
    at = lines.index(header)
    shown = lines[at + 2 : at + 2 + len(rows)]
    assert len(shown) == len(rows) and lines[at + 2 + len(rows)].strip() == ""
    for readme_row, row in zip(shown, rows, strict=True):
        assert _cells(readme_row)[1:] == _cells(row)[1:]  # the set's label is spelled out


def test_the_speedup_above_the_macs_ratio_is_quoted_from_the_json():
    m = re.search(
        r"\((\d+)–(\d+) % above their ratio here, as the models that share nothing gain too: "
        r"(\d+) % in this run\)",
        _text(),
    )
    assert m, "README's multi-task notes no longer quote the speed-up against the MACs ratio"
    low, high, alone = map(int, m.groups())
    above = {
        r["set"]: round(100 * (r["speedup"] / (r["gmacs_separate"] / r["gmacs_merged"]) - 1))
        for r in _multitask_rows()
    }
    sharing = [v for k, v in above.items() if k != "det+ocr"]
    assert (min(sharing), max(sharing), above["det+ocr"]) == (low, high, alone)


# ------------------------------------------------------------------ the test command's installs

# Imported by the tests, not installed by `pip install -e '.[dev]'` (H213: on a fresh venv the
# README's test command stopped at collection, "No module named 'scipy'", until scipy joined the
# dev extra). A new entry means another fresh machine that cannot run the tests.
KNOWN_UNDECLARED: dict[str, str] = {}


def _declared() -> set[str]:
    """The distributions `pip install -e '.[dev]'` brings: the project's dependencies and
    extras, and (installed here) what they require in turn, extras left out."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: pytest's own tomli
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        wanted += extra

    def name(requirement: str) -> str:
        found = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert found, requirement
        return re.sub(r"[-_.]+", "-", found.group(0)).lower()

    declared: set[str] = set()
    while wanted:
        dist = name(wanted.pop())
        if dist in declared:
            continue
        declared.add(dist)
        try:
            requires = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:  # an extra not installed (tensorrt)
            continue
        wanted += [r for r in requires if "extra" not in r.partition(";")[2]]
    return declared


def _guarded(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside a `try` that catches ImportError (or wider) or under
    `if TYPE_CHECKING:`: an absent module there is handled."""
    handled = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    out: set[int] = set()
    for node in ast.walk(tree):
        body: list[ast.stmt] = []
        if isinstance(node, ast.Try):
            names = {
                n.id
                for h in node.handlers
                for n in ast.walk(h.type if h.type else ast.Name("BaseException"))
                if isinstance(n, ast.Name)
            }
            if names & handled:
                body = node.body
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            body = node.body
        for stmt in body:
            out.update(id(n) for n in ast.walk(stmt))
    return out


STDLIB = set(sys.stdlib_module_names) | {"tomllib"}  # 3.11's, imported by version on 3.10


def _providers() -> dict[str, set[str]]:
    """top-level module -> the installed distributions that hold it, from their file lists
    (Python 3.10's packages_distributions reads top_level.txt, which numpy 2 has none of)."""
    out: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        for file in dist.files or []:
            top = file.parts[0]
            if top.endswith((".dist-info", ".egg-info", ".data")) or top in ("..", "__pycache__"):
                continue
            out.setdefault(
                top.split(".")[0] if top.endswith((".py", ".so", ".pth")) else top, set()
            ).add(name)
    return out


def undeclared_imports() -> dict[str, set[str]]:
    """top-level module -> files that import it unguarded, for modules of no distribution
    `_declared` holds (or of none installed here)."""
    declared = _declared()
    providers = _providers()
    local = {"graphopt", "tests", "conftest"} | {
        p.stem for folder in ("tests", "benchmarks") for p in (ROOT / folder).glob("*.py")
    }
    found: dict[str, set[str]] = {}
    for folder in ("graphopt", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            guarded = _guarded(tree)
            for node in ast.walk(tree):
                if id(node) in guarded:
                    continue
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in STDLIB or top in local:
                        continue
                    if not providers.get(top, set()) & declared:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.slow
def test_what_the_tests_import_is_what_the_readme_test_command_installs():
    found = undeclared_imports()
    new = {m: sorted(files) for m, files in found.items() if m not in KNOWN_UNDECLARED}
    assert not new, f"imported without a declared distribution (pyproject.toml): {new}"


def test_the_import_reader_finds_an_unguarded_import_and_skips_a_guarded_one(tmp_path):
    tree = ast.parse(
        "import numpy\ntry:\n    import scipy\nexcept ImportError:\n    scipy = None\n"
        "if TYPE_CHECKING:\n    import torch\ndef f():\n    import onnx\n"
    )
    guarded = _guarded(tree)
    imported = [
        n.names[0].name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import) and id(n) not in guarded
    ]
    assert sorted(imported) == ["numpy", "onnx"]


# ------------------------------------------------------------------ the Results prose

sys.path.insert(0, str(ROOT / "benchmarks"))
import render_results  # noqa: E402


def _peers() -> dict:
    return json.loads((RESULTS / "peers.json").read_text(encoding="utf-8"))


def _bench() -> dict:
    return json.loads((RESULTS / "optimize_time.json").read_text(encoding="utf-8"))


def _as_quoted(quoted: str, value: float) -> bool:
    """`quoted` is `value` as written, to the quoted number's decimals."""
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return f"{value:.{decimals}f}" == quoted


def _results_prose() -> str:
    text = README.read_text(encoding="utf-8")
    text = re.sub(r"<!-- results-table.*?<!-- /results-table -->", "", text, flags=re.S)
    return " ".join(text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0].split())


def _latency(model: str, tool: str, level: str, key: str = "ratio") -> float:
    return float(_peers()["models"][model]["tools"][tool]["latency"][level][key])


def _quote(pattern: str) -> tuple[str, ...]:
    m = re.search(pattern, _results_prose())
    assert m, f"README's Results section no longer says: {pattern}"
    return m.groups()


def test_the_results_prose_quotes_the_peer_comparison():
    """Every figure of the Results prose taken from peers.json is the file's (a rerun of the
    comparison changes the rendered table; this makes the sentences around it follow)."""
    peers = _peers()["models"]
    graphopt_tools = [t for t in render_results.README_TOOLS if t.startswith("graphopt:")]
    others = [t for t in render_results.README_TOOLS if t != "original" and t not in graphopt_tools]
    (bound,) = _quote(r"Every graphopt output is within ([\d.e-]+) of the original")
    worst = max(
        v
        for m in peers.values()
        for t in graphopt_tools
        for v in m["tools"][t]["max_diff"].values()
    )
    assert float(bound) == float(f"{worst:.1e}")
    ours_lo, ours_hi, peers_lo, peers_hi = _quote(
        r"On layout_cdla and ppocr_det graphopt's outputs run in ([\d.]+)–([\d.]+) of the "
        r"original's time at `ORT_ENABLE_ALL`, the peers' in ([\d.]+)–([\d.]+)\."
    )
    ours = [_latency(m, t, "all") for m in ("layout_cdla", "ppocr_det") for t in graphopt_tools]
    theirs = [_latency(m, t, "all") for m in ("layout_cdla", "ppocr_det") for t in others]
    assert _as_quoted(ours_lo, min(ours)) and _as_quoted(ours_hi, max(ours))
    assert _as_quoted(peers_lo, min(theirs)) and _as_quoted(peers_hi, max(theirs))
    before, after = peers["common_det"]["tools"]["original"], peers["common_det"]["tools"]
    (minus,) = _quote(r"common_det's `default` output is the original minus (\d+) nodes")
    assert (
        int(minus)
        == before["nodes"]["non_constant"] - after["graphopt:default"]["nodes"]["non_constant"]
    )
    (basic,) = _quote(r"basic level turns the original into a (\d+)-node graph")
    assert int(basic) == after["ort:basic"]["nodes"]["non_constant"]
    quoted = _quote(
        r"measured ([\d.]+) \(p25–p75 ([\d.]+)–([\d.]+)\) and ([\d.]+) \(([\d.]+)–([\d.]+)\), "
        r"the peers ([\d.]+)–([\d.]+) \(onnxsim ([\d.]+)–([\d.]+)\)"
    )
    figures = [
        _latency("common_det", t, "all", k)
        for t in ("graphopt:default", "graphopt:tensorrt")
        for k in ("ratio", "ratio_p25", "ratio_p75")
    ]
    peer_ratios = [_latency("common_det", t, "all") for t in others]
    figures += [min(peer_ratios), max(peer_ratios)]
    figures += [_latency("common_det", "onnxsim", "all", k) for k in ("ratio_p25", "ratio_p75")]
    assert all(_as_quoted(q, v) for q, v in zip(quoted, figures, strict=True)), (quoted, figures)
    ours_disable, original_disable = _quote(
        r"`ORT_DISABLE_ALL` ([\d.]+) against the original's ([\d.]+)\."
    )
    assert _as_quoted(ours_disable, _latency("common_det", "graphopt:default", "disable"))
    assert _as_quoted(original_disable, _latency("common_det", "original", "disable"))
    (within,) = _quote(
        r"`ort-cpu` at `ORT_DISABLE_ALL` is within ([\d.]+)× of the original at `ORT_ENABLE_ALL`"
    )
    assert _as_quoted(within, max(_latency(m, "graphopt:ort-cpu", "disable") for m in peers))
    (fusions,) = _quote(r"`ort-fusions` alone \(the NCHW graph\) is ([\d.]+)× on common_det")
    assert _as_quoted(fusions, _latency("common_det", "graphopt:ort-fusions", "disable"))


def test_the_results_prose_quotes_optimize_time_json():
    bench = _bench()
    rows = {r["model"]: r["summary"] for r in bench["rows"] if r["pipeline"] == "default"}
    models = ("common_det", "layout_cdla", "ppocr_det")
    quoted = _quote(
        r"`results/optimize_time.json` holds a run of ([\d-]+ [\d:]+) \((\d+) rounds, floors "
        r"([\d.]+) / ([\d.]+) / ([\d.]+) ms on common_det / layout_cdla / ppocr_det\): `optimize` "
        r"alone ([\d.]+)× / ([\d.]+)× / ([\d.]+)×, with the save ([\d.]+)× / ([\d.]+)× / "
        r"([\d.]+)× \(optimize \+ save ([\d.]+), ([\d.]+) and ([\d.]+) ms\)"
    )
    assert bench["machine"]["date_utc"].startswith(quoted[0])
    assert {rows[m]["runs"] for m in models} == {int(quoted[1])}
    figures = [rows[m]["floor_median_s"] * 1e3 for m in models]
    figures += [rows[m]["part_ratio"] for m in models]
    figures += [rows[m]["ratio"] for m in models]
    figures += [rows[m]["tool_median_s"] * 1e3 for m in models]
    assert all(_as_quoted(q, v) for q, v in zip(quoted[2:], figures, strict=True)), quoted
    per_pass = bench["per_pass_seconds"]
    for model in ("ppocr_det", "layout_cdla"):
        part, total = _quote(
            model + r"[^.]*? fold-batchnorm takes ([\d.]+) of `optimize_with_report`'s ([\d.]+) ms"
            if model == "ppocr_det"
            else model + r" ([\d.]+) of ([\d.]+) ms \(94 Conv\+BN folds\)"
        )
        breakdown = per_pass[f"{model}/default"]
        assert _as_quoted(part, breakdown["fold-batchnorm"] * 1e3)
        assert _as_quoted(total, breakdown["(total)"] * 1e3)


# ------------------------------------------------------------------ defaults the README states


def test_the_defaults_the_readme_states_are_the_codes(tmp_path, capsys):
    import inspect

    import onnx.parser

    from graphopt.cli import build_parser, main
    from graphopt.quant.api import DEFAULT_ACCURACY_TARGET

    text = _text()
    assert (
        "The default, in the CLI and the Python API alike, is `minmax` with an accuracy target "
        "of 0.04" in text
    )
    assert "Targets: `tensorrt` (the default;" in text
    assert "By default both models run at onnxruntime's `ORT_ENABLE_ALL`" in text
    assert "`graphopt bench` times a model in onnxruntime at `ORT_ENABLE_ALL` too" in text
    parser = build_parser()
    quantize = parser.parse_args(["quantize", "m.onnx", "-o", "q.onnx"])
    assert (quantize.method, quantize.accuracy_target, quantize.target) == (
        "minmax",
        0.04,
        "tensorrt",
    )
    api = inspect.signature(graphopt.quantize).parameters
    assert (api["method"].default, api["target"].default) == ("minmax", "tensorrt")
    assert DEFAULT_ACCURACY_TARGET == 0.04
    assert parser.parse_args(["optimize", "m.onnx", "-o", "o.onnx"]).verify_level == ["all"]
    path = tmp_path / "relu.onnx"
    onnx.save(
        onnx.parser.parse_model(
            '<ir_version: 8, opset_import: ["" : 13]>\n'
            "g (float[1,4] x) => (float[1,4] y) { y = Relu(x) }"
        ),
        str(path),
    )
    capsys.readouterr()
    assert (
        main(["bench", str(path), "--runs", "1", "--warmup", "0", "--json", "--no-progress"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["level"] == "all"


def test_the_results_heading_names_the_runs_date_versions_and_commit():
    date, cores, ort, onnx_v, sim, slim, opt, commit = _quote(
        r"Measured on ([\d-]+) on a shared (\d+)-core x86 machine in a quiet hour \(onnxruntime "
        r"([\d.]+), onnx ([\d.]+), onnxsim ([\d.]+), onnxslim ([\d.]+), onnxoptimizer ([\d.]+); "
        r"graphopt at ([0-9a-f]+)\)"
    )
    for machine in (_peers()["machine"], _bench()["machine"]):
        versions = machine["versions"]
        assert machine["date_utc"].startswith(date) and machine["cpu_count"] == int(cores)
        assert machine["git_commit"] == commit
        for quoted, tool in [
            (ort, "onnxruntime"),
            (onnx_v, "onnx"),
            (sim, "onnxsim"),
            (slim, "onnxslim"),
            (opt, "onnxoptimizer"),
        ]:
            version = versions[tool].lstrip("v")
            assert version == quoted or version.startswith(quoted + "."), (tool, version)


# ------------------------------------------------------------------ the INT8 table

# Each row of the README's INT8 table (no script renders it: it gathers rows of several runs of
# quantize.md), with the passages of quantize.md its figures come from: the cells must be those
# passages' figures (peak RSS in GiB: the MiB there / 1024), and the passages must still be there.
INT8_ROWS = [
    (
        "common_det, ORT MinMax",
        ["ORT MinMax 1.10–1.12×, 484 MiB, 0.44–0.45×, 0.971"],  # run 10
        ("1.10–1.12", "484 MiB", "0.44–0.45×", "0.971 boxes"),
    ),
    (
        "common_det, graphopt default² (onnxruntime layout)",
        [  # run 12
            "common_det default (ort) **0.75×** budget (0.71× in a second invocation",
            "460–463 MiB, 0.41–0.51× latency, **0.971** boxes",
        ],
        ("0.71–0.75", "463 MiB", "0.41–0.51×", "**0.971** boxes"),
    ),
    (
        "common_det, graphopt entropy",
        [
            "| graphopt entropy (ort) | 2.72 | 1.31 | 500 | 0.43× | 0.846 |",
            "| graphopt entropy (ort) | 2.92 | 0.63 | 469 | 0.48× | 0.846 (was 0.846) |",  # run 7
        ],
        ("1.31", "500 MiB", "0.43×", "0.846 boxes"),
    ),
    (
        "ppocr_det, ORT MinMax",
        ["ORT MinMax 1.44–1.51×, 1549 MiB, 1.06–1.14×, 0.785"],  # run 10
        ("1.44–1.51", "1.51 GiB", "1.06–1.14×", "0.785 mask IoU"),
    ),
    (
        "ppocr_det, ORT Percentile (32 images)",
        ["| ORT Percentile (all 32 feeds) | 102.39 | 17.04 | 23018 | 1.20× | 0.799 |"],
        ("17.0", "22.5 GiB", "1.20×", "0.799 mask IoU"),
    ),
    (
        "ppocr_det, graphopt entropy",
        [
            "| graphopt entropy (ort) | 7.58 | 0.56 | 901 | 0.54× | 0.852 |",
            "| graphopt entropy (ort) | 39.65 | 0.75 | 705 | 0.48× | 0.855 (was 0.852) |",  # run 7
        ],
        ("0.56", "0.88 GiB", "0.54×", "0.855 mask IoU"),
    ),
    (
        "ppocr_det, graphopt entropy + keep-float 8 (full ranking)",
        [
            "| graphopt entropy (ort) keep-float 8 | 44.99 | 2.57 | 880 | 0.62× | 0.934 |",
            "| graphopt entropy (ort) keep-float 8 | 234.85 | 4.47 | 720 | 0.70× | 0.929 (was 0.934) |",
        ],
        ("2.57", "0.86 GiB", "0.62×", "0.929 mask IoU"),
    ),
    (
        "ppocr_det, graphopt default² (17 groups float)",
        ["ppocr_det default (ort) **17 groups float, 0.75×, 731 MiB, 0.65×, 0.925** mask IoU"],
        ("0.75", "0.71 GiB", "0.65×", "**0.925** mask IoU"),
    ),
]


def _mib(passages: list[str]) -> float:
    """The peak RSS in MiB the first passage gives (a table row's 4th cell, else 'N MiB')."""
    first = passages[0]
    if first.startswith("|"):
        return float(_cells(first)[3])
    found = re.search(r"(\d+)(?:–\d+)? MiB", " ".join(passages))
    assert found, passages
    return float(found.group(1))


@pytest.mark.parametrize(("label", "passages", "cells"), INT8_ROWS, ids=[r[0] for r in INT8_ROWS])
def test_an_int8_row_is_what_quantize_md_measured(label, passages, cells):
    source = " ".join((RESULTS / "quantize.md").read_text(encoding="utf-8").split())
    missing = [p for p in passages if " ".join(p.split()) not in source]
    assert not missing, f"quantize.md no longer says: {missing}"
    rows = [_cells(line) for line in README.read_text(encoding="utf-8").splitlines()]
    (row,) = [r[1:] for r in rows if r[0] == label]
    assert tuple(row) == cells
    rss, unit = cells[1].split()
    if unit == "GiB":  # the MiB of the source / 1024, to the decimals shown
        assert _as_quoted(rss, _mib(passages) / 1024)


def test_the_int8_table_has_the_rows_checked_here():
    lines = README.read_text(encoding="utf-8").splitlines()
    at = lines.index(
        "| | calibration × budget¹ | peak RSS | INT8 / FP32 latency | agreement with FP32 |"
    )
    labels = []
    for line in lines[at + 2 :]:
        if not line.startswith("|"):
            break
        labels.append(_cells(line)[0])
    assert labels == [r[0] for r in INT8_ROWS]
