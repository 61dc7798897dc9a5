"""The one writer of ``benchmarks/RESULTS.md``: each benchmark script owns the section between
its ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers and leaves the others alone."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, section: str, begin: str, end: str) -> None:
    """Replace the text from ``begin`` to ``end`` (markers included) with ``section``, which
    carries both markers, or append it when the file has no such section yet."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# ducklearn benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
