"""The README/REPORT tables are exactly what jobs/report.py generates from outs/."""

import re
import subprocess
import sys

from conftest import REPO


def test_report_tables_match_outs():
    proc = subprocess.run([sys.executable, "jobs/report.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_every_figure_the_report_shows_exists():
    import re

    text = (REPO / "REPORT.md").read_text()
    figures = re.findall(r"\]\((outs/[^)]+\.png)\)", text)
    assert figures
    missing = [f for f in figures if not (REPO / f).is_file()]
    assert not missing, missing


def layout_paths(readme: str) -> list[str]:
    """The paths the README's layout block names: `dir/a.py b.py   description` lines, indented lines
    relative to the folder above them, and files after the first relative to the first's folder."""
    block = readme.split("<!-- layout")[1].split("```")[1]
    paths, parent = [], ""
    for line in block.strip("\n").splitlines():
        names = re.split(r"\s{2,}", line.strip())[0].split()
        if line.startswith("  "):
            base = parent
        else:
            base = names[0].rstrip("/").rpartition("/")[0]
            parent = names[0].rstrip("/")
        paths += [names[0] if not line.startswith("  ") else f"{base}/{names[0]}"]
        paths += [f"{base}/{n}".lstrip("/") for n in names[1:]]
    return paths


def test_the_readme_layout_matches_the_tracked_files():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    tracked = [t for t in tracked if not t.startswith("outs/")] + ["outs/README.md"]
    named = layout_paths((REPO / "README.md").read_text())
    files = {p for p in named if not p.endswith("/")}
    folders = {p for p in named if p.endswith("/")}
    assert "src/cifarae/engine.py" in files and "src/cifarae/codec/" in folders  # the parser reads the block
    assert not [p for p in files if p not in tracked], "named but not tracked"
    assert not [d for d in folders if not any(t.startswith(d) for t in tracked)], "folders that hold nothing"
    unnamed = [t for t in tracked if t not in files and not any(t.startswith(d) for d in folders)]
    assert not unnamed, f"tracked but missing from the README's layout: {unnamed}"
