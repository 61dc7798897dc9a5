"""
Feature kernels: hashing, statistics, one-hot
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['FeaturePlan', 'ISSUE_NOT_MAPPING', 'ISSUE_UNKNOWN_FIELD', 'ParsedBatch', 'RunningStats', 'field_seed', 'hash_tokens', 'murmur3_32', 'one_hot', 'tokenize_text']
class RunningStats:
    """
    Per-column count/mean/variance (Welford, mergeable) and min/max.
    """
    def __copy__(self) -> RunningStats:
        ...
    def __deepcopy__(self, arg0: dict) -> RunningStats:
        ...
    def __init__(self, d: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def load(self, count: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], mean: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], m2: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], min: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], max: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> None:
        ...
    def merge(self, other: RunningStats) -> None:
        ...
    def minmax(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def reset(self) -> None:
        ...
    def standardize(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def update(self, X: typing.Any) -> None:
        ...
    def update_minmax(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def update_standardize(self, X: typing.Any) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def variance(self, ddof: typing.SupportsInt | typing.SupportsIndex = 0) -> numpy.typing.NDArray[numpy.float64]:
        ...
    @property
    def count(self) -> numpy.typing.NDArray[numpy.float64]:
        ...
    @property
    def dim(self) -> int:
        ...
    @property
    def m2(self) -> numpy.typing.NDArray[numpy.float64]:
        ...
    @property
    def max(self) -> numpy.typing.NDArray[numpy.float32]:
        ...
    @property
    def mean(self) -> numpy.typing.NDArray[numpy.float64]:
        ...
    @property
    def min(self) -> numpy.typing.NDArray[numpy.float32]:
        ...
class FeaturePlan:
    """
    Compiled feature extraction (see ducklearn.features.Extractor).
    """
    def __init__(self, fields: list, crosses: list, seed: typing.SupportsInt | typing.SupportsIndex, convert_timestamp: typing.Any) -> None:
        ...
    def parse_columns(self, columns: list, n: typing.SupportsInt | typing.SupportsIndex, rejected: typing.Any, now: typing.SupportsFloat | typing.SupportsIndex) -> ...:
        """
        Parse per-field columns: ('values', float64, uint8 status), ('objects', seq) or ('missing',).
        """
    def parse_records(self, records: typing.Any, unknown_policy: typing.SupportsInt | typing.SupportsIndex, now: typing.SupportsFloat | typing.SupportsIndex) -> ...:
        """
        Parse a list of dicts (policy for unknown keys: 0 error, 1 ignore, 2 record); timestamp ages are measured from now (Unix seconds).
        """
    def set_impute(self, values: typing.Any) -> None:
        ...
    def set_normalization(self, shift: typing.Any, scale: typing.Any, lo: typing.Any, hi: typing.Any, impute: typing.Any = None) -> None:
        """
        Publish normalization (and impute) values atomically; running fills keep theirs.
        """
    def value_column(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> int:
        ...
    @property
    def column_names(self) -> list[str]:
        ...
    @property
    def n_features(self) -> int:
        ...
    @property
    def n_fields(self) -> int:
        ...
class ParsedBatch:
    """
    A parsed batch (see FeaturePlan.parse_records).
    """
    def csr(self, raw: typing.Any = None) -> tuple:
        """
        Kept rows as CSR (data, indices, indptr)
        """
    def dense(self, raw: typing.Any = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        Kept rows as a float32 matrix (raw: reuse raw() values)
        """
    def raw(self) -> numpy.typing.NDArray[numpy.float64]:
        """
        Kept rows: one raw float64 per field (NaN = missing)
        """
    def validate(self, want_counts: bool = False) -> tuple:
        """
        (keep uint8[n], issues [(row, field, code, detail)], unknown [(row, key)], counts)
        """
    @property
    def n(self) -> int:
        ...
def field_seed(field: typing.Any, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    ...
def hash_tokens(field: typing.Any, tokens: collections.abc.Sequence, bits: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[numpy.typing.NDArray[numpy.uint32], numpy.typing.NDArray[numpy.float32]]:
    """
    Signed hashing of (field, token) pairs: (bucket indices uint32, signs float32).
    """
def murmur3_32(data: typing.Any, seed: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    MurmurHash3_x86_32 of bytes (str is hashed as UTF-8).
    """
def one_hot(codes: typing.Any, n_categories: typing.SupportsInt | typing.SupportsIndex, other_bucket: bool = False) -> numpy.typing.NDArray[numpy.float32]:
    ...
def tokenize_text(text: str) -> list[str]:
    """
    The tokens a Text field hashes (lowercased alphanumeric runs).
    """
ISSUE_NOT_MAPPING: int = 10
ISSUE_UNKNOWN_FIELD: int = 11
