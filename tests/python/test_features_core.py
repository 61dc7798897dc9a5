"""Feature kernels in ``_core.features``: MurmurHash3, signed hashing, running statistics,
min-max and standard scaling, one-hot encoding."""

from __future__ import annotations

import copy
import struct

import numpy as np
import pytest
from ducklearn import _core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

F = _core.features

# ---------------------------------------------------------------------------------------------
# MurmurHash3_x86_32
# ---------------------------------------------------------------------------------------------


def murmur3_32_ref(data: bytes, seed: int = 0) -> int:
    """Pure-Python MurmurHash3_x86_32, transcribed from Austin Appleby's MurmurHash3.cpp."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h = seed & mask
    n_blocks = len(data) // 4
    for (k,) in struct.iter_unpack("<I", data[: 4 * n_blocks]):
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask
    tail = data[4 * n_blocks:]
    k = 0
    for i, byte in enumerate(tail):
        k |= byte << (8 * i)
    if tail:
        h ^= rotl((k * c1) & mask, 15) * c2 & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


# Published MurmurHash3_x86_32 test vectors (data, seed, hash), as collected with the
# reference implementation (e.g. the SMHasher-verified list on Stack Overflow, question
# 14747343); every one is also checked against two independent implementations below.
VECTORS = [
    (b"", 0, 0x00000000),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\xff\xff\xff\xff", 0, 0x76293B50),
    (b"\x21\x43\x65\x87", 0, 0xF55B516B),
    (b"\x21\x43\x65\x87", 0x5082EDEE, 0x2362F9DE),
    (b"\x21\x43\x65", 0, 0x7E4A8634),
    (b"\x21\x43", 0, 0xA0F7B07A),
    (b"\x21", 0, 0x72661CF4),
    (b"\x00\x00\x00\x00", 0, 0x2362F9DE),
    (b"\x00\x00\x00", 0, 0x85F0B427),
    (b"\x00\x00", 0, 0x30F4C306),
    (b"\x00", 0, 0x514E28B7),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"aaa", 0x9747B28C, 0x283E0130),
    (b"aa", 0x9747B28C, 0x5D211726),
    (b"a", 0x9747B28C, 0x7FA09EA6),
    (b"abcd", 0x9747B28C, 0xF0478627),
    (b"abc", 0x9747B28C, 0xC84A62DD),
    (b"ab", 0x9747B28C, 0x74875592),
    (b"abc", 0, 0xB3DD93FA),
    (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    ("ππππππππ".encode(), 0x9747B28C, 0xD58063C1),
    (b"a" * 256, 0x9747B28C, 0x37405BDC),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 0, 0xEE925B90),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
]


@pytest.mark.parametrize(("data", "seed", "expected"), VECTORS,
                         ids=[f"{d[:8]!r}-{s:#x}" for d, s, _ in VECTORS])
def test_murmur3_published_vectors(data, seed, expected):
    # The vector itself is first confirmed by independent implementations...
    assert murmur3_32_ref(data, seed) == expected
    try:
        import mmh3
    except ImportError:
        pass
    else:
        assert mmh3.hash(data, seed, signed=False) == expected
    # ...then the core must agree with it.
    assert F.murmur3_32(data, seed) == expected


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64), seed=st.integers(0, 2**32 - 1))
def test_murmur3_matches_reference_on_random_bytes(data, seed):
    assert F.murmur3_32(data, seed) == murmur3_32_ref(data, seed)


def test_murmur3_str_is_hashed_as_utf8_and_errors():
    assert F.murmur3_32("ππ", 7) == F.murmur3_32("ππ".encode(), 7)
    assert F.murmur3_32("plain") == F.murmur3_32(b"plain", 0)
    with pytest.raises(TypeError, match="str or bytes"):
        F.murmur3_32(123)
    with pytest.raises(TypeError):
        F.murmur3_32(b"x", -1)  # seeds are uint32


# ---------------------------------------------------------------------------------------------
# signed feature hashing
# ---------------------------------------------------------------------------------------------


TOKENS = [f"token-{i}" for i in range(20000)]


def test_hash_tokens_definition():
    tokens = ["a", "bb", "", "ccc", "π", "some longer token"]
    seed, bits = 42, 11
    index, sign = F.hash_tokens("color", tokens, bits, seed)
    assert index.dtype == np.uint32 and sign.dtype == np.float32
    assert index.shape == sign.shape == (len(tokens),)
    fseed = murmur3_32_ref(b"color", seed)
    assert F.field_seed("color", seed) == fseed
    for tok, i, s in zip(tokens, index, sign, strict=True):
        h = murmur3_32_ref(tok.encode(), fseed)
        assert i == h & ((1 << bits) - 1)
        assert s == (-1.0 if h >> 31 else 1.0)


def test_hash_tokens_is_deterministic_and_in_range():
    for bits in (1, 4, 18, 31):
        a = F.hash_tokens("f", TOKENS[:2000], bits)
        b = F.hash_tokens("f", list(TOKENS[:2000]), bits)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert int(a[0].max()) < 2**bits
        # The top bucket bit is used too (2000 tokens miss it with probability 2^-2000).
        assert int(a[0].max()) >= 2 ** (bits - 1)
        assert set(np.unique(a[1])) == {-1.0, 1.0}


def test_hash_token_signs_are_balanced():
    _, sign = F.hash_tokens("field", TOKENS, 16)
    n = len(TOKENS)
    plus = np.count_nonzero(sign > 0)
    # Binomial(n, 1/2): 5 standard deviations.
    assert abs(plus - n / 2) < 5 * np.sqrt(n) / 2


def test_hash_token_buckets_are_uniform():
    bits = 6
    index, _ = F.hash_tokens("field", TOKENS, bits)
    counts = np.bincount(index, minlength=2**bits)
    expected = len(TOKENS) / 2**bits
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    dof = 2**bits - 1
    # Chi-square with 63 degrees of freedom: mean 63, sd ~11.2; 6 sd above is ~1e-7 likely.
    assert chi2 < dof + 6 * np.sqrt(2 * dof)
    assert counts.min() > 0


def test_fields_and_seeds_separate_equal_tokens():
    a, sa = F.hash_tokens("city", TOKENS[:5000], 20)
    b, sb = F.hash_tokens("country", TOKENS[:5000], 20)
    c, _ = F.hash_tokens("city", TOKENS[:5000], 20, seed=1)
    # With 2^20 buckets, equal buckets by chance occur for ~5000 / 2^20 of the tokens.
    assert np.mean(a == b) < 0.01
    assert np.mean(a == c) < 0.01
    assert 0.4 < np.mean(sa == sb) < 0.6


def test_hash_tokens_bytes_str_and_errors():
    i1, s1 = F.hash_tokens("f", ["é", "x"], 12)
    i2, s2 = F.hash_tokens(b"f", ["é".encode(), b"x"], 12)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)
    empty = F.hash_tokens("f", [], 8)
    assert empty[0].shape == (0,) and empty[1].shape == (0,)
    for bits in (0, 32, -1):
        with pytest.raises(ValueError, match=r"bits must be in \[1, 31\]"):
            F.hash_tokens("f", ["a"], bits)
    with pytest.raises(TypeError, match="str or bytes"):
        F.hash_tokens("f", ["a", 3], 8)
    with pytest.raises(TypeError, match="str or bytes"):
        F.hash_tokens(None, ["a"], 8)


# ---------------------------------------------------------------------------------------------
# RunningStats (hypothesis)
# ---------------------------------------------------------------------------------------------


# The Welford kernels are SIMD-dispatched; the fixture only switches a global per test, so
# reusing it across hypothesis examples is intended.
_simd_ok = [HealthCheck.function_scoped_fixture]

_value = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)
_entry = st.one_of(_value, _value, _value, st.just(float("nan")))  # ~1 in 4 missing


@st.composite
def matrices(draw, min_rows=0, max_rows=40):
    d = draw(st.integers(1, 5))
    n = draw(st.integers(min_rows, max_rows))
    return draw(hnp.arrays(np.float32, (n, d), elements=_entry))


def stats_ref(X: np.ndarray) -> dict[str, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    out = {k: np.zeros(d) for k in ("count", "mean", "m2")}
    out["min"] = np.full(d, np.inf)
    out["max"] = np.full(d, -np.inf)
    for j in range(d):
        v = X[:, j][~np.isnan(X[:, j])]
        out["count"][j] = v.size
        if v.size:
            out["mean"][j] = v.mean()
            out["m2"][j] = np.sum((v - v.mean()) ** 2)
            out["min"][j] = v.min()
            out["max"][j] = v.max()
    return out


def assert_stats_equal(s: _core.features.RunningStats, X: np.ndarray) -> None:
    ref = stats_ref(X)
    scale = max(1.0, float(np.nanmax(np.abs(X), initial=0.0)))
    n = max(1, X.shape[0])
    np.testing.assert_array_equal(s.count, ref["count"])
    np.testing.assert_allclose(s.mean, ref["mean"], rtol=1e-9, atol=1e-11 * n * scale)
    np.testing.assert_allclose(s.m2, ref["m2"], rtol=1e-8, atol=1e-11 * n * scale**2)
    np.testing.assert_array_equal(s.min, ref["min"].astype(np.float32))
    np.testing.assert_array_equal(s.max, ref["max"].astype(np.float32))
    for ddof in (0, 1):
        var = s.variance(ddof)
        c = ref["count"]
        want = np.where(c > ddof, ref["m2"] / np.maximum(c - ddof, 1), np.nan)
        np.testing.assert_allclose(var, want, rtol=1e-8, atol=1e-11 * n * scale**2)


@settings(max_examples=100, deadline=None, suppress_health_check=_simd_ok)
@given(X=matrices())
def test_running_stats_match_numpy(simd_target, X):
    s = F.RunningStats(X.shape[1])
    s.update(X)
    assert s.dim == X.shape[1]
    assert_stats_equal(s, X)


@settings(max_examples=60, deadline=None)
@given(X=matrices(), data=st.data())
def test_running_stats_row_chunks_equal_one_update(X, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(X)), max_size=4)))
    s = F.RunningStats(X.shape[1])
    for part in np.split(X, cuts):
        s.update(part)
    assert_stats_equal(s, X)


@settings(max_examples=100, deadline=None, suppress_health_check=_simd_ok)
@given(X=matrices(), data=st.data())
def test_running_stats_merge_equals_concatenated_stream(simd_target, X, data):
    cut = data.draw(st.integers(0, len(X)))
    a, b = F.RunningStats(X.shape[1]), F.RunningStats(X.shape[1])
    a.update(X[:cut])
    b.update(X[cut:])
    a.merge(b)
    assert_stats_equal(a, X)
    assert_stats_equal(b, X[cut:])  # the merged-in state is not modified


def test_running_stats_nan_is_skipped_per_column():
    X = np.array([[1.0, np.nan], [np.nan, np.nan], [3.0, 5.0]], dtype=np.float32)
    s = F.RunningStats(2)
    s.update(X)
    np.testing.assert_array_equal(s.count, [2, 1])
    np.testing.assert_allclose(s.mean, [2.0, 5.0])
    np.testing.assert_allclose(s.variance(0), [1.0, 0.0])
    assert np.isnan(s.variance(1)[1])  # one value: no sample variance
    np.testing.assert_array_equal(s.min, [1.0, 5.0])
    np.testing.assert_array_equal(s.max, [3.0, 5.0])


def test_running_stats_large_offset_is_accurate():
    # Welford in double keeps the variance of a stream far from 0 accurate.
    rng = np.random.default_rng(0)
    X = (1e4 + rng.normal(size=(5000, 1))).astype(np.float32)
    s = F.RunningStats(1)
    s.update(X)
    ref = np.var(X.astype(np.float64))
    assert s.variance(0)[0] == pytest.approx(ref, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# standardize / minmax
# ---------------------------------------------------------------------------------------------


def _std_ref(stats, X):
    """(x - mean) / population std with the stats' state; std = 1 while the variance is 0."""
    c, mean, m2 = stats.count, stats.mean, stats.m2
    var = np.where(c > 0, m2 / np.maximum(c, 1), 0.0)
    sd = np.where(var > 0, np.sqrt(var), 1.0)
    return (X.astype(np.float64) - mean) / sd


def _minmax_ref(stats, X):
    mn, mx = stats.min.astype(np.float64), stats.max.astype(np.float64)
    rng_ = mx - mn
    ok = np.isfinite(rng_) & (rng_ > 0)
    out = (X.astype(np.float64) - mn) / np.where(ok, rng_, 1.0)
    return np.where(ok, out, 0.0)


def test_standardize_uses_current_statistics(rng):
    X = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    X[:, 3] = 7.0  # a constant column: variance 0, so std is taken as 1
    s = F.RunningStats(4)
    s.update(X)
    Z = s.standardize(X)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z, _std_ref(s, X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Z[:, :3].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(Z[:, :3].std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(Z[:, 3], 0.0)
    before = (s.count.copy(), s.mean.copy())
    s.standardize(X + 100)  # read-only: the statistics do not move
    np.testing.assert_array_equal(s.count, before[0])
    np.testing.assert_array_equal(s.mean, before[1])


def test_standardize_without_data_is_identity(rng):
    X = rng.normal(size=(3, 2)).astype(np.float32)
    np.testing.assert_array_equal(F.RunningStats(2).standardize(X), X)
    np.testing.assert_array_equal(F.RunningStats(2).minmax(X), 0.0)


def test_standardize_propagates_nan():
    s = F.RunningStats(2)
    s.update(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32))
    Z = s.standardize(np.array([[np.nan, 4.0]], dtype=np.float32))
    assert np.isnan(Z[0, 0]) and Z[0, 1] == pytest.approx(1.0)


@settings(max_examples=50, deadline=None, suppress_health_check=_simd_ok)
@given(X=matrices(min_rows=1))
def test_update_standardize_is_update_then_standardize_per_row(simd_target, X):
    fused = F.RunningStats(X.shape[1])
    loop = F.RunningStats(X.shape[1])
    out = fused.update_standardize(X)
    want = np.empty_like(X)
    for i in range(len(X)):
        loop.update(X[i:i + 1])
        want[i] = loop.standardize(X[i:i + 1])[0]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert_stats_equal(fused, X)


def test_update_standardize_first_row_is_zero(rng):
    s = F.RunningStats(3)
    out = s.update_standardize(rng.normal(size=(4, 3)).astype(np.float32))
    np.testing.assert_array_equal(out[0], 0.0)


def test_minmax_scales_with_current_range():
    s = F.RunningStats(3)
    s.update(np.array([[0.0, 10.0, 5.0], [4.0, 20.0, 5.0]], dtype=np.float32))
    X = np.array([[1.0, 15.0, 5.0], [8.0, 0.0, 9.0]], dtype=np.float32)
    out = s.minmax(X)
    # No clipping: values outside the seen range map outside [0, 1]; a constant column is 0.
    np.testing.assert_allclose(out, [[0.25, 0.5, 0.0], [2.0, -1.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(out, _minmax_ref(s, X), rtol=1e-6)
    assert np.isnan(s.minmax(np.array([[np.nan, 1.0, 1.0]], dtype=np.float32))[0, 0])


@settings(max_examples=50, deadline=None, suppress_health_check=_simd_ok)
@given(X=matrices(min_rows=1))
def test_update_minmax_is_update_then_minmax_per_row(simd_target, X):
    fused = F.RunningStats(X.shape[1])
    loop = F.RunningStats(X.shape[1])
    out = fused.update_minmax(X)
    want = np.empty_like(X)
    for i in range(len(X)):
        loop.update(X[i:i + 1])
        want[i] = loop.minmax(X[i:i + 1])[0]
    np.testing.assert_array_equal(out, want)
    finite = ~np.isnan(out)
    assert np.all((out[finite] >= 0.0) & (out[finite] <= 1.0))  # each row is inside its range
    assert_stats_equal(fused, X)


def test_running_stats_reset_load_copy():
    s = F.RunningStats(2)
    s.update(np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32))
    twin = copy.deepcopy(s)
    shallow = copy.copy(s)
    s.update(np.array([[100.0, 100.0]], dtype=np.float32))
    np.testing.assert_array_equal(twin.count, [2, 2])
    np.testing.assert_array_equal(shallow.count, [2, 2])
    restored = F.RunningStats(2)
    restored.load(twin.count, twin.mean, twin.m2, twin.min, twin.max)
    for attr in ("count", "mean", "m2", "min", "max"):
        np.testing.assert_array_equal(getattr(restored, attr), getattr(twin, attr))
    s.reset()
    np.testing.assert_array_equal(s.count, 0)
    np.testing.assert_array_equal(s.mean, 0)
    np.testing.assert_array_equal(s.min, np.inf)
    np.testing.assert_array_equal(s.max, -np.inf)
    with pytest.raises(ValueError, match="entries"):
        restored.load([1.0], [0.0], [0.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="invalid running-stats state"):
        restored.load([-1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="invalid running-stats state"):
        restored.load([1.0, 1.0], [0.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [0.0, 0.0])


def test_running_stats_errors():
    with pytest.raises(ValueError, match="d >= 1"):
        F.RunningStats(0)
    s = F.RunningStats(3)
    with pytest.raises(ValueError, match="columns"):
        s.update(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="2-D"):
        s.update(np.zeros(3, dtype=np.float32))
    for method in (s.standardize, s.update_standardize, s.minmax, s.update_minmax):
        with pytest.raises(ValueError, match="columns"):
            method(np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="cannot merge"):
        s.merge(F.RunningStats(2))
    with pytest.raises(TypeError):
        s.update(np.array([["a", "b", "c"]]))
    np.testing.assert_array_equal(s.count, 0)  # failed calls left the state alone


# ---------------------------------------------------------------------------------------------
# one_hot
# ---------------------------------------------------------------------------------------------


def test_one_hot_known_codes():
    out = F.one_hot(np.array([2, 0, 1, 2]), 3)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])
    assert F.one_hot(np.array([], dtype=np.int64), 3).shape == (0, 3)


def test_one_hot_other_bucket():
    # 4 columns: codes 0..2 are known, anything else lands in the last ("other") column.
    out = F.one_hot([0, 2, 3, -1, 99], 4, other_bucket=True)
    np.testing.assert_array_equal(out.argmax(axis=1), [0, 2, 3, 3, 3])
    np.testing.assert_array_equal(out.sum(axis=1), 1.0)


def test_one_hot_errors():
    with pytest.raises(ValueError, match=r"code 3 at row 1 is outside \[0, 3\).*other"):
        F.one_hot([0, 3], 3)
    with pytest.raises(ValueError, match="code -1 at row 0"):
        F.one_hot([-1], 3)
    with pytest.raises(ValueError, match="at least one category"):
        F.one_hot([0], 0)
    with pytest.raises(ValueError, match="at least one category"):
        F.one_hot([0], 1, other_bucket=True)  # only the other bucket: no known category
    with pytest.raises(ValueError):
        F.one_hot([0], -2)
    with pytest.raises(ValueError, match="1-D"):
        F.one_hot(np.zeros((2, 2), dtype=np.int64), 3)
    with pytest.raises(TypeError, match="integers"):
        F.one_hot(np.array([1.7]), 3)  # never truncated silently
