"""The README/REPORT tables are exactly what jobs/report.py generates from outs/."""

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
