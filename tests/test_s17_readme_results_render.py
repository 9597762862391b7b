"""The README's results table is rendered from `benchmarks/results/peers.json`
(`render_results.py --readme`): the committed README holds exactly what the committed JSON
renders, and the rewrite touches nothing outside its markers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import render_results  # noqa: E402 - benchmarks/ is a folder of scripts, not a package

PEERS = ROOT / "benchmarks" / "results" / "peers.json"


def _peers() -> dict:
    return json.loads(PEERS.read_text(encoding="utf-8"))


def test_the_readme_table_is_what_the_committed_peers_json_renders():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert render_results.readme_block(_peers()) in readme


def test_the_block_holds_every_tool_of_the_table_with_three_models_per_cell():
    block = render_results.readme_block(_peers())
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    labels = [row.split("|")[1].strip() for row in rows[1:]]
    assert labels == list(render_results.README_TOOLS.values())
    for row in rows[1:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert all(c == "—" or c.count(" / ") == 2 for c in cells[1:]), row


def test_readme_rewrite_replaces_the_block_only(tmp_path):
    peers = _peers()
    before, after = "# title\n\ntext before\n\n", "\n\ntext after: ³ stays\n"
    readme = tmp_path / "README.md"
    readme.write_text(
        before + render_results.README_BEGIN + "\nold table\n" + render_results.README_END + after,
        encoding="utf-8",
    )
    peers_file = tmp_path / "peers.json"
    peers_file.write_text(json.dumps(peers), encoding="utf-8")
    out = tmp_path / "out"
    code = render_results.main(
        ["--peers", str(peers_file), "--optimize", str(tmp_path / "none.json"),
         "--out-dir", str(out), "--readme", str(readme)]
    )  # fmt: skip
    assert code == 0
    assert readme.read_text(encoding="utf-8") == before + render_results.readme_block(peers) + after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "out", "peers.json"]


def test_a_readme_without_the_markers_is_refused_and_left_alone(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        render_results.main(
            ["--peers", str(PEERS), "--out-dir", str(tmp_path / "out"), "--readme", str(readme)]
        )
    assert exc.value.code == 2
    assert "results-table" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == "# no markers here\n"


@pytest.mark.parametrize("n", [3, 10, 11, 20, 25])
def test_every_tool_of_the_chart_gets_its_own_colour(n):
    pytest.importorskip("matplotlib")
    colors = render_results.tool_colors(n)
    assert len(colors) == n and len(set(colors)) == n
