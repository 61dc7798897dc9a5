"""Write model files and reference predictions for the C++ consumer.

    python make_reference.py OUT_DIR

For each model (a standardized binary MLP with elastic weight consolidation and an adapted
learning-rate scale, a multi-class softmax regression, a Huber MLP regressor) it writes
``OUT_DIR/<name>.safetensors`` with ``ducklearn.modelfile.save_model`` and
``OUT_DIR/<name>.reference.safetensors`` holding the inputs ``X`` (n × d), the predictions
made one row at a time ``row`` (n × k) and for the whole batch ``batch`` (n × k), then
``learn_X``/``learn_y`` (rows and encoded targets learned one at a time from the saved state)
and ``after`` (row-at-a-time predictions after that), and in its metadata the SIMD target
that produced them. The consumer loads the model in C++ and must reproduce ``row`` and
``after`` bit for bit (same kernels, same training state) and ``batch`` to float rounding
(its BLAS may differ from the wheel's).
"""

from __future__ import annotations

import os
import sys

import numpy as np
from ducklearn import backend
from ducklearn.linear import SoftmaxRegression
from ducklearn.modelfile import save_model
from ducklearn.nn import MLPClassifier, MLPRegressor
from safetensors.numpy import save_file


def main(out: str) -> int:
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    X = (rng.normal(size=(600, 6)) * np.array([1, 10, 0.1, 3, 100, 1])).astype(np.float32)
    logit = X[:, 0] - 0.1 * X[:, 1] + 5 * X[:, 2]
    models = {
        "mlp_binary": MLPClassifier(hidden_layer_sizes=(16, 8), scale=True, lr=0.01,
                                    max_epochs=20, seed=1).fit(X, (logit > 0).astype(int)),
        "softmax": SoftmaxRegression(scale=True, max_epochs=20).fit(
            X, np.digitize(logit, [-1.0, 1.0])),
        "mlp_huber": MLPRegressor(hidden_layer_sizes=(12,), loss="huber", scale=True,
                                  max_epochs=20, seed=2).fit(X, logit + 0.1 * X[:, 3]),
    }
    targets = {"mlp_binary": (logit > 0).astype(np.float32),
               "softmax": np.digitize(logit, [-1.0, 1.0]).astype(np.float32),
               "mlp_huber": (logit + 0.1 * X[:, 3]).astype(np.float32)}
    # State that only exists after learning online: the C++ host must carry it on.
    binary = models["mlp_binary"]._learner
    binary.consolidate(X[:200], targets["mlp_binary"][:200], 0.5, 0.0)
    binary.lr_scale = 0.25
    target = backend.info()["simd_target"]
    Xq, Xl = X[:64], X[64:96]
    for name, model in models.items():
        save_model(model, os.path.join(out, f"{name}.safetensors"),
                   metrics={"train_rows": float(len(X))})
        learner = model._learner  # the same C++ Learner the estimator predicts with
        row = np.concatenate([learner.predict(Xq[i:i + 1]) for i in range(len(Xq))])
        batch = learner.predict(Xq)
        yl = targets[name][64:96]
        for x, y in zip(Xl, yl, strict=True):
            learner.learn_one(x, float(y))
        after = np.concatenate([learner.predict(Xq[i:i + 1]) for i in range(len(Xq))])
        save_file({"X": np.ascontiguousarray(Xq), "row": np.ascontiguousarray(row),
                   "batch": np.ascontiguousarray(batch), "learn_X": np.ascontiguousarray(Xl),
                   "learn_y": np.ascontiguousarray(yl), "after": np.ascontiguousarray(after)},
                  os.path.join(out, f"{name}.reference.safetensors"),
                  metadata={"simd_target": target, "model": name})
    print(f"wrote {len(models)} model files and references to {out} (simd {target})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
