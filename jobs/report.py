"""Regenerate the tables of README.md, REPORT.md and docs/*.md from the files under outs/, so they cannot drift.

    python jobs/report.py            # rewrites the blocks between <!-- table:NAME --> markers
    python jobs/report.py --check    # exit 1 if README.md / REPORT.md / docs/*.md are out of date

Each table reads files under outs/; a missing file leaves a note saying which command makes it. The tables
live in jobs/doc_tables/, one module per document (README.md, REPORT.md, each research log under docs/), each
with its TABLES: marker name -> (function, the command that makes its files).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from doc_tables import autoencoder_log, classifier_log, codec_log, pipeline_log, readme
from doc_tables import report as report_md
from doc_tables.shared import REPO

TABLES = {
    **readme.TABLES,
    **report_md.TABLES,
    **autoencoder_log.TABLES,
    **classifier_log.TABLES,
    **codec_log.TABLES,
    **pipeline_log.TABLES,
}


def render(text: str) -> str:
    def fill(match):
        name = match.group(1)
        fn, command = TABLES[name]
        body = fn() or f"_(not produced yet: {command})_"
        return f"<!-- table:{name} -->\n{body}\n<!-- /table:{name} -->"

    return re.sub(r"<!-- table:(\w+) -->.*?<!-- /table:\1 -->", fill, text, flags=re.S)


# every file with generated tables: the README, the report, and the research log under docs/
DOCUMENTS = [REPO / "README.md", REPO / "REPORT.md", *sorted((REPO / "docs").glob("*.md"))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path, default=DOCUMENTS)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    stale = []
    for path in args.files:
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        sys.exit(f"out of date: {', '.join(stale)}; run python jobs/report.py")


if __name__ == "__main__":
    main()
