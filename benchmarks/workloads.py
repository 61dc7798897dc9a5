"""Workload definitions shared by the asv suites, the pytest-benchmark files and compare.py.

Everything here is seeded and network-free. The module is append-only: once a workload has
produced published numbers, its definition (data, model, hyperparameters) does not change;
a new variant gets a new name, so asv history and RESULTS.md stay comparable over time.

The contenders' models are built here too, so that every harness measures the same thing.
"""

from __future__ import annotations

import functools
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ducklearn.datasets import ENTITY_CATEGORIES, ENTITY_NUMERIC, EntityStream, make_entity_stream

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

#: The headline workload: 200,000 entity examples, seed 0, concept change halfway.
ENTITY_N = 200_000
ENTITY_SEED = 0
#: Columns of the entity stream: 20 numeric features and 14 one-hot columns.
ENTITY_WIDTH = len(ENTITY_NUMERIC) + sum(len(levels) for levels, _ in ENTITY_CATEGORIES.values())
#: Input width of the MLP workloads: the 34 entity columns plus 30 distractor columns.
MLP_INPUTS = 64
MLP_HIDDEN = (128, 128)
#: Rows the inference MLP learns from (prequentially) before its latency is measured, so its
#: weights and scaler are those of a trained model rather than of the initializer.
MLP_WARMUP_ROWS = 20_000
#: Rows per call when a long stream is fed to a model the way an application would: in chunks.
CHUNK_ROWS = 10_000


@functools.lru_cache(maxsize=4)
def entity_stream(n: int = ENTITY_N, seed: int = ENTITY_SEED) -> EntityStream:
    """The 34-column entity stream (cached: harnesses ask for it repeatedly)."""
    return make_entity_stream(n, seed=seed)


@functools.lru_cache(maxsize=4)
def wide_entity_stream(
    n: int = ENTITY_N, seed: int = ENTITY_SEED, width: int = MLP_INPUTS
) -> EntityStream:
    """The same concept padded with heavy-tailed distractor columns to ``width`` inputs."""
    return make_entity_stream(n, seed=seed, n_distractors=width - ENTITY_WIDTH)


@functools.lru_cache(maxsize=4)
def entity_records(n: int, seed: int = ENTITY_SEED) -> tuple[list[dict[str, float]], np.ndarray]:
    """The first ``n`` rows as River-style dicts, and their labels as 0/1 ints."""
    s = entity_stream(max(n, 1), seed)
    return list(s.records(0, n)), s.y[:n].astype(np.int64)


def prequential_accuracy(p_positive: np.ndarray, y: np.ndarray) -> float:
    """Share of examples whose pre-update prediction (P(y=1) > 0.5) matched the label."""
    p = np.asarray(p_positive, dtype=np.float64).reshape(-1)
    return float(np.mean((p > 0.5) == (np.asarray(y).reshape(-1) > 0.5)))


# ---------------------------------------------------------------------------------------------
# ducklearn models
# ---------------------------------------------------------------------------------------------


def ducklearn_logreg(**overrides: Any):
    """Online logistic regression with online standardization, ducklearn's defaults
    otherwise (AdaGrad, lr 0.1, zero init)."""
    from ducklearn.linear import LogisticRegression

    params: dict[str, Any] = {"scale": True, "seed": 0}
    params.update(overrides)
    return LogisticRegression(**params)


def ducklearn_mlp(**overrides: Any):
    """MLP classifier ``inputs-128-128-1`` (ReLU, Adam at its default lr) with online
    standardization."""
    from ducklearn.nn import MLPClassifier

    params: dict[str, Any] = {"hidden_layer_sizes": MLP_HIDDEN, "scale": True, "seed": 0}
    params.update(overrides)
    return MLPClassifier(**params)


def core_prequential(model: Any, X: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Run the C++ stream loop of a built ducklearn estimator directly, skipping the
    public API's input validation (n × k predictions before each update).

    ``targets`` are class indices as float32 (for a 0/1 problem, the labels themselves).
    Used to separate the loop's own cost from the Python-side checks around it.
    """
    out = model._learner.prequential(X, targets)
    # Older builds of the binding returned (predictions, loss sum); accept both.
    return out[0] if isinstance(out, tuple) else out


def build(model: Any, X: np.ndarray, y: np.ndarray, rows: int = 32) -> Any:
    """Make an unfitted ducklearn classifier allocate its learner (and every buffer, optimizer
    state included) by learning from the first ``rows`` rows of a 0/1 problem."""
    model.partial_fit(X[:rows], y[:rows], classes=[0, 1])
    return model


def trained_inference_mlp(seed: int = ENTITY_SEED):
    """The ``64-128-128-1`` MLP of the inference benchmarks, after learning (test-then-train)
    from the first :data:`MLP_WARMUP_ROWS` rows of the 64-wide stream."""
    from ducklearn.evaluate import prequential

    s = wide_entity_stream(MLP_WARMUP_ROWS, seed)
    model = ducklearn_mlp()
    prequential(model, s.X, s.y)
    return model


# ---------------------------------------------------------------------------------------------
# River
# ---------------------------------------------------------------------------------------------

#: River's own default learning rate of ``linear_model.LogisticRegression`` (SGD 0.01).
RIVER_DEFAULT_LR = 0.01


def river_logreg(lr: float = RIVER_DEFAULT_LR):
    """River's standard online logistic regression: ``StandardScaler | LogisticRegression``."""
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(lr))


def river_prequential(model: Any, records: list[dict[str, float]], y: np.ndarray) -> np.ndarray:
    """Test-then-train over dicts, River's way; returns P(y=1) before each update."""
    out = np.empty(len(records), dtype=np.float64)
    predict = model.predict_proba_one
    learn = model.learn_one
    for i, (x, label) in enumerate(zip(records, (y > 0).tolist(), strict=True)):
        out[i] = predict(x).get(True, 0.0)
        learn(x, label)
    return out


def warm_up_river() -> None:
    """Pay River's one-time first-call cost (about a second of lazy imports) before timing."""
    records, labels = entity_records(10)
    river_prequential(river_logreg(), records, labels)


# ---------------------------------------------------------------------------------------------
# Vowpal Wabbit (its in-process file driver)
# ---------------------------------------------------------------------------------------------

#: VW's own default learning rate (``-l 0.5``, with adaptive, normalized, invariant updates).
VW_DEFAULT_LR = 0.5


def _vw_name(name: str) -> str:
    # ':' '|' and spaces are syntax in VW's text format.
    return name.replace(":", "_").replace("|", "_").replace(" ", "_")


def write_vw_file(stream: EntityStream, path: str | os.PathLike, n: int | None = None) -> Path:
    """Write the first ``n`` rows in VW text format (labels -1/1, one namespace, named
    features, zeros omitted as VW treats absent features as 0).

    Values use ``%.9g``, which round-trips float32 exactly, so VW learns from the same numbers.
    """
    n = stream.n if n is None else n
    names = [_vw_name(name) + ":" for name in stream.feature_names]
    labels = np.where(stream.y[:n] > 0.5, "1 |f", "-1 |f")
    path = Path(path)
    with path.open("w", encoding="ascii") as fh:
        for label, row in zip(labels.tolist(), stream.X[:n].tolist(), strict=True):
            fields = [f"{names[j]}{v:.9g}" for j, v in enumerate(row) if v != 0.0]
            fh.write(label + " " + " ".join(fields) + "\n")
    return path


def vw_command(data: str | os.PathLike, preds: str | os.PathLike, lr: float = VW_DEFAULT_LR) -> str:
    """Online logistic regression from a file, progressive P(y=1) written to ``preds``."""
    return (
        f"--data {data} --loss_function logistic --link logistic -p {preds} --quiet "
        f"--learning_rate {lr:g}"
    )


def vw_learn(data: str | os.PathLike, preds: str | os.PathLike, lr: float = VW_DEFAULT_LR) -> None:
    """One learning pass over ``data`` with VW's driver (the part that benchmarks time)."""
    from vowpalwabbit import Workspace

    ws = Workspace(vw_command(data, preds, lr))  # --data makes the constructor run the pass
    ws.finish()  # joins the parser thread and flushes the predictions file


def vw_predictions(preds: str | os.PathLike) -> np.ndarray:
    """The progressive predictions VW made before learning each example."""
    return np.loadtxt(preds, dtype=np.float64, usecols=0, ndmin=1)


# ---------------------------------------------------------------------------------------------
# scikit-learn
# ---------------------------------------------------------------------------------------------


def sklearn_sgd_prequential(X: np.ndarray, y: np.ndarray, batch: int) -> np.ndarray:
    """``StandardScaler.partial_fit`` + ``SGDClassifier(loss="log_loss").partial_fit`` in
    test-then-train order over mini-batches of ``batch`` rows (1 = per example)."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    clf = SGDClassifier(loss="log_loss", random_state=0)
    out = np.empty(len(y), dtype=np.float64)
    classes = np.array([0, 1])
    yi = y.astype(np.int64)
    for start in range(0, len(y), batch):
        xb, yb = X[start : start + batch], yi[start : start + batch]
        if start == 0:
            out[: len(yb)] = 0.0  # nothing learned yet: predict the negative class
        else:
            out[start : start + len(yb)] = clf.predict_proba(scaler.transform(xb))[:, 1]
        scaler.partial_fit(xb)
        clf.partial_fit(scaler.transform(xb), yb, classes=classes)
    return out


def sklearn_mlp_prequential(X: np.ndarray, y: np.ndarray, batch: int) -> np.ndarray:
    """``MLPClassifier((128, 128)).partial_fit`` (Adam) in test-then-train order over
    mini-batches, inputs standardized by a running ``StandardScaler``."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    clf = MLPClassifier(hidden_layer_sizes=MLP_HIDDEN, random_state=0)
    out = np.empty(len(y), dtype=np.float64)
    classes = np.array([0, 1])
    yi = y.astype(np.int64)
    for start in range(0, len(y), batch):
        xb, yb = X[start : start + batch], yi[start : start + batch]
        if start == 0:
            out[: len(yb)] = 0.0
        else:
            out[start : start + len(yb)] = clf.predict_proba(scaler.transform(xb))[:, 1]
        scaler.partial_fit(xb)
        clf.partial_fit(scaler.transform(xb), yb, classes=classes)
    return out


def warm_up_sklearn() -> None:
    """Pay scikit-learn's one-time first-call costs (imports, validation caches) before timing."""
    s = entity_stream(16)
    sklearn_sgd_prequential(s.X, s.y, 8)
    sklearn_mlp_prequential(s.X, s.y, 8)


# ---------------------------------------------------------------------------------------------
# ONNX Runtime: the same MLP weights as a graph built with onnx.helper
# ---------------------------------------------------------------------------------------------


def folded_layers(model: Any) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(W as out × in, b, activation) per layer, with the model's input standardization
    folded into the first layer.

    ducklearn standardizes ``z = (x - mean) / sqrt(m2 / count)`` (1 where the variance is 0)
    before the first layer, so ``W z + b = (W / s) x + (b - W (mean / s))``. Folding gives ONNX
    Runtime strictly less work than ducklearn does, which keeps the comparison conservative.
    """
    params = np.asarray(model.params, dtype=np.float64)
    layers = []
    for layer in model.layers:
        n_in, n_out = layer["in"], layer["out"]
        w = params[layer["w_offset"] : layer["w_offset"] + n_in * n_out].reshape(n_out, n_in)
        b = params[layer["b_offset"] : layer["b_offset"] + n_out]
        layers.append((w.copy(), b.copy(), layer["activation"]))
    stats = model._learner.scaler_state()
    if stats is not None:
        count, mean, m2 = (np.asarray(stats[k], dtype=np.float64) for k in ("count", "mean", "m2"))
        var = np.divide(m2, count, out=np.zeros_like(m2), where=count > 0)
        inv = np.where(var > 0, 1.0 / np.sqrt(np.where(var > 0, var, 1.0)), 1.0)
        w, b, act = layers[0]
        layers[0] = (w * inv, b - w @ (mean * inv), act)
    return [(w.astype(np.float32), b.astype(np.float32), act) for w, b, act in layers]


def onnx_mlp(model: Any):
    """An ONNX graph ``Gemm+Relu, ..., Gemm+Sigmoid`` computing the binary MLP's P(y=1)."""
    from onnx import TensorProto, checker, helper, numpy_helper

    layers = folded_layers(model)
    nodes, inits = [], []
    prev = "x"
    for i, (w, b, act) in enumerate(layers):
        last = i == len(layers) - 1
        if last and act != "identity":
            raise ValueError(f"output activation {act!r}: expected identity (logit) + sigmoid")
        if not last and act != "relu":
            raise ValueError(f"hidden activation {act!r}: this exporter handles relu only")
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        # transB=1: the flat buffer stores W as out × in, which is what Gemm's B^T wants.
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [f"z{i}"], transB=1))
        out_name = "p" if last else f"h{i}"
        nodes.append(helper.make_node("Sigmoid" if last else "Relu", [f"z{i}"], [out_name]))
        prev = out_name
    n_in = layers[0][0].shape[1]
    graph = helper.make_graph(
        nodes,
        "ducklearn_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8  # readable by every onnxruntime 1.x that supports opset 17
    checker.check_model(proto)
    return proto


def ort_session(proto: Any, threads: int = 1):
    """An ONNX Runtime CPU session limited to ``threads`` (intra- and inter-op)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Current resident set size of this process."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    # Without /proc (macOS), the peak is the closest available figure.
    return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (since start or the last reset)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Reset the peak-RSS high-water mark to the current RSS (Linux >= 4.0); False if the
    kernel does not allow it, in which case peaks include everything before."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def fix_allocator_thresholds() -> None:
    """Make glibc serve every allocation of 128 KiB or more with a fresh ``mmap``.

    By default glibc raises its mmap threshold after a large block is freed, so the next
    allocation of that size may come from heap pages that are partly resident already and
    peak-RSS deltas then wander by megabytes between identical runs. A fixed threshold makes
    them repeatable. A no-op where glibc's ``mallopt`` is unavailable."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and name:
        try:
            ctypes.CDLL(name).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):
            pass


def release_free_memory() -> None:
    """Hand the C allocator's free pages back to the OS (glibc ``malloc_trim``), so that RSS
    deltas measured next count new allocations instead of reused free heap; a no-op elsewhere."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):  # musl and others have no malloc_trim
            pass


def peak_delta(fn: Any) -> int:
    """How far the process's peak RSS rises above its current RSS while ``fn()`` runs
    (free heap released first; the result of ``fn`` is dropped afterwards)."""
    release_free_memory()
    before = rss_bytes()
    reset_peak_rss()
    result = fn()
    delta = peak_rss_bytes() - before
    del result
    return delta


def output_calibration(shape: tuple[int, ...]) -> int:
    """:func:`peak_delta` of merely allocating and filling a float32 array of ``shape``: what
    the kernel and allocator charge for an output of that size (page and huge-page rounding
    included), to subtract from a loop's peak so that only its working memory remains."""
    return peak_delta(lambda: np.ones(shape, dtype=np.float32))


def chunks(n: int, block: int = CHUNK_ROWS) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive chunks of at most ``block`` rows covering ``n`` rows."""
    for start in range(0, n, block):
        yield start, min(n, start + block)
