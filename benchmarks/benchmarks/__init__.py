"""asv benchmark suites for ducklearn (see benchmarks/README.md).

The workloads live one level up in ``benchmarks/workloads.py``, shared with the
pytest-benchmark files and ``compare.py``; this puts that directory on the import path.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parents[1])
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
