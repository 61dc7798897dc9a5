"""Entity features: schemas, compiled extraction, online normalization, validation,
a feature store and quality monitoring.

>>> from ducklearn.features import CodeFile
>>> extractor = CodeFile.compile()
>>> extractor.n_features > 50
True
"""

from __future__ import annotations

from ducklearn.features.extract import CSRMatrix, Extractor, to_unix_seconds
from ducklearn.features.normalize import (
    ClippedNormalizer,
    KLLSketch,
    MinMaxNormalizer,
    Normalizer,
    RobustNormalizer,
    StandardNormalizer,
    make_normalizer,
    normalizer_from_state,
)
from ducklearn.features.quality import QualityMonitor
from ducklearn.features.schema import (
    Boolean,
    Categorical,
    CodeFile,
    Cross,
    FeatureSchema,
    Field,
    Numeric,
    Project,
    Text,
    Timestamp,
    Tokens,
    User,
    expected_collision_rate,
)
from ducklearn.features.store import FeatureStore, open_store
from ducklearn.features.validation import DeadLetter, FieldError, RecordValidationError

__all__ = [
    "Boolean", "Categorical", "ClippedNormalizer", "CodeFile", "Cross", "CSRMatrix",
    "DeadLetter", "Extractor", "FeatureSchema", "FeatureStore", "Field", "FieldError",
    "KLLSketch", "MinMaxNormalizer", "Normalizer", "Numeric", "Project", "QualityMonitor",
    "RecordValidationError", "RobustNormalizer", "StandardNormalizer", "Text", "Timestamp",
    "Tokens", "User", "expected_collision_rate", "make_normalizer", "normalizer_from_state",
    "open_store", "to_unix_seconds",
]
