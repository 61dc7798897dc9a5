"""Wheel smoke test: import, backend info, one prediction."""

import ducklearn
import ducklearn.backend
import numpy as np
from ducklearn import _core


def test_version_matches_core():
    assert ducklearn.__version__ == _core.__version__
    assert ducklearn.__version__.count(".") == 2


def test_backend_info_keys():
    info = ducklearn.backend.info()
    for key in ("version", "simd_target", "blas", "blas_threads", "threads", "cuda_compiled",
                "cuda_device"):
        assert key in info
    assert info["simd_target"] in ("generic", "avx2", "avx512")


def test_one_prediction():
    cfg = _core.OptimizerConfig()
    learner = _core.Learner(3, [1], ["identity"], "logistic", cfg)
    p = learner.predict(np.zeros((1, 3), dtype=np.float32))
    assert p.shape == (1, 1)
    assert abs(float(p[0, 0]) - 0.5) < 1e-6


def test_type_stubs_cover_the_native_module():
    """python/ducklearn/_core/*.pyi (pybind11-stubgen) must list every public native name:
    regenerate them with `pybind11-stubgen ducklearn._core -o python` after binding changes."""
    import ast
    import pathlib

    import ducklearn as pkg

    stub_dir = pathlib.Path(pkg.__file__).parent / "_core"
    for module, stub in [(_core, "__init__.pyi"), (_core.kernels, "kernels.pyi"),
                         (_core.features, "features.pyi"), (_core.cuda, "cuda.pyi")]:
        tree = ast.parse((stub_dir / stub).read_text())
        declared = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        declared |= {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                     for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                     if isinstance(t, ast.Name)}
        declared |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom)
                     for a in n.names}
        public = {name for name in dir(module) if not name.startswith("_")}
        assert public <= declared, f"{stub} is missing {sorted(public - declared)}"
