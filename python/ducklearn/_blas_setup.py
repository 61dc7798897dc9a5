"""Pick OpenBLAS's kernel family before the library loads.

scipy-openblas32 chooses its kernels at load time from the CPU model; on AVX-512 CPUs it
does not know (e.g. AMD Zen 4/5) it falls back to AVX2 ("Haswell") kernels, which run our
batch GEMMs about 2x slower than its AVX-512 ("SkylakeX") ones (benchmarks/RESULTS.md).
OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded, so this must run before
``ducklearn._core`` is imported. An explicit OPENBLAS_CORETYPE (or DUCKLEARN_BLAS_CORETYPE)
is always respected.
"""

from __future__ import annotations

import os
import sys

_AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_openblas_kernels() -> None:
    if not sys.platform.startswith("linux") or "OPENBLAS_CORETYPE" in os.environ:
        return
    wanted = os.environ.get("DUCKLEARN_BLAS_CORETYPE", "auto")
    if wanted == "keep":
        return
    if wanted != "auto":
        os.environ["OPENBLAS_CORETYPE"] = wanted
    elif _AVX512 <= _cpu_flags():
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
