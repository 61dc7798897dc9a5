"""Shared machinery of the estimators: both dialects over one C++ ``Learner``.

An estimator is a set of hyperparameters (constructor arguments, scikit-learn style) plus,
once it has seen data, a ``_core.Learner``: a model over one flat parameter buffer, its loss,
its optimizer state and optional online standardization. Every training loop runs inside the
learner in C++; this module only validates inputs, maps labels to indices and keeps the
scikit-learn (``fit``/``partial_fit``/``predict``...) and River (``learn_one``/``predict_one``...)
conventions.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from ducklearn import _core
from ducklearn._validation import (
    check_record,
    check_X,
    check_y,
    feature_names_of,
    not_fitted_error,
)
from ducklearn.optim import Optimizer, PlateauDetector, Schedule, make_optimizer

STATE_FORMAT_VERSION = 1
_REGRESSION_LOSSES = ("squared", "huber", "pinball")


# ---------------------------------------------------------------------------------------------
# Hyperparameters <-> JSON (for manifests; never pickle)
# ---------------------------------------------------------------------------------------------


def _param_to_json(value: Any) -> Any:
    if isinstance(value, (Optimizer, Schedule)):
        return {
            "__class__": type(value).__name__,
            "params": {k: _param_to_json(v) for k, v in value.get_params().items()},
        }
    if isinstance(value, tuple):
        return {"__tuple__": [_param_to_json(v) for v in value]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, np.ndarray)):
        return [_param_to_json(v) for v in list(value)]
    json.dumps(value)  # raises TypeError for anything a manifest cannot hold
    return value


def _param_from_json(value: Any) -> Any:
    from ducklearn import optim

    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_param_from_json(v) for v in value["__tuple__"])
    if isinstance(value, dict) and "__class__" in value:
        cls = getattr(optim, value["__class__"], None)
        if not (isinstance(cls, type) and issubclass(cls, (Optimizer, Schedule))):
            raise ValueError(f"unknown class {value['__class__']!r} in a model manifest")
        return cls(**{k: _param_from_json(v) for k, v in value["params"].items()})
    if isinstance(value, list):
        return [_param_from_json(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Base estimator
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _all_or_nothing(est: Any) -> Iterator[None]:
    """Restore the estimator's attributes if the block raises: a failed call changes nothing.

    Blocks that replace the learner build a new one; the old one is never mutated before all
    validation has passed, so restoring the attribute references is enough."""
    saved = dict(est.__dict__)
    try:
        yield
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(saved)
        raise


class OnlineEstimator:
    """Base of every ducklearn estimator (see the module docstring).

    Subclasses set ``_estimator_type`` and implement ``_architecture`` (hidden widths and
    activations), ``_loss`` (loss name, Huber delta, pinball tau) and ``_check_params``.
    """

    _estimator_type: ClassVar[str] = ""
    _default_optimizer: ClassVar[str] = "adam"
    _default_lrs: ClassVar[dict[str, float]] = {}  # optimizer name -> lr when lr is None

    # -- hyperparameters (scikit-learn protocol) --------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments as a dict."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> OnlineEstimator:
        """Set constructor arguments; unknown names raise ``ValueError``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {sorted(valid)!r}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        shown = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            same = default is not inspect.Parameter.empty and (
                value is default or (type(value) is type(default) and value == default)
            )
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def clone(self) -> OnlineEstimator:
        """An unfitted estimator with the same hyperparameters."""
        params = {
            k: (v.clone() if isinstance(v, Optimizer) else v) for k, v in self.get_params().items()
        }
        return type(self)(**params)

    def __sklearn_tags__(self):  # scikit-learn >= 1.6 reads estimator traits from here
        from sklearn.utils import (
            ClassifierTags,
            InputTags,
            RegressorTags,
            Tags,
            TargetTags,
        )

        is_clf = self._estimator_type == "classifier"
        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True),
            transformer_tags=None,
            classifier_tags=ClassifierTags(multi_label=False) if is_clf else None,
            regressor_tags=RegressorTags() if not is_clf else None,
            input_tags=InputTags(),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "_learner", None) is not None

    # -- subclass hooks ------------------------------------------------------------------------

    def _architecture(self) -> tuple[list[int], list[str]]:
        """Hidden layer widths and activations (empty for linear models)."""
        return [], []

    def _loss(self, n_classes: int) -> tuple[str, float, float]:
        raise NotImplementedError

    def _check_params(self) -> None:
        """Validate hyperparameters; raise TypeError/ValueError naming the bad one."""
        for name in ("batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("l2", "tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                np.isfinite(value) and value >= 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.scale, (bool, np.bool_)):
            raise TypeError(f"scale must be True or False, got {self.scale!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or (
            self.seed < 0
        ):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        self._make_optimizer()

    def _make_optimizer(self) -> Optimizer:
        spec = self._default_optimizer if self.optimizer is None else self.optimizer
        lr = self.lr
        if lr is None and isinstance(spec, str):
            lr = self._default_lrs.get(spec.lower())
        opt = make_optimizer(spec, lr=lr)
        if self.l2:
            params = opt.get_params()
            params["l2"] = float(self.l2)
            opt = type(opt)(**params)
        return opt

    # -- building the learner ------------------------------------------------------------------

    def _build(self, n_features: int, feature_names: list[str] | None) -> None:
        """Create a fresh learner for n_features inputs (labels must already be set up)."""
        hidden, acts = self._architecture()
        loss, delta, tau = self._loss(self._n_classes())
        n_out = 1 if loss in ("logistic", "squared", "huber", "pinball") else self._n_classes()
        learner = _core.Learner(
            n_inputs=n_features,
            widths=[*hidden, n_out],
            activations=[*acts, "identity"],
            loss=loss,
            optimizer=self._make_optimizer().to_config(),
            standardize=bool(self.scale),
            seed=int(self.seed),
            # Linear models are convex: start at 0 like River and Vowpal Wabbit. Hidden
            # layers need random weights to break symmetry.
            init="auto" if hidden else "zeros",
            delta=delta,
            tau=tau,
        )
        self._learner = learner
        # Single-output classifiers answer predict_one with a float indexed by p > 0.5.
        self._class_list = (self.classes_.tolist()
                            if n_out == 1 and self._estimator_type == "classifier" else None)
        self.n_features_in_ = n_features
        if feature_names is not None:
            self.feature_names_in_ = np.asarray(feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        names = feature_names if feature_names is not None else [str(i) for i in range(n_features)]
        self._feature_index = {name: i for i, name in enumerate(names)}
        self.n_iter_ = 0
        self.loss_curve_ = []

    def _n_classes(self) -> int:
        return 0

    def _initial_output_bias(self, targets: np.ndarray, n_out: int) -> np.ndarray:
        """Start ``fit`` with the output bias at the best constant prediction, so epochs spend
        their steps on the features rather than on walking the intercept to the target's
        level (the "initial estimate" of gradient boosting)."""
        raise NotImplementedError

    def _check_fitted(self) -> _core.Learner:
        learner = getattr(self, "_learner", None)
        if learner is None:
            raise not_fitted_error(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit', "
                "'partial_fit' or 'learn_one' before using it."
            )
        return learner

    def _rows(self, X: Any, *, fast: bool = False) -> np.ndarray:
        """Validated rows for a fitted model. ``fast`` leaves the finiteness scan to C++
        (used by read-only paths, which can't be left half-done)."""
        learner = self._check_fitted()
        # Already what the core takes: skip every Python-side check (C++ checks the width
        # and scans for NaN/inf itself).
        if fast and type(X) is np.ndarray and X.dtype == np.float32 and X.ndim == 2 and (
            X.flags.c_contiguous
        ):
            return X
        names = feature_names_of(X)
        if names is not None and hasattr(self, "feature_names_in_") and (
            names != list(self.feature_names_in_)
        ):
            raise ValueError(
                "The feature names should match those that were passed during fit; "
                f"got {names[:5]}..., expected {list(self.feature_names_in_)[:5]}..."
            )
        return check_X(X, n_features=learner.n_inputs, estimator=type(self).__name__)

    def _first_data(self, X: Any, y: Any, targets_of: Callable[[np.ndarray], np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The first data of an unfitted estimator: validates the hyperparameters and the
        rows, sets up the labels through ``targets_of(y)`` and builds the learner. Returns
        (rows, encoded targets)."""
        self._check_params()
        names = feature_names_of(X)
        Xa = check_X(X, estimator=type(self).__name__)
        targets = targets_of(check_y(y, Xa.shape[0]))
        self._build(Xa.shape[1], names)
        return Xa, targets

    def _more_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated rows and encoded targets for a fitted estimator."""
        Xa = self._rows(X)
        return Xa, self._encode(check_y(y, Xa.shape[0]))

    # -- scikit-learn dialect ------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> OnlineEstimator:
        """Train from scratch with shuffled mini-batch epochs until the epoch loss plateaus.

        Stops after ``patience`` epochs without a relative improvement of ``tol`` or after
        ``max_epochs``. The fitted model keeps learning online afterwards (``learn_one``,
        ``partial_fit``...).
        """
        with _all_or_nothing(self):
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> OnlineEstimator:
        self._check_params()
        names = feature_names_of(X)
        Xa = check_X(X, estimator=type(self).__name__)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        ya = check_y(y, Xa.shape[0])
        targets = self._targets_for_fit(ya)
        self._build(Xa.shape[1], names)
        learner = self._learner
        last = learner.layers[-1]
        bias = self._initial_output_bias(targets, last["out"])
        learner.params[last["b_offset"]:last["b_offset"] + last["out"]] = bias
        if self.scale:
            learner.update_scaler(Xa)
        detector = PlateauDetector(1.0, int(self.patience), float(self.tol))
        curve = []
        for epoch in range(int(self.max_epochs)):
            loss = learner.fit_epoch(Xa, targets, int(self.batch_size), int(self.seed) + epoch)
            curve.append(float(loss))
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch + 1} (loss {loss}); lower lr or set "
                    "scale=True"
                )
            if detector.update(loss):
                break
        self.n_iter_ = len(curve)
        self.loss_curve_ = curve
        self.converged_ = bool(detector.converged)
        return self

    def partial_fit(self, X: Any, y: Any, **kwargs: Any) -> OnlineEstimator:
        """One shuffled pass over the given rows, continuing from the current state."""
        classes = kwargs.pop("classes", None)
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        with _all_or_nothing(self):
            return self._partial_fit(X, y, classes)

    def _partial_fit(self, X: Any, y: Any, classes: Any) -> OnlineEstimator:
        if getattr(self, "_learner", None) is None:
            Xa, targets = self._first_data(
                X, y, lambda ya: self._targets_for_first_partial_fit(ya, classes))
        else:
            self._check_partial_classes(classes)
            Xa, targets = self._more_data(X, y)
        learner = self._learner
        if self.scale:
            learner.update_scaler(Xa)
        loss = learner.fit_epoch(Xa, targets, int(self.batch_size),
                                 int(self.seed) + int(self.n_iter_))
        self.n_iter_ += 1
        self.loss_curve_.append(float(loss))
        return self

    def _decision(self, X: Any) -> np.ndarray:
        rows = self._rows(X, fast=True)
        return self._learner.decision(rows)

    def _outputs(self, X: Any) -> np.ndarray:
        rows = self._rows(X, fast=True)
        return self._learner.predict(rows)

    # -- River dialect -------------------------------------------------------------------------

    def learn_one(self, x: Mapping, y: Any) -> None:
        """Learn from one record ``{feature: number}`` (absent features count as 0)."""
        learner = getattr(self, "_learner", None)
        if learner is None:
            check_record(x)
            with _all_or_nothing(self):
                self._check_params()
                self._setup_targets_from_one(y)
                self._build(len(x), list(x.keys()))
                self._learner.learn_dict(dict(x), self._encode_one(y), self._feature_index)
            return
        if type(x) is not dict:
            check_record(x)
            x = dict(x)
        learner.learn_dict(x, self._encode_one(y), self._feature_index)

    def learn_many(self, X: Any, y: Any) -> None:
        """One optimizer step on the mean gradient of a mini-batch (River's ``learn_many``)."""
        with _all_or_nothing(self):
            self._learn_many(X, y)

    def _learn_many(self, X: Any, y: Any) -> None:
        if getattr(self, "_learner", None) is None:
            Xa, targets = self._first_data(
                X, y, lambda ya: self._targets_for_first_partial_fit(ya, None))
        else:
            Xa, targets = self._more_data(X, y)
        self._learner.learn_batch(Xa, targets)

    def _prequential(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Test-then-train over the rows in order (the C++ stream loop).

        Returns (outputs before each update, encoded targets). An unfitted classifier takes
        its classes from the ``classes`` parameter or, failing that, from ``y``."""
        with _all_or_nothing(self):
            if getattr(self, "_learner", None) is None:
                def first_targets(ya: np.ndarray) -> np.ndarray:
                    classes = getattr(self, "classes", None)
                    if self._estimator_type == "classifier" and classes is None:
                        classes = np.unique(ya)
                    return self._targets_for_first_partial_fit(ya, classes)

                Xa, targets = self._first_data(X, y, first_targets)
            else:
                Xa, targets = self._more_data(X, y)
            outputs = self._learner.prequential(Xa, targets)
        return outputs, targets

    def predict_many(self, X: Any) -> np.ndarray:
        """Predictions for many rows (same as ``predict``)."""
        return self.predict(X)

    def _record_outputs(self, x: Mapping) -> np.ndarray:
        learner = self._check_fitted()
        if type(x) is not dict:
            check_record(x)
            x = dict(x)
        return learner.predict_dict(x, self._feature_index)

    # -- the model contract (registry, serving, checkpoints) -----------------------------------

    @property
    def params(self) -> np.ndarray:
        """Writeable float32 view of the flat parameter buffer (no copy): the trained weights.
        With weight averaging on (``Adaptation(average_decay=...)``), predictions come from
        their moving average instead, which ``state()`` saves as ``average.params``."""
        return self._check_fitted().params

    @property
    def layers(self) -> list[dict[str, Any]]:
        """Each Dense layer's shape, activation and offsets into :attr:`params`."""
        return self._check_fitted().layers

    @property
    def contract(self) -> dict[str, Any]:
        """Input width and output kind, which decide compatibility between versions."""
        learner = self._check_fitted()
        out: dict[str, Any] = {
            "n_inputs": int(learner.n_inputs),
            "output": learner.task,
            "n_outputs": int(learner.n_outputs),
            "feature_names": list(self._feature_index),
        }
        if hasattr(self, "classes_"):
            out["classes"] = _param_to_json(self.classes_)
        return out

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Named tensors and a JSON-able manifest that :meth:`from_state` turns back into an
        identical model (parameters, optimizer state, scaler statistics, counters)."""
        learner = self._check_fitted()
        steps, size, opt_state, slot_names = learner.optimizer_state()
        tensors: dict[str, np.ndarray] = {"params": np.array(learner.params, copy=True)}
        for i, slot in enumerate(slot_names):
            tensors[f"optimizer.{slot}"] = np.ascontiguousarray(opt_state[i])
        scaler = learner.scaler_state()
        if scaler is not None:
            for key, arr in scaler.items():
                tensors[f"scaler.{key}"] = arr
        ewc_lambda, anchor, fisher = learner.ewc_state()
        if len(anchor):
            tensors["ewc.anchor"] = anchor
            tensors["ewc.fisher"] = fisher
        average = learner.average_state()  # weight averaging: what predictions use
        if average is not None:
            tensors["average.params"] = average[2]
        manifest = {
            "format_version": STATE_FORMAT_VERSION,
            "library_version": _core.__version__,
            "estimator": f"{type(self).__module__}.{type(self).__name__}",
            "hyperparameters": {k: _param_to_json(v) for k, v in self.get_params().items()},
            "contract": self.contract,
            "layers": learner.layers,
            "optimizer": {"steps": int(steps), "size": int(size), "slots": list(slot_names),
                          "lr_scale": float(learner.lr_scale),
                          "hypergradient_lr": float(learner.hypergradient_lr)},
            "ewc_lambda": float(ewc_lambda),
            "average": None if average is None else {"decay": float(average[0]),
                                                     "steps": int(average[1])},
            "examples_seen": int(learner.examples_seen),
            "n_iter": int(self.n_iter_),
            "loss_curve": list(self.loss_curve_),
            "has_feature_names": hasattr(self, "feature_names_in_"),
        }
        return tensors, manifest

    @classmethod
    def from_state(cls, tensors: Mapping[str, np.ndarray], manifest: Mapping[str, Any]):
        """Rebuild a model saved with :meth:`state`; validates versions and shapes."""
        version = manifest.get("format_version")
        if version != STATE_FORMAT_VERSION:
            raise ValueError(
                f"model state has format_version {version!r}; this ducklearn reads version "
                f"{STATE_FORMAT_VERSION}. Re-save it with a matching ducklearn version."
            )
        expected = f"{cls.__module__}.{cls.__name__}"
        if manifest.get("estimator") != expected:
            raise ValueError(
                f"model state is for {manifest.get('estimator')!r}, not {expected!r}; load it "
                "with that class"
            )
        hyper = {k: _param_from_json(v) for k, v in manifest["hyperparameters"].items()}
        model = cls(**hyper)
        contract = manifest["contract"]
        if "classes" in contract:
            model._set_classes(np.asarray(contract["classes"]))
        names = contract["feature_names"] if manifest.get("has_feature_names") else None
        model._build(int(contract["n_inputs"]), names)
        learner = model._learner
        if learner.layers != manifest["layers"]:
            raise ValueError("model state layers do not match the architecture its "
                             "hyperparameters describe")
        params = np.asarray(tensors["params"], dtype=np.float32)
        if params.shape != (learner.n_params,):
            raise ValueError(
                f"tensor 'params' has shape {params.shape}, expected ({learner.n_params},)"
            )
        learner.params[:] = params
        opt = manifest["optimizer"]
        slots = [np.asarray(tensors[f"optimizer.{s}"], dtype=np.float32) for s in opt["slots"]]
        state = np.stack(slots) if slots else np.zeros((0, opt["size"]), dtype=np.float32)
        learner.load_optimizer_state(int(opt["steps"]), int(opt["size"]), state)
        learner.lr_scale = float(opt.get("lr_scale", 1.0))
        if "hypergradient_lr" in opt:
            learner.hypergradient_lr = float(opt["hypergradient_lr"])
        if "ewc.anchor" in tensors:
            learner.load_ewc(float(manifest.get("ewc_lambda", 0.0)),
                             np.asarray(tensors["ewc.anchor"], dtype=np.float32),
                             np.asarray(tensors["ewc.fisher"], dtype=np.float32))
        if bool(hyper.get("scale")):
            learner.load_scaler_state(*(tensors[f"scaler.{k}"] for k in
                                        ("count", "mean", "m2", "min", "max")))
        average = manifest.get("average")
        if (average is None) != ("average.params" not in tensors):
            raise ValueError("model state: averaged weights and their 'average' manifest "
                             "entry must come together")
        if average is not None:
            learner.load_average(float(average["decay"]), int(average["steps"]),
                                 np.asarray(tensors["average.params"], dtype=np.float32))
        learner.examples_seen = int(manifest["examples_seen"])
        model.n_iter_ = int(manifest["n_iter"])
        model.loss_curve_ = list(manifest["loss_curve"])
        return model

    # Pickling (copy.deepcopy, joblib, multiprocessing) goes through state(): plain arrays and
    # JSON, so the native learner never has to be pickled itself.
    def __getstate__(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        if getattr(self, "_learner", None) is not None:
            out["__ducklearn_state__"] = self.state()
        return out

    def __setstate__(self, data: dict[str, Any]) -> None:
        data = dict(data)
        saved = data.pop("__ducklearn_state__", None)
        if saved is None:
            self.__dict__.update(data)
            self._learner = None
            return
        restored = type(self).from_state(*saved)
        self.__dict__.update(restored.__dict__)
        self.__dict__.update({k: v for k, v in data.items() if k not in self.__dict__})


class ClassifierBase(OnlineEstimator):
    """Labels of any hashable type, mapped to class indices for the C++ learner."""

    _estimator_type = "classifier"

    def _n_classes(self) -> int:
        return len(self.classes_)

    def _loss(self, n_classes: int) -> tuple[str, float, float]:
        return ("logistic" if n_classes == 2 else "softmax"), 1.0, 0.5

    def _set_classes(self, classes: np.ndarray) -> None:
        classes = np.asarray(classes)
        if classes.ndim != 1 or len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {classes.tolist()!r}"
            )
        if len(np.unique(classes)) != len(classes):
            raise ValueError(f"classes must be distinct, got {classes.tolist()!r}")
        order = np.argsort(classes, kind="stable")
        self.classes_ = classes[order]
        self._label_index = {label: i for i, label in enumerate(self.classes_.tolist())}

    def _initial_output_bias(self, targets: np.ndarray, n_out: int) -> np.ndarray:
        counts = np.bincount(targets.astype(np.int64), minlength=len(self.classes_))
        prior = np.clip(counts / counts.sum(), 1e-6, 1.0)
        if n_out == 1:  # sigmoid output: the log-odds of the positive class
            return np.array([np.log(prior[1] / prior[0])], dtype=np.float32)
        logp = np.log(prior)
        return (logp - logp.mean()).astype(np.float32)

    @staticmethod
    def _check_label_type(y: np.ndarray) -> None:
        if y.dtype.kind == "f":
            if not np.isfinite(y).all():
                raise ValueError("Input y contains NaN or infinity; labels must be finite")
            if np.any(y != np.round(y)):
                raise ValueError(
                    "Unknown label type: continuous. Classifiers need discrete labels "
                    "(integers, strings or booleans); use a regressor for real targets"
                )
        if y.dtype.kind == "c":
            raise ValueError("Unknown label type: complex labels are not supported")

    def _targets_for_fit(self, y: np.ndarray) -> np.ndarray:
        self._check_label_type(y)
        self._set_classes(np.unique(y))
        return self._encode(y)

    def _targets_for_first_partial_fit(self, y: np.ndarray, classes: Any) -> np.ndarray:
        self._check_label_type(y)
        if classes is None:
            classes = getattr(self, "classes", None)
        if classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit (or set the "
                "'classes' parameter), e.g. partial_fit(X, y, classes=[0, 1])"
            )
        self._set_classes(np.asarray(classes))
        return self._encode(y)

    def _check_partial_classes(self, classes: Any) -> None:
        if classes is not None and not np.array_equal(np.sort(np.asarray(classes)),
                                                      self.classes_):
            raise ValueError(
                f"classes={np.asarray(classes).tolist()!r} differs from the classes of the "
                f"first partial_fit call {self.classes_.tolist()!r}"
            )

    def _encode(self, y: np.ndarray) -> np.ndarray:
        self._check_label_type(y)
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            bad = np.unique(np.asarray(y)[unknown])[:5].tolist()
            raise ValueError(
                f"y contains labels not in classes_ {self.classes_.tolist()!r}: {bad!r}"
            )
        return idx.astype(np.float32)

    def _setup_targets_from_one(self, y: Any) -> None:
        classes = getattr(self, "classes", None)
        if classes is not None:
            self._set_classes(np.asarray(classes))
        elif isinstance(y, (bool, np.bool_)):
            self._set_classes(np.array([False, True]))
        elif y in (0, 1):
            self._set_classes(np.array([0, 1]))
        else:
            raise ValueError(
                f"cannot infer the classes from a first label {y!r}; pass classes=[...] to "
                f"{type(self).__name__}(...) to learn a multi-class stream one record at a time"
            )

    def _encode_one(self, y: Any) -> float:
        try:
            return float(self._label_index[y])
        except (KeyError, TypeError):
            raise ValueError(
                f"label {y!r} is not one of classes_ {self.classes_.tolist()!r}"
            ) from None

    # scikit-learn
    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores: the log-odds of ``classes_[1]`` for binary problems (n,), per-class
        logits otherwise."""
        raw = self._decision(X)
        if raw.shape[1] == 1:
            return raw[:, 0]
        if raw.shape[1] == 2:  # a two-class softmax: the difference of logits is the log-odds
            return raw[:, 1] - raw[:, 0]
        return raw

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        rows = self._rows(X, fast=True)
        return self._learner.predict_proba(rows)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each row."""
        out = self._outputs(X)
        if out.shape[1] == 1:
            return self.classes_[(out[:, 0] > 0.5).astype(np.intp)]
        return self.classes_[np.argmax(out, axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Mean accuracy."""
        pred = self.predict(X)
        ya = check_y(y, len(pred))
        return float(np.mean(pred == ya))

    # River
    def predict_proba_one(self, x: Mapping) -> dict[Any, float]:
        """``{class: probability}`` for one record."""
        out = self._record_outputs(x)
        probs = [1.0 - float(out[0]), float(out[0])] if out.shape[0] == 1 else out.tolist()
        return dict(zip(self.classes_.tolist(), probs, strict=True))

    def predict_one(self, x: Mapping) -> Any:
        """Most probable class for one record."""
        learner = getattr(self, "_learner", None)
        classes = getattr(self, "_class_list", None)
        if learner is not None and classes is not None and type(x) is dict:
            # The hot per-record path: one C++ call returning the label.
            return learner.predict_dict_class(x, self._feature_index, classes)
        out = self._record_outputs(x)
        if out.shape[0] == 1:
            return self.classes_.tolist()[int(out[0] > 0.5)]
        return self.classes_.tolist()[int(np.argmax(out))]

    def predict_proba_many(self, X: Any) -> np.ndarray:
        return self.predict_proba(X)


class RegressorBase(OnlineEstimator):
    """Real-valued targets (squared, Huber or pinball loss)."""

    _estimator_type = "regressor"

    def _check_params(self) -> None:
        if self.loss not in _REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {_REGRESSION_LOSSES}, got {self.loss!r}")
        super()._check_params()

    def _loss(self, n_classes: int) -> tuple[str, float, float]:
        return self.loss, float(self.delta), float(self.quantile)

    def _set_classes(self, classes: np.ndarray) -> None:  # pragma: no cover - never called
        raise ValueError("regressors have no classes")

    @staticmethod
    def _as_targets(y: np.ndarray) -> np.ndarray:
        if y.dtype.kind not in "fiub":
            raise ValueError(
                f"Unknown label type: regression targets must be numbers, got dtype {y.dtype}"
            )
        t = np.asarray(y, dtype=np.float64)
        if not np.isfinite(t).all():
            raise ValueError("Input y contains NaN or infinity; targets must be finite")
        return np.ascontiguousarray(t, dtype=np.float32)

    def _targets_for_fit(self, y: np.ndarray) -> np.ndarray:
        return self._as_targets(y)

    def _initial_output_bias(self, targets: np.ndarray, n_out: int) -> np.ndarray:
        # The constant minimizing each loss: the mean (squared), the median (Huber, close
        # enough), the requested quantile (pinball).
        if self.loss == "pinball":
            level = np.quantile(targets, float(self.quantile))
        elif self.loss == "huber":
            level = np.median(targets)
        else:
            level = np.mean(targets, dtype=np.float64)
        return np.full(n_out, level, dtype=np.float32)

    def _targets_for_first_partial_fit(self, y: np.ndarray, classes: Any) -> np.ndarray:
        return self._as_targets(y)

    def _check_partial_classes(self, classes: Any) -> None:
        if classes is not None:
            raise ValueError("classes applies to classifiers only")

    def _encode(self, y: np.ndarray) -> np.ndarray:
        return self._as_targets(y)

    def _setup_targets_from_one(self, y: Any) -> None:
        return None

    def _encode_one(self, y: Any) -> float:
        if isinstance(y, bool) or not isinstance(y, (int, float, np.integer, np.floating)):
            raise TypeError(f"target must be a number, got {type(y).__name__}")
        v = float(y)
        if not np.isfinite(v):
            raise ValueError(f"target must be finite, got {v}")
        return v

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, shape (n,)."""
        return self._outputs(X)[:, 0]

    def score(self, X: Any, y: Any) -> float:
        """Coefficient of determination R²."""
        pred = self.predict(X).astype(np.float64)
        ya = self._as_targets(check_y(y, len(pred))).astype(np.float64)
        ss_res = float(np.sum((ya - pred) ** 2))
        ss_tot = float(np.sum((ya - ya.mean()) ** 2))
        if ss_tot == 0.0:
            return 1.0 if ss_res == 0.0 else 0.0
        return 1.0 - ss_res / ss_tot

    def predict_one(self, x: Mapping) -> float:
        """Predicted value for one record."""
        learner = getattr(self, "_learner", None)
        if learner is not None and type(x) is dict and learner.n_outputs == 1:
            return learner.predict_dict_first(x, self._feature_index)  # one C++ call
        return float(self._record_outputs(x)[0])
