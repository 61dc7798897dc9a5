"""
ducklearn native core (C++ kernels, layers, optimizers, feature kernels)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
from . import kernels
from . import features
from . import cuda
__all__: list[str] = ['ADWIN', 'AdaptationConfig', 'AdaptiveLearner', 'BatchTicket', 'Batcher', 'CudaUnavailableError', 'DucklearnError', 'HAS_BLAS', 'HAS_CUDA', 'Learner', 'Optimizer', 'OptimizerConfig', 'PageHinkley', 'PlateauDetector', 'Predictor', 'ReplayBuffer', 'ScheduleConfig', 'Sequential', 'all_finite', 'backend_info', 'blas_threads', 'cuda', 'features', 'kernels', 'set_blas_threads', 'set_simd_target']
class DucklearnError(RuntimeError):
    pass
class CudaUnavailableError(RuntimeError):
    pass
class Sequential:
    """
    Dense layers over one flat parameter buffer and one gradient buffer.
    """
    def __copy__(self) -> Sequential:
        ...
    def __deepcopy__(self, arg0: dict) -> Sequential:
        ...
    def __init__(self, n_inputs: typing.SupportsInt | typing.SupportsIndex, widths: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], activations: collections.abc.Sequence[str], leaky_alpha: typing.SupportsFloat | typing.SupportsIndex = 0.009999999776482582, seed: typing.SupportsInt | typing.SupportsIndex = 0, init: str = 'auto') -> None:
        ...
    def forward(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        """
        Raw outputs (n × n_outputs).
        """
    def forward_backward(self, X: typing.Any, y: typing.Any, loss: str = 'squared', delta: typing.SupportsFloat | typing.SupportsIndex = 1.0, tau: typing.SupportsFloat | typing.SupportsIndex = 0.5, grad_scale: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> float:
        """
        Summed loss; grads receives grad_scale * dL/dparams.
        """
    @property
    def grads(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        Writeable float32 view of the flat gradient buffer.
        """
    @property
    def layers(self) -> list:
        ...
    @property
    def n_inputs(self) -> int:
        ...
    @property
    def n_outputs(self) -> int:
        ...
    @property
    def n_params(self) -> int:
        ...
    @property
    def params(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        Writeable float32 view of the flat parameter buffer.
        """
class ScheduleConfig:
    """
    Learning-rate schedule (see optim/schedule.hpp).
    """
    kind: str
    def __init__(self) -> None:
        ...
    def at(self, t: typing.SupportsInt | typing.SupportsIndex) -> float:
        """
        Learning rate at step t.
        """
    def validate(self) -> None:
        ...
    @property
    def gamma(self) -> float:
        ...
    @gamma.setter
    def gamma(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def min_lr(self) -> float:
        ...
    @min_lr.setter
    def min_lr(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def power(self) -> float:
        ...
    @power.setter
    def power(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def step_size(self) -> int:
        ...
    @step_size.setter
    def step_size(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def t_max(self) -> int:
        ...
    @t_max.setter
    def t_max(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def warmup_start(self) -> float:
        ...
    @warmup_start.setter
    def warmup_start(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def warmup_steps(self) -> int:
        ...
    @warmup_steps.setter
    def warmup_steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class OptimizerConfig:
    kind: str
    nesterov: bool
    schedule: ScheduleConfig
    def __init__(self) -> None:
        ...
    def validate(self) -> None:
        ...
    @property
    def beta1(self) -> float:
        ...
    @beta1.setter
    def beta1(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def beta2(self) -> float:
        ...
    @beta2.setter
    def beta2(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def clip_norm(self) -> float:
        ...
    @clip_norm.setter
    def clip_norm(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def eps(self) -> float:
        ...
    @eps.setter
    def eps(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def hypergradient(self) -> float:
        ...
    @hypergradient.setter
    def hypergradient(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def initial_accumulator(self) -> float:
        ...
    @initial_accumulator.setter
    def initial_accumulator(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def l2(self) -> float:
        ...
    @l2.setter
    def l2(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def momentum(self) -> float:
        ...
    @momentum.setter
    def momentum(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def rho(self) -> float:
        ...
    @rho.setter
    def rho(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def slots(self) -> int:
        ...
    @property
    def weight_decay(self) -> float:
        ...
    @weight_decay.setter
    def weight_decay(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class Optimizer:
    """
    Element-wise optimizer over a flat float32 parameter array.
    """
    def __copy__(self) -> Optimizer:
        ...
    def __deepcopy__(self, arg0: dict) -> Optimizer:
        ...
    def __init__(self, config: OptimizerConfig) -> None:
        ...
    def load_state(self, t: typing.SupportsInt | typing.SupportsIndex, state: typing.Any) -> None:
        ...
    def reset(self) -> None:
        ...
    def set_size(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def step(self, params: typing.Any, grads: typing.Any) -> float:
        """
        Updates params in place; returns the learning rate used.
        """
    @property
    def config(self) -> OptimizerConfig:
        ...
    @property
    def current_lr(self) -> float:
        ...
    @property
    def hypergradient_lr(self) -> float:
        """
        The hypergradient-adapted base rate.
        """
    @hypergradient_lr.setter
    def hypergradient_lr(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr_scale(self) -> float:
        """
        Multiplier on every rate (adaptation policies move it).
        """
    @lr_scale.setter
    def lr_scale(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def size(self) -> int:
        ...
    @property
    def slot_names(self) -> list[str]:
        ...
    @property
    def state(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        View of the state, shape (slots, size).
        """
    @property
    def steps(self) -> int:
        ...
class PlateauDetector:
    """
    Plateau of an exponentially smoothed loss, with patience.
    """
    def __init__(self, smoothing: typing.SupportsFloat | typing.SupportsIndex = 0.30000001192092896, patience: typing.SupportsInt | typing.SupportsIndex = 5, min_delta: typing.SupportsFloat | typing.SupportsIndex = 9.999999747378752e-05) -> None:
        ...
    def reset(self) -> None:
        ...
    def update(self, loss: typing.SupportsFloat | typing.SupportsIndex) -> bool:
        ...
    @property
    def best(self) -> float:
        ...
    @property
    def converged(self) -> bool:
        ...
    @property
    def count(self) -> int:
        ...
    @property
    def since_best(self) -> int:
        ...
    @property
    def smoothed(self) -> float:
        ...
class Learner:
    """
    Model + loss + optimizer + optional online standardization.
    """
    @staticmethod
    def from_state_dict(tensors: dict, meta: dict) -> Learner:
        ...
    def __init__(self, n_inputs: typing.SupportsInt | typing.SupportsIndex, widths: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], activations: collections.abc.Sequence[str], loss: str, optimizer: OptimizerConfig, standardize: bool = False, seed: typing.SupportsInt | typing.SupportsIndex = 0, init: str = 'auto', leaky_alpha: typing.SupportsFloat | typing.SupportsIndex = 0.009999999776482582, delta: typing.SupportsFloat | typing.SupportsIndex = 1.0, tau: typing.SupportsFloat | typing.SupportsIndex = 0.5) -> None:
        ...
    def consolidate(self, X: typing.Any, y: typing.Any, lam: typing.SupportsFloat | typing.SupportsIndex, decay: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
        """
        Elastic weight consolidation on (X, y): anchor the weights, weight them by the empirical Fisher information.
        """
    def copy(self) -> Learner:
        ...
    def decision(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        """
        Raw outputs (logits or values), n × k.
        """
    def ewc_state(self) -> tuple[float, numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]:
        """
        (lambda, anchor, fisher) of elastic weight consolidation (empty when unused).
        """
    def fit_epoch(self, X: typing.Any, y: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> float:
        """
        One epoch of shuffled mini-batches; returns the mean loss.
        """
    def learn_batch(self, X: typing.Any, y: typing.Any, update_scaler: bool = True) -> float:
        """
        One step on the mean gradient of the batch; returns the summed loss.
        """
    def learn_dict(self, x: dict, y: typing.SupportsFloat | typing.SupportsIndex, index: dict) -> float:
        ...
    def learn_one(self, x: typing.Any, y: typing.SupportsFloat | typing.SupportsIndex) -> float:
        ...
    def average_state(self) -> typing.Any:
        """
        (decay, steps, averaged params) of weight averaging, or None when it is off.
        """
    def load_average(self, decay: typing.SupportsFloat | typing.SupportsIndex, steps: typing.SupportsInt | typing.SupportsIndex, params: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> None:
        ...
    def load_ewc(self, lam: typing.SupportsFloat | typing.SupportsIndex, anchor: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], fisher: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> None:
        ...
    def set_averaging(self, decay: typing.SupportsFloat | typing.SupportsIndex) -> None:
        """
        Predict with an exponential moving average of the weights (decay in [0, 1); 0 turns it off); it starts at the current weights.
        """
    def load_optimizer_state(self, t: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, state: typing.Any) -> None:
        ...
    def load_scaler_state(self, count: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], mean: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], m2: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], min: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], max: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> None:
        ...
    def optimizer_state(self) -> tuple[int, int, numpy.typing.NDArray[numpy.float32], list[str]]:
        """
        (steps, size, state (slots × size), slot names)
        """
    def predict(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        """
        Probabilities (classification) or values (regression), n × k.
        """
    def predict_dict(self, x: dict, index: dict) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def predict_dict_class(self, x: dict, index: dict, classes: list) -> typing.Any:
        """
        The predicted label of a binary classifier for one dict record.
        """
    def predict_dict_first(self, x: dict, index: dict) -> float:
        """
        P(y = 1) (binary) or the value (regression) for one dict record, as a float.
        """
    def predict_proba(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def prequential(self, X: typing.Any, y: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        """
        Test-then-train over the rows in order; returns the prediction made for each row before the model learned it (n × k).
        """
    def scaler_state(self) -> typing.Any:
        ...
    def snapshot(self) -> ...:
        """
        An immutable copy of the current model and input statistics (a Predictor).
        """
    def state_dict(self) -> tuple:
        """
        (tensors, meta): the complete state; from_state_dict rebuilds it exactly.
        """
    def update_scaler(self, X: typing.Any) -> None:
        ...
    @property
    def examples_seen(self) -> int:
        ...
    @examples_seen.setter
    def examples_seen(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def hypergradient_lr(self) -> float:
        ...
    @hypergradient_lr.setter
    def hypergradient_lr(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def layers(self) -> list:
        ...
    @property
    def lr_scale(self) -> float:
        ...
    @lr_scale.setter
    def lr_scale(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def n_inputs(self) -> int:
        ...
    @property
    def n_outputs(self) -> int:
        ...
    @property
    def n_params(self) -> int:
        ...
    @property
    def params(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        Writeable float32 view of the flat parameter buffer (zero-copy).
        """
    @property
    def standardize(self) -> bool:
        ...
    @property
    def task(self) -> str:
        ...
class Predictor:
    """
    An immutable model snapshot; predict() is safe from any number of threads at once.
    """
    def decision(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def predict(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        ...
    @property
    def layers(self) -> list:
        ...
    @property
    def n_inputs(self) -> int:
        ...
    @property
    def n_outputs(self) -> int:
        ...
    @property
    def params(self) -> numpy.typing.NDArray[numpy.float32]:
        ...
    @property
    def task(self) -> str:
        ...
class PageHinkley:
    """
    Page-Hinkley test for a rising mean.
    """
    def __init__(self, min_instances: typing.SupportsInt | typing.SupportsIndex = 30, delta: typing.SupportsFloat | typing.SupportsIndex = 0.005, threshold: typing.SupportsFloat | typing.SupportsIndex = 50.0, alpha: typing.SupportsFloat | typing.SupportsIndex = 0.9999) -> None:
        ...
    def reset(self) -> None:
        ...
    def update(self, x: typing.SupportsFloat | typing.SupportsIndex) -> bool:
        ...
    @property
    def count(self) -> int:
        ...
    @property
    def last_change_age(self) -> int:
        ...
    @property
    def mean(self) -> float:
        ...
    @property
    def statistic(self) -> float:
        ...
class ADWIN:
    """
    ADaptive WINdowing change detector.
    """
    def __init__(self, delta: typing.SupportsFloat | typing.SupportsIndex = 0.002, clock: typing.SupportsInt | typing.SupportsIndex = 32, max_buckets: typing.SupportsInt | typing.SupportsIndex = 5, min_window: typing.SupportsInt | typing.SupportsIndex = 5) -> None:
        ...
    def reset(self) -> None:
        ...
    def update(self, x: typing.SupportsFloat | typing.SupportsIndex) -> bool:
        ...
    @property
    def detections(self) -> int:
        ...
    @property
    def mean(self) -> float:
        ...
    @property
    def variance(self) -> float:
        ...
    @property
    def width(self) -> int:
        ...
class ReplayBuffer:
    """
    Reservoir of past examples, optionally prioritized.
    """
    def __init__(self, capacity: typing.SupportsInt | typing.SupportsIndex, dim: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex = 0, prioritized: bool = False, alpha: typing.SupportsFloat | typing.SupportsIndex = 0.6000000238418579, fifo: bool = False) -> None:
        ...
    def add(self, x: typing.Any, y: typing.SupportsFloat | typing.SupportsIndex, priority: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> None:
        ...
    def clear(self) -> None:
        ...
    def sample(self, k: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int64]]:
        ...
    def set_priority(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def capacity(self) -> int:
        ...
    @property
    def seen(self) -> int:
        ...
    @property
    def size(self) -> int:
        ...
class AdaptationConfig:
    background: bool
    detector: str
    flush_replay_on_swap: bool
    replay_prioritized: bool
    replay_recent: bool
    def __init__(self) -> None:
        ...
    def validate(self) -> None:
        ...
    @property
    def adwin_clock(self) -> int:
        ...
    @adwin_clock.setter
    def adwin_clock(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def adwin_delta(self) -> float:
        ...
    @adwin_delta.setter
    def adwin_delta(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def background_epochs(self) -> int:
        ...
    @background_epochs.setter
    def background_epochs(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def background_grace(self) -> int:
        ...
    @background_grace.setter
    def background_grace(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def background_lr_scale(self) -> float:
        ...
    @background_lr_scale.setter
    def background_lr_scale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def background_patience(self) -> int:
        ...
    @background_patience.setter
    def background_patience(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def boost_decay(self) -> int:
        ...
    @boost_decay.setter
    def boost_decay(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def consolidate_every(self) -> int:
        ...
    @consolidate_every.setter
    def consolidate_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def consolidate_samples(self) -> int:
        ...
    @consolidate_samples.setter
    def consolidate_samples(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def drift_lr_boost(self) -> float:
        ...
    @drift_lr_boost.setter
    def drift_lr_boost(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def ewc_decay(self) -> float:
        ...
    @ewc_decay.setter
    def ewc_decay(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def ewc_lambda(self) -> float:
        ...
    @ewc_lambda.setter
    def ewc_lambda(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def loss_smoothing(self) -> float:
        ...
    @loss_smoothing.setter
    def loss_smoothing(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def min_lr_scale(self) -> float:
        ...
    @min_lr_scale.setter
    def min_lr_scale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def ph_alpha(self) -> float:
        ...
    @ph_alpha.setter
    def ph_alpha(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def ph_delta(self) -> float:
        ...
    @ph_delta.setter
    def ph_delta(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def ph_min_instances(self) -> int:
        ...
    @ph_min_instances.setter
    def ph_min_instances(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def ph_threshold(self) -> float:
        ...
    @ph_threshold.setter
    def ph_threshold(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def plateau_every(self) -> int:
        ...
    @plateau_every.setter
    def plateau_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def plateau_factor(self) -> float:
        ...
    @plateau_factor.setter
    def plateau_factor(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def plateau_min_delta(self) -> float:
        ...
    @plateau_min_delta.setter
    def plateau_min_delta(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def plateau_patience(self) -> int:
        ...
    @plateau_patience.setter
    def plateau_patience(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def recent_window(self) -> int:
        ...
    @recent_window.setter
    def recent_window(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def replay_alpha(self) -> float:
        ...
    @replay_alpha.setter
    def replay_alpha(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def replay_batch(self) -> int:
        ...
    @replay_batch.setter
    def replay_batch(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def replay_capacity(self) -> int:
        ...
    @replay_capacity.setter
    def replay_capacity(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def replay_every(self) -> int:
        ...
    @replay_every.setter
    def replay_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def swap_margin(self) -> float:
        ...
    @swap_margin.setter
    def swap_margin(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def swap_z(self) -> float:
        ...
    @swap_z.setter
    def swap_z(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def average_decay(self) -> float:
        ...
    @average_decay.setter
    def average_decay(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def update_batch(self) -> int:
        ...
    @update_batch.setter
    def update_batch(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class AdaptiveLearner:
    """
    Per-example test-then-train with drift adaptation, replay and EWC.
    """
    @staticmethod
    def from_state_dict(tensors: dict, meta: dict) -> AdaptiveLearner:
        ...
    def __init__(self, base: Learner, config: AdaptationConfig, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        ...
    def active_state_dict(self) -> tuple:
        ...
    def consolidate(self, samples: typing.SupportsInt | typing.SupportsIndex = 256) -> None:
        ...
    def copy(self) -> AdaptiveLearner:
        """
        An independent deep copy (the whole state), e.g. a last-known-good restore point.
        """
    def learn(self, X: typing.Any, y: typing.Any) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float64]]:
        """
        Test-then-train over the rows: (predictions before each update, losses).
        """
    def snapshot(self) -> Predictor:
        ...
    def state_dict(self) -> tuple:
        ...
    @property
    def has_background(self) -> bool:
        ...
    @property
    def n_inputs(self) -> int:
        ...
    @property
    def n_outputs(self) -> int:
        ...
    @property
    def replay_size(self) -> int:
        ...
    @property
    def stats(self) -> dict:
        ...
    @property
    def task(self) -> str:
        ...
class BatchTicket:
    """
    A request queued by Batcher.submit (opaque; pass it to cancel()).
    """
class Batcher:
    """
    Dynamic batching in C++: worker threads gather queued rows into batches, compute each with one model call (GIL released for a _core.Predictor) and answer every caller.
    """
    DEADLINE: typing.ClassVar[int] = 1
    ERROR: typing.ClassVar[int] = 4
    OK: typing.ClassVar[int] = 0
    OVERLOADED: typing.ClassVar[int] = 2
    SHUTTING_DOWN: typing.ClassVar[int] = 3
    def __init__(self, predictor: typing.Any, version: typing.SupportsInt | typing.SupportsIndex, max_batch_rows: typing.SupportsInt | typing.SupportsIndex = 64, max_wait_us: typing.SupportsFloat | typing.SupportsIndex = 200.0, queue_capacity_rows: typing.SupportsInt | typing.SupportsIndex = 10000, workers: typing.SupportsInt | typing.SupportsIndex = 2, *, admit_share: typing.SupportsFloat | typing.SupportsIndex = 0.75, service_seconds: typing.SupportsFloat | typing.SupportsIndex = 0.0, latency_buckets: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex] = [], batch_buckets: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex] = [], resolver: typing.Any = None) -> None:
        """
        predictor: a _core.Predictor (computed without the GIL) or any object with predict(X), n_inputs and n_outputs. resolver(items) is called on each event loop with [(token, outcome), ...] for tickets from submit().
        """
    def cancel(self, ticket: BatchTicket) -> bool:
        """
        Withdraws a ticket still queued (True; it is never computed nor reported).
        """
    def close(self, drain: bool = True, timeout_s: typing.Any = None) -> bool:
        """
        Stops intake; with drain, answers what was accepted first (up to timeout_s). True once every worker has stopped.
        """
    def predict(self, X: typing.Any, timeout_s: typing.Any = None, priority: typing.Any = 0) -> tuple:
        """
        Blocks until X (float32, C-contiguous, n × n_inputs) is answered. Returns (out, status, version, info): out (n × n_outputs) when status is OK, else None; info is None (OK, SHUTTING_DOWN) or a dict: DEADLINE {computed, queue_seconds, compute_seconds, batch}, OVERLOADED {queued_rows, expected_wait_seconds} (expected_wait_seconds > 0: refused by admission control), ERROR {error (the exception), message, batch}.
        """
    def set_service_seconds(self, seconds: typing.SupportsFloat | typing.SupportsIndex) -> None:
        """
        Replaces admission control's estimate of one batch's service time.
        """
    def stats(self) -> dict:
        """
        Counters, queue state and histograms ((bounds, counts, sum, count), counts non-cumulative) since construction.
        """
    def submit(self, X: typing.Any, timeout_s: typing.Any, priority: typing.Any, loop: typing.Any, token: typing.Any) -> tuple:
        """
        Queues X without blocking: (ticket, None), and later resolver(items) runs on `loop` (call_soon_threadsafe) with (token, outcome) for it; or (None, outcome) when refused at once. token is any object the resolver needs back.
        """
    def swap(self, predictor: typing.Any, version: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Later batches compute with `predictor`, labelled `version`; running ones finish with theirs.
        """
    @property
    def closed(self) -> bool:
        ...
    @property
    def n_inputs(self) -> int:
        ...
    @property
    def n_outputs(self) -> int:
        ...
    @property
    def version(self) -> int:
        ...
def all_finite(X: typing.Any) -> bool:
    """
    Whether every entry of a C-contiguous float32 array is finite: one pass, no temporaries (a request's validation, on the caller's thread with the GIL held).
    """
def backend_info() -> dict:
    ...
def blas_threads() -> int:
    ...
def set_blas_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def set_simd_target(name: str) -> bool:
    """
    Selects 'auto', 'generic', 'avx2' or 'avx512' kernels; False if unsupported.
    """
HAS_BLAS: bool = True
HAS_CUDA: bool = False
__version__: str = '0.1.0'
