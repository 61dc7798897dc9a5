// Internal: the ISA-independent part of a packed-weight inference GEMM (KernelTable::
// gemm_packed), included by each ISA's translation unit inside its own unnamed namespace,
// after it defines kMR, kDotRows, row_block<MR> (MR rows × all columns) and dot_block<R>
// (R rows of the narrow n < kPackNarrow path). Like kernels_impl.hpp, it is compiled once per
// ISA and has internal linkage there. No include guard: each ISA's file includes it once.

// m < kMR rows: one block of exactly m rows.
template <int MR>
void panel_rows(const float* X, int64_t m, int64_t k, const float* Wp, const float* b, int64_t n,
                float* Y, int act, float alpha) {
  if constexpr (MR > 1) {
    if (m < MR) {
      panel_rows<MR - 1>(X, m, k, Wp, b, n, Y, act, alpha);
      return;
    }
  }
  row_block<MR>(X, k, Wp, b, n, Y, act, alpha);
}

void gemm_packed(const float* X, int64_t m, int64_t k, const float* Wp, const float* b, int64_t n,
                 float* Y, int act, float alpha) {
  if (m <= 0 || n <= 0) return;
  if (n < kPackNarrow) {
    int64_t i = 0;
    for (; i + kDotRows <= m; i += kDotRows) {
      dot_block<kDotRows>(X + i * k, k, Wp, b, n, Y + i * n, act, alpha);
    }
    for (; i < m; ++i) dot_block<1>(X + i * k, k, Wp, b, n, Y + i * n, act, alpha);
    return;
  }
  int64_t i = 0;
  for (; i + kMR <= m; i += kMR) row_block<kMR>(X + i * k, k, Wp, b, n, Y + i * n, act, alpha);
  if (i < m) panel_rows<kMR - 1>(X + i * k, m - i, k, Wp, b, n, Y + i * n, act, alpha);
}
