"""The main job end to end, small: it must learn, beat the legacy baseline and checkpoint."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from ducklearn.learn.checkpoint import read_latest
from ducklearn.quickstart import run


def test_quickstart_pipeline_beats_the_legacy_baseline(tmp_path):
    out = io.StringIO()
    summary = run(n=20_000, seed=1, workdir=str(tmp_path), quiet=True, out=out)
    text = out.getvalue()
    assert "Bayes accuracy" in text and "checkpoint:" in text
    assert summary["learned"] == 18_000 and summary["rejected"] == 0
    assert summary["model_accuracy"] > summary["legacy_accuracy"] + 0.08
    assert summary["model_accuracy"] > 0.78
    ckpt = read_latest(os.path.join(str(tmp_path), "checkpoints"))
    assert ckpt is not None and ckpt.path == summary["checkpoint"]
    assert ckpt.manifest["counters"]["learned"] == 18_000
    # Three promotions with computed versions and lineage, approved by a second principal,
    # and an intact audit chain.
    assert summary["promotions"] == ["1.0.0", "1.1.0", "1.2.0"]
    assert summary["lineage"] == ["1.2.0", "1.1.0", "1.0.0"]
    assert summary["audit_chain_ok"] and summary["audit_events"] >= 10
    from ducklearn.registry import Registry

    reg = Registry(os.path.join(str(tmp_path), "registry"), actor="auditor")
    moves = reg.history("suggestion-acceptance", "production")
    assert [m.to_version for m in moves] == ["1.0.0", "1.1.0", "1.2.0"]
    reg.close()
    # The frozen production endpoint was served from the registry and hot-swapped.
    assert 0.6 < summary["production_accuracy"] < summary["model_accuracy"] + 0.05


def test_cli_entry_points():
    info = subprocess.run([sys.executable, "-m", "ducklearn.cli", "info"], capture_output=True,
                          text=True, check=True)
    assert json.loads(info.stdout)["simd_target"] in ("generic", "avx2", "avx512")
    bad = subprocess.run([sys.executable, "-m", "ducklearn.cli", "quickstart", "--n", "10"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "must be >= 1000" in bad.stderr


def test_entity_schema_bins_come_from_the_history_only():
    import numpy as np
    import pytest
    from ducklearn.datasets import make_entity_stream
    from ducklearn.quickstart import entity_columns, entity_schema

    stream = make_entity_stream(2_000, seed=0)
    plain = entity_schema(stream, bins=None)
    assert all(getattr(f, "bins", None) is None for f in plain.fields)
    binned = entity_schema(stream, bins=8, history=300)
    assert binned == plain.with_quantile_bins(entity_columns(stream, 0, 300), n_bins=8)
    numeric = [f for f in binned.fields if f.kind == "numeric"]
    assert len(numeric) == len(stream.numeric_names) and all(f.bins for f in numeric)
    # Edges are quantiles of the (log1p) history values: the later records play no part.
    f = numeric[0]
    hist = np.asarray(entity_columns(stream, 0, 300)[f.name], dtype=float)
    np.testing.assert_allclose(f.bins, np.unique(np.quantile(
        np.log1p(hist) if f.log1p else hist, np.linspace(0, 1, 9))))
    assert entity_schema(stream) == plain.with_quantile_bins(entity_columns(stream, 0, 200))
    with pytest.raises(ValueError, match="bins must be None or an integer"):
        entity_schema(stream, bins=0)
    with pytest.raises(ValueError, match="history must be an integer"):
        entity_schema(stream, history=5_000)
