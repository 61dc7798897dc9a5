"""The main job on embedded defaults (``ducklearn quickstart``).

An application suggests code changes; developers accept or reject them; the acceptance rule
changes half-way (a new review policy). The pipeline:

1. generate the stream (:func:`~ducklearn.datasets.make_entity_stream`) and describe its
   records with a :class:`~ducklearn.features.FeatureSchema` compiled to a C++ extractor
   (numeric fields piecewise-linearly encoded over quantile bins of the history);
2. bootstrap an MLP on the first 10% ("history") with a validation split and early stopping;
3. serve and learn online with an :class:`~ducklearn.learn.OnlineLearner`: every batch of
   suggestions is predicted from the live snapshot, through a
   :class:`~ducklearn.serving.PredictionServer` (hot swap at each publication, the legacy
   baseline as the breaker's fallback), before its outcomes are learned, while the learner
   adapts to the change (drift detection, challengers);
4. register the bootstrap model and, twice more during the run, the adapted model in a
   :class:`~ducklearn.registry.Registry` (computed versions, lineage, data fingerprint);
   each is promoted to ``staging`` and, through a request approved by a second principal,
   to the protected ``production`` alias, which the server hot-swaps; a frozen
   ``production`` endpoint is scored beside the live one;
5. run the legacy baseline (:class:`~ducklearn.legacy.NaiveLearner`, per-key acceptance
   rates) on the same stream, checkpoint the learner, verify the audit chain, and print the
   comparison.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["entity_schema", "entity_columns", "entity_adaptation", "ENTITY_LR", "run"]

# Counts and sizes spread over orders of magnitude: learned on a log scale.
_LOG_SCALE_UNITS = ("lines", "files", "bytes", "commits", "days", "hours", "seconds",
                    "comments", "imports", "reviewers", "tests", "McCabe")


#: Learning rate of the entity pipeline's MLP on PLE features (bootstrap and online, where
#: each step averages the gradient of 8 examples). The encoding makes each input sparse in
#: effect (one fractional bin per field), and the default 0.002 of raw columns overshoots on it.
ENTITY_LR = 1e-3


def entity_adaptation():
    """The online learner's adaptation for the entity pipeline: the default detectors and
    challenger, with the learning rate tripled right after a detected change and fading back
    over 10,000 examples (the low ``ENTITY_LR`` alone recovers slowly from the rule change);
    predictions from the weights averaged over about the last 5,000 examples (restarted at
    each detected change), which keeps SGD's step-to-step noise on these noisy labels out of
    the predictions; one optimizer step per block of 8 examples, about twice the throughput
    of per-example steps at the same accuracy here (averaging already removes the noise that
    per-example steps would otherwise trade against); and a challenger must race the adapting
    model for 1,000 examples before it may take over: right after a change the old model is
    briefly worse than any fresh one, and on labels this noisy an early swap to a model that
    has seen a few hundred examples costs more than it saves (seed 5 of the benchmark stream:
    2.04 points below Bayes with the default 50, 1.83 with 1,000; seeds 0-9 otherwise
    unchanged)."""
    from ducklearn.learn import Adaptation

    return Adaptation(drift_lr_boost=3.0, boost_decay=10_000, average_decay=0.9998,
                      update_batch=8, background_grace=1000)


def entity_schema(stream: Any, bins: int | None = 16, history: int | None = None):
    """A FeatureSchema for the entity stream's records: numeric fields in raw units (log1p
    where they span orders of magnitude, range-checked) and the categoricals one-hot with an
    ``other`` bucket. Normalization is left to the model (``scale=True``), which snapshots
    it together with the weights.

    With ``bins``, each numeric field becomes a piecewise-linear encoding over ``bins``
    quantile bins of its (log1p) values in the first ``history`` records (default: the 10%
    the pipeline bootstraps on, so no later record informs the edges). The stream's rule has
    thresholds (coverage, duplication, hour of day) that an MLP on the raw columns
    approximates slowly; on PLE columns a threshold is one bin's weight. On the noisy
    200,000-record stream (seeds 0 and 1), with ``ENTITY_LR`` and :func:`entity_adaptation`,
    the accuracy after the bootstrap share is 1.77 and 1.78 points below Bayes, against 4.05
    and 4.08 on raw columns (lr 0.002, default adaptation; see benchmarks/RESULTS.md).
    """
    from ducklearn.datasets import ENTITY_NUMERIC
    from ducklearn.features import Categorical, FeatureSchema, Numeric

    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int)
                             or not 1 <= bins <= 1024):
        raise ValueError(f"bins must be None or an integer in [1, 1024], got {bins!r}")
    if history is None:
        history = max(100, stream.n // 10)
    if isinstance(history, bool) or not isinstance(history, int) or \
            not 1 <= history <= stream.n:
        raise ValueError(f"history must be an integer in [1, {stream.n}] (records the bin "
                         f"edges are fitted on), got {history!r}")

    units = dict(ENTITY_NUMERIC)
    fields = []
    for name in stream.numeric_names:
        unit = units.get(name, "")
        bounded = "bounded" in unit
        fields.append(Numeric(
            name, required=True, normalize=None,
            log1p=not bounded and any(u in unit for u in _LOG_SCALE_UNITS),
            valid_range=(0.0, 1e12), description=unit,
        ))
    for name, columns in stream.categorical.items():
        levels = [c.split("=", 1)[1] for c in columns]
        fields.append(Categorical(name, vocabulary=levels, required=True))
    schema = FeatureSchema("code_change_suggestion", fields)
    if bins is None:
        return schema
    return schema.with_quantile_bins(entity_columns(stream, 0, history), n_bins=bins)


def entity_columns(stream: Any, start: int = 0, stop: int | None = None) -> dict[str, Any]:
    """The stream's rows [start, stop) as record columns (categoricals as level strings)."""
    stop = stream.n if stop is None else stop
    X = stream.X[start:stop]
    cols: dict[str, Any] = {}
    for j, name in enumerate(stream.numeric_names):
        cols[name] = X[:, j]
    names = stream.feature_names
    for cat, one_hot in stream.categorical.items():
        idx = [names.index(c) for c in one_hot]
        levels = np.array([c.split("=", 1)[1] for c in one_hot], dtype=object)
        cols[cat] = levels[np.argmax(X[:, idx], axis=1)]
    return cols


@dataclass
class _Track:
    correct: np.ndarray
    filled: int = 0

    def add(self, ok: np.ndarray) -> None:
        self.correct[self.filled:self.filled + len(ok)] = ok
        self.filled += len(ok)

    def mean(self, a: int = 0, b: int | None = None) -> float:
        b = self.filled if b is None else min(b, self.filled)
        return float(self.correct[a:b].mean()) if b > a else float("nan")


def _recovery(correct: np.ndarray, change: int, window: int) -> str:
    """Examples after the change until the rolling accuracy is back within 2 points of its
    level just before the change."""
    if change < window or change >= len(correct):
        return "-"
    target = correct[change - window:change].mean() - 0.02
    roll = np.convolve(correct[change:].astype(float), np.ones(window) / window, "valid")
    hit = np.flatnonzero(roll >= target)
    return f"{hit[0] + window:,}" if hit.size else "never"


def run(n: int = 200_000, seed: int = 0, workdir: str = "ducklearn-quickstart",
        batch: int = 1_000, quiet: bool = False, out=sys.stdout) -> dict[str, Any]:
    """Run the pipeline; print a summary to ``out`` and return the figures as a dict."""
    from tqdm import tqdm

    from ducklearn import backend
    from ducklearn.datasets import make_entity_stream
    from ducklearn.learn import OnlineLearner, bootstrap
    from ducklearn.legacy import NaiveLearner
    from ducklearn.nn import MLPClassifier

    def say(msg: str = "") -> None:
        print(msg, file=out, flush=True)

    info = backend.info()
    say(f"ducklearn {info['version']}  kernels={info['simd_target']}  blas={info['blas']}")
    stream = make_entity_stream(n, seed=seed)
    n_hist = max(100, stream.n // 10)  # the history the model bootstraps on
    schema = entity_schema(stream, history=n_hist)  # bin edges from the history only
    extractor = schema.compile()
    change = stream.drift_index
    say(f"stream: {stream.n:,} suggestions, {len(schema)} fields -> "
        f"{extractor.n_features} features; acceptance rule changes at {change:,}; "
        f"Bayes accuracy {stream.bayes_accuracy:.3f}")

    # 1. History: the first 10% bootstraps the model and the baseline.
    hist = entity_columns(stream, 0, n_hist)
    X_hist, dead = extractor.transform(hist)
    y_all = stream.y.astype(np.int64)
    y_hist = y_all[:n_hist][np.setdiff1d(np.arange(n_hist), [d.index for d in dead])]
    t0 = time.perf_counter()
    boot = bootstrap(MLPClassifier(hidden_layer_sizes=(64, 64), scale=True, lr=ENTITY_LR,
                                   batch_size=64, seed=seed),
                     X_hist, y_hist, validation=0.1, max_epochs=30, patience=3, seed=seed)
    say(f"bootstrap on {n_hist:,} historical suggestions: {boot.epochs} epochs "
        f"(best {boot.best_epoch + 1}), validation accuracy {boot.validation_score:.3f}, "
        f"{time.perf_counter() - t0:.1f}s")

    naive = NaiveLearner(key=("language", "change_type", "repo_tier"))
    keys = list(zip(hist["language"], hist["change_type"], hist["repo_tier"], strict=True))
    for k, label in zip(keys, y_all[:n_hist], strict=True):
        naive.learn_one({"language": k[0], "change_type": k[1], "repo_tier": k[2]}, int(label))

    # 2. Registry: the bootstrap model becomes the first production version.
    ckpt_dir = os.path.join(workdir, "checkpoints")
    os.makedirs(workdir, exist_ok=True)
    from ducklearn.registry import Registry, data_fingerprint

    name = "suggestion-acceptance"
    reg = Registry(os.path.join(workdir, "registry"), actor="quickstart-trainer")
    reviewer = Registry(os.path.join(workdir, "registry"), actor="quickstart-reviewer")
    reg.grant("quickstart-reviewer", "approver", model=name)
    hist_fp = data_fingerprint(X_hist, y_hist)
    promotions: list[tuple[str, str, float]] = []

    def promote(model: Any, why: str, parent: str | None, fingerprint: str,
                metrics: dict[str, float]) -> str:
        v = reg.register(name, model, parent=parent, data_fingerprint=fingerprint,
                         metrics=metrics, feature_schema=extractor, description=why)
        if "production" not in reg.protected_aliases(name):
            reg.protect(name, ["production"])  # from now on it moves only with an approval
        reg.promote(name, "staging", v.version, reason=why)
        request = reg.request_promotion(name, "production", v.version, reason=why)
        reviewer.approve(request.id, reason="metrics reviewed by the quickstart")
        promotions.append((v.version, v.bump, time.time()))
        return v.version

    production = promote(boot.model, "bootstrap on history", None, hist_fp,
                         {"validation_accuracy": boot.validation_score})
    say(f"registry: {name} {production} registered, staged and approved for production")

    # 3. Live: predict each batch from the current snapshot, then learn its outcomes.
    # A queue of a few batches bounds how stale the served snapshot can get: ingestion
    # waits for the learner instead of running up to 100,000 examples ahead of it, which
    # would serve a pre-change model long after the change.
    learner = OnlineLearner(boot.model, extractor=extractor, adaptation=entity_adaptation(),
                            checkpoint_dir=None, on_full="block", block_timeout=60.0,
                            queue_capacity=4 * batch,
                            publish_interval=0.02, seed=seed)
    # Predictions during learning go through the in-process server: each batch reads the
    # learner's newest snapshot (every publication is a hot swap, labelled live-N), behind a
    # circuit breaker whose fallback is the legacy baseline.
    from ducklearn.serving import PredictionServer

    server = PredictionServer(reg, default_timeout=30.0, watch_interval=3600.0)
    server.add_learner("quickstart", learner, fallback=naive)
    prod_ref = f"{name}@production"
    server.serve(prod_ref)
    served_versions: set[str] = set()
    live = stream.n - n_hist
    model_track = _Track(np.zeros(live, dtype=bool))
    naive_track = _Track(np.zeros(live, dtype=bool))
    prod_track = _Track(np.zeros(live, dtype=bool))
    # Batch ends at which the learner is promoted: three quarters in (after the change), and
    # at the end.
    stops = [min(a + batch, stream.n) for a in range(n_hist, stream.n, batch)]
    promote_at = {stops[max(0, (3 * len(stops)) // 4 - 1)], stream.n}
    t_live = time.perf_counter()
    with tqdm(total=live, desc="learning online", unit="ex", unit_scale=True, file=sys.stderr,
              disable=True if quiet else None) as bar:
        for start in range(n_hist, stream.n, batch):
            stop = min(start + batch, stream.n)
            cols = entity_columns(stream, start, stop)
            y = y_all[start:stop]
            served = server.predict("quickstart", cols)
            served_versions.add(served.version)
            proba = served.values[:, 0]
            model_track.add((proba > 0.5) == (y == 1))
            frozen = server.predict(prod_ref, cols)
            prod_track.add((frozen.values[:, -1] > 0.5) == (y == 1))
            keys = zip(cols["language"], cols["change_type"], cols["repo_tier"], strict=True)
            recs = [{"language": a, "change_type": b, "repo_tier": c} for a, b, c in keys]
            naive_track.add(naive.predict_many(recs) == y)
            learner.ingest_many(cols, y)
            naive.learn_many(recs, y.tolist())
            if stop in promote_at:
                # Promote what the learner has become: lineage points at the running version.
                learner.flush()
                recent = model_track.correct[max(0, stop - n_hist - 10 * batch):stop - n_hist]
                production = promote(
                    learner.export_model(), f"online learning through example {stop:,}",
                    production, data_fingerprint(hist_fp, np.int64(stop)),
                    {"recent_accuracy": float(recent.mean())})
                server.check_aliases()  # hot swap of the production endpoint now
            bar.update(stop - start)
            bar.set_postfix(model=f"{model_track.mean():.3f}", legacy=f"{naive_track.mean():.3f}")
    learner.flush()
    live_seconds = time.perf_counter() - t_live
    serving = server.metrics()["quickstart"]
    server.close()
    learner.checkpoint_dir = ckpt_dir
    ckpt = learner.checkpoint()
    stats = learner.stats()
    learner.close()
    lineage = [v.version for v in reg.lineage(name, production)]
    audit = reg.events.verify()
    n_events = reg.events.head()[0]
    reviewer.close()
    reg.close()

    # 3. Summary.
    c = change - n_hist  # the change, in live coordinates
    window = max(100, live // 40)
    bayes = np.maximum(stream.p_true, 1 - stream.p_true)[n_hist:]
    say()
    say(f"{'':22}{'live':>9}{'frozen':>9}{'legacy':>9}{'Bayes':>9}")
    bounds = np.linspace(0, live, 11).astype(int)
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        tag = " <- rule changes" if a <= c < b else ""
        say(f"examples {n_hist + a:>7,}-{n_hist + b:<7,}{model_track.mean(a, b):9.3f}"
            f"{prod_track.mean(a, b):9.3f}{naive_track.mean(a, b):9.3f}"
            f"{bayes[a:b].mean():9.3f}{tag}")
    summary = {
        "model_accuracy": model_track.mean(),
        "legacy_accuracy": naive_track.mean(),
        "bayes_accuracy": float(bayes.mean()),
        "model_before_change": model_track.mean(0, c),
        "model_after_change": model_track.mean(c),
        "legacy_after_change": naive_track.mean(c),
        "model_recovery": _recovery(model_track.correct, c, window),
        "legacy_recovery": _recovery(naive_track.correct, c, window),
        "drifts_detected": stats["drifts"],
        "challenger_swaps": stats["swaps"],
        "learned": stats["learned"],
        "rejected": stats["rejected"],
        "examples_per_second": live / live_seconds,
        "learner_updates_per_second": stats["updates_per_second"],
        "checkpoint": ckpt,
        "production_accuracy": prod_track.mean(),
        "promotions": [v for v, _, _ in promotions],
        "lineage": lineage,
        "audit_events": n_events,
        "audit_chain_ok": bool(audit),
        "served_requests": serving["requests"],
        "served_versions": len(served_versions),
        "served_fallbacks": serving["fallbacks"],
    }
    say(f"{'overall':22}{summary['model_accuracy']:9.3f}{summary['production_accuracy']:9.3f}"
        f"{summary['legacy_accuracy']:9.3f}{summary['bayes_accuracy']:9.3f}")
    say("(live: the online learner's newest snapshot; frozen: the registry's production "
        "version, which only changes at promotions)")
    say()
    say(f"after the change: model {summary['model_after_change']:.3f} "
        f"(back within 2 points after {summary['model_recovery']} examples), legacy "
        f"{summary['legacy_after_change']:.3f}; drift detections {stats['drifts']}, "
        f"challenger swaps {stats['swaps']}")
    say(f"throughput: {summary['examples_per_second']:,.0f} suggestions/s end to end "
        f"(predict + extract + learn + publish), learner {stats['updates_per_second']:,.0f} "
        f"updates/s; {stats['learned']:,} learned, {stats['rejected']} rejected")
    say(f"serving: {serving['requests']:,} batches ({serving['rows']:,} predictions) through "
        f"the PredictionServer across {len(served_versions)} live snapshots, "
        f"{serving['fallbacks']} answered by the fallback")
    say(f"registry: versions {' -> '.join(summary['promotions'])} promoted to production "
        f"(lineage {' <- '.join(lineage)}); audit chain of {n_events} events: "
        f"{audit.summary()}")
    say(f"checkpoint: {ckpt}")
    return summary
