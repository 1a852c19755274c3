#include "camera_fit.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace codecprim {

namespace {

constexpr int kMaxUnknowns = 4;
constexpr int kMaxSums = 12;

// sums[k] = sum over i of terms(i)[k], in four interleaved partial sums (independent chains the compiler can
// put in vector lanes; one chain per sum waited on each addition's latency).
template <int S, typename Terms>
void lane_sums(int64_t n, double* sums, Terms terms) {
  double acc[S][4] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int l = 0; l < 4; ++l) {
      double t[S];
      terms(i + l, t);
      for (int k = 0; k < S; ++k) acc[k][l] += t[k];
    }
  }
  for (; i < n; ++i) {
    double t[S];
    terms(i, t);
    for (int k = 0; k < S; ++k) acc[k][0] += t[k];
  }
  for (int k = 0; k < S; ++k) sums[k] = (acc[k][0] + acc[k][1]) + (acc[k][2] + acc[k][3]);
}

// Weighted sums whose entries are the normal equations of the model (the rows of ops/camera.py's
// _fit_features): similarity 1, u, v, u^2 + v^2 | u u' + v v', u v' - v u', u', v'; affine 1, u, v, u^2, u v,
// v^2, u u', v u', u', u v', v v', v'. A dropped point has weight 0.
void weighted_sums(CameraModel model, const double* u, const double* v, const double* up, const double* vp,
                   const double* w, int64_t n, double* sums) {
  if (model == CameraModel::kSimilarity) {
    lane_sums<8>(n, sums, [&](int64_t i, double* t) {
      const double a = u[i], b = v[i], c = up[i], d = vp[i], wi = w[i];
      t[0] = wi;
      t[1] = wi * a;
      t[2] = wi * b;
      t[3] = wi * (a * a + b * b);
      t[4] = wi * (a * c + b * d);
      t[5] = wi * (a * d - b * c);
      t[6] = wi * c;
      t[7] = wi * d;
    });
    return;
  }
  lane_sums<12>(n, sums, [&](int64_t i, double* t) {
    const double a = u[i], b = v[i], c = up[i], d = vp[i], wi = w[i];
    t[0] = wi;
    t[1] = wi * a;
    t[2] = wi * b;
    t[3] = wi * a * a;
    t[4] = wi * a * b;
    t[5] = wi * b * b;
    t[6] = wi * a * c;
    t[7] = wi * b * c;
    t[8] = wi * c;
    t[9] = wi * a * d;
    t[10] = wi * b * d;
    t[11] = wi * d;
  });
}

// Solves the k x k system `a` x = `b` (nrhs right-hand sides, column-major in b: b[r * nrhs + j]) by Gaussian
// elimination with partial pivoting, in place. The caller adds a ridge, so the pivots never vanish.
void solve(double (&a)[kMaxUnknowns][kMaxUnknowns], double* b, int k, int nrhs) {
  for (int col = 0; col < k; ++col) {
    int pivot = col;
    for (int r = col + 1; r < k; ++r) {
      if (std::fabs(a[r][col]) > std::fabs(a[pivot][col])) pivot = r;
    }
    if (pivot != col) {
      std::swap(a[pivot], a[col]);
      for (int j = 0; j < nrhs; ++j) std::swap(b[pivot * nrhs + j], b[col * nrhs + j]);
    }
    const double diag = a[col][col];
    if (diag == 0.0) continue;  // all-zero column: leave that unknown at whatever the back substitution gives
    for (int r = col + 1; r < k; ++r) {
      const double f = a[r][col] / diag;
      if (f == 0.0) continue;
      for (int c = col; c < k; ++c) a[r][c] -= f * a[col][c];
      for (int j = 0; j < nrhs; ++j) b[r * nrhs + j] -= f * b[col * nrhs + j];
    }
  }
  for (int col = k - 1; col >= 0; --col) {
    for (int j = 0; j < nrhs; ++j) {
      double x = b[col * nrhs + j];
      for (int c = col + 1; c < k; ++c) x -= a[col][c] * b[c * nrhs + j];
      b[col * nrhs + j] = a[col][col] != 0.0 ? x / a[col][col] : 0.0;
    }
  }
}

// The weighted least-squares transform (normalised frame) from the sums, as a row-major 2x3.
std::array<double, 6> weighted_fit(CameraModel model, const double* s) {
  double a[kMaxUnknowns][kMaxUnknowns] = {};
  double b[2 * kMaxUnknowns] = {};
  if (model == CameraModel::kSimilarity) {
    // unknowns (a, b, tx, ty): x' = a x - b y + tx, y' = b x + a y + ty
    const double sw = s[0], sx = s[1], sy = s[2], sxx = s[3];
    const double rows[4][4] = {{sxx, 0.0, sx, sy}, {0.0, sxx, -sy, sx}, {sx, -sy, sw, 0.0}, {sy, sx, 0.0, sw}};
    const double ridge = 1e-9 * (sxx + sxx + sw + sw + 1.0);
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 4; ++c) a[r][c] = rows[r][c] + (r == c ? ridge : 0.0);
      b[r] = s[4 + r];
    }
    solve(a, b, 4, 1);
    return {b[0], -b[1], b[2], b[1], b[0], b[3]};
  }
  // x' and y' are two 3-parameter fits sharing the moment matrix of (x, y, 1)
  const double sw = s[0], sx = s[1], sy = s[2], sxx = s[3], sxy = s[4], syy = s[5];
  const double rows[3][3] = {{sxx, sxy, sx}, {sxy, syy, sy}, {sx, sy, sw}};
  const double ridge = 1e-9 * (sxx + syy + sw + 1.0);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) a[r][c] = rows[r][c] + (r == c ? ridge : 0.0);
    b[r * 2 + 0] = s[6 + r];  // right-hand side of x'
    b[r * 2 + 1] = s[9 + r];  // ... and of y'
  }
  solve(a, b, 3, 2);
  return {b[0], b[2], b[4], b[1], b[3], b[5]};
}

// Inliers too concentrated to pin the model down (ops/camera.py's _degenerate): `s` their unweighted sums in
// the normalised frame, `scale` its pixels per unit.
bool degenerate(CameraModel model, const double* s, double scale, double floor_px) {
  const double count = std::max(s[0], 1.0);
  const double mu = s[1] / count, mv = s[2] / count;
  double spread;
  if (model == CameraModel::kSimilarity) {
    spread = s[3] / count - mu * mu - mv * mv;
  } else {
    const double cuu = s[3] / count - mu * mu, cuv = s[4] / count - mu * mv, cvv = s[5] / count - mv * mv;
    // the smaller eigenvalue of [[cuu, cuv], [cuv, cvv]]
    const double mean = 0.5 * (cuu + cvv), half = 0.5 * (cuu - cvv);
    spread = mean - std::sqrt(half * half + cuv * cuv);
  }
  return spread * scale * scale < floor_px * floor_px;
}

// Lower median of values (n > 0), permuting `work`.
double lower_median(const double* values, int64_t n, std::vector<double>& work) {
  work.assign(values, values + n);
  const int64_t k = (n - 1) / 2;
  std::nth_element(work.begin(), work.begin() + k, work.end());
  return work[k];
}

std::array<double, 6> translation(double tx, double ty) { return {1.0, 0.0, tx, 0.0, 1.0, ty}; }

FrameFit to_fit(const std::array<double, 6>& m, bool fallback) {
  FrameFit fit;
  for (int i = 0; i < 6; ++i) fit.matrix[i] = static_cast<float>(m[i]);
  fit.fallback = fallback;
  return fit;
}

FrameFit median_fit(const FramePoints& p, CameraFitScratch& scratch, uint8_t* inliers, bool fallback) {
  std::fill(inliers, inliers + p.n, uint8_t{1});
  if (p.n == 0) return to_fit(translation(0.0, 0.0), fallback);
  const double tx = lower_median(p.mx, p.n, scratch.select);
  const double ty = lower_median(p.my, p.n, scratch.select);
  return to_fit(translation(tx, ty), fallback);
}

// Order statistics of non-negative doubles by radix selection on their bit patterns (for x, y >= +0, x < y iff
// bits(x) < bits(y)): a histogram of 11 bits at a time, from the exponent down, narrows the candidates to the
// bucket holding the wanted rank, until few are left for std::nth_element. On a frame's few thousand residuals
// this costs a third of std::nth_element's partitioning, which was most of the fit.
class RadixSelect {
 public:
  explicit RadixSelect(CameraFitScratch& scratch) : keys_(scratch.keys), cand_(scratch.cand), next_(scratch.next) {}

  void load(const double* values, int64_t n) {
    keys_.resize(n);
    std::memcpy(keys_.data(), values, sizeof(double) * n);
    // NaN (from non-finite input) may carry the sign bit: without it, NaN ranks above +inf, as a sort puts it
    for (uint64_t& k : keys_) k &= ~(uint64_t{1} << 63);
    top_.fill(0);
    for (const uint64_t k : keys_) ++top_[k >> kTopShift];
  }

  // The rank-th smallest (0-based, rank < n).
  double kth(int64_t rank) {
    int64_t below = 0;
    int bucket = 0;
    while (below + top_[bucket] <= rank) below += top_[bucket++];
    rank -= below;
    cand_.clear();
    for (const uint64_t k : keys_) {
      if (static_cast<int>(k >> kTopShift) == bucket) cand_.push_back(k);
    }
    for (int shift = kTopShift - kBits; cand_.size() > kSmall; shift -= kBits) {
      if (shift < 0) break;  // every bit examined: the candidates are equal
      hist_.fill(0);
      for (const uint64_t k : cand_) ++hist_[(k >> shift) & kMask];
      below = 0;
      bucket = 0;
      while (below + hist_[bucket] <= rank) below += hist_[bucket++];
      rank -= below;
      if (hist_[bucket] == cand_.size()) continue;  // all in one bucket: nothing to drop
      next_.clear();
      for (const uint64_t k : cand_) {
        if (static_cast<int>((k >> shift) & kMask) == bucket) next_.push_back(k);
      }
      cand_.swap(next_);
    }
    std::nth_element(cand_.begin(), cand_.begin() + rank, cand_.end());
    double out;
    std::memcpy(&out, &cand_[rank], sizeof(out));
    return out;
  }

 private:
  static constexpr int kBits = 11;
  static constexpr int kTopShift = 52;  // sign (always 0) and exponent
  static constexpr uint64_t kMask = (uint64_t{1} << kBits) - 1;
  static constexpr size_t kSmall = 48;
  std::vector<uint64_t>& keys_;
  std::vector<uint64_t>& cand_;
  std::vector<uint64_t>& next_;
  std::array<uint32_t, 1 << kBits> top_{}, hist_{};
};

// The trimming bound min(kth_max, max(threshold, kth_min)) of the n > 0 squared residuals, threshold =
// max(cutoff^2 median, min_threshold2), kth_max / kth_min the keep_max-th / keep_min-th smallest (lower median,
// ranks clamped at 0): the median first, then only what the bound still depends on.
double trim_bound(const double* resid, int64_t n, int64_t keep_max, int64_t keep_min, double min_threshold2,
                  double cutoff, CameraFitScratch& scratch) {
  RadixSelect select(scratch);
  select.load(resid, n);
  const int64_t r_med = (n - 1) / 2;
  const int64_t r_max = std::max<int64_t>(keep_max - 1, 0), r_min = std::max<int64_t>(keep_min - 1, 0);
  const double med = select.kth(r_med);
  const double threshold = std::max(cutoff * cutoff * med, min_threshold2);
  // with cutoff >= 1 the threshold is at least the median, so a keep_min-th smallest at or below it cannot
  // raise the bound
  const double kth_min = (cutoff >= 1.0 && r_min <= r_med) ? med : select.kth(r_min);
  const double wanted = std::max(threshold, kth_min);
  // Fewer than keep_max + 1 values at or below `wanted`: it lies below the keep_max-th smallest, or the two
  // bounds keep the same values; either way the bound is `wanted` and that selection is not needed.
  int64_t at_or_below = 0;
  for (int64_t i = 0; i < n; ++i) at_or_below += resid[i] <= wanted;
  if (at_or_below <= keep_max) return wanted;
  return std::min(r_max == r_med ? med : select.kth(r_max), wanted);
}

}  // namespace

FrameFit fit_camera_frame(const FramePoints& p, const CameraFitOptions& o, CameraFitScratch& scratch,
                          uint8_t* inliers) {
  const int64_t n = p.n;
  if (o.model == CameraModel::kNone) {
    std::fill(inliers, inliers + n, uint8_t{1});
    return to_fit(translation(0.0, 0.0), false);
  }
  if (o.model == CameraModel::kMedian) return median_fit(p, scratch, inliers, false);

  // normalisation: zero-mean points with unit RMS radius
  const double count = std::max<double>(static_cast<double>(n), 1.0);
  double cx = 0.0, cy = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    cx += p.x[i];
    cy += p.y[i];
  }
  cx /= count;
  cy /= count;
  double spread = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double dx = p.x[i] - cx, dy = p.y[i] - cy;
    spread += dx * dx + dy * dy;
  }
  const double scale = std::max(std::sqrt(spread / count), 1e-6);
  scratch.u.resize(n);
  scratch.v.resize(n);
  scratch.up.resize(n);
  scratch.vp.resize(n);
  scratch.resid.resize(n);
  scratch.keep.assign(n, uint8_t{1});
  // the least-squares weight of each point (w0), and the one it has now: 0 once it is trimmed (w)
  scratch.weight0.resize(n);
  scratch.weight.resize(n);
  double* w0 = scratch.weight0.data();
  double* w = scratch.weight.data();
  for (int64_t i = 0; i < n; ++i) w0[i] = w[i] = p.weight ? p.weight[i] : 1.0;
  double* u = scratch.u.data();
  double* v = scratch.v.data();
  double* up = scratch.up.data();
  double* vp = scratch.vp.data();
  const double inv_scale = 1.0 / scale;
  for (int64_t i = 0; i < n; ++i) {
    u[i] = (p.x[i] - cx) * inv_scale;
    v[i] = (p.y[i] - cy) * inv_scale;
    up[i] = (p.x[i] + p.mx[i] - cx) * inv_scale;
    vp[i] = (p.y[i] + p.my[i] - cy) * inv_scale;
  }
  double sums[kMaxSums];
  weighted_sums(o.model, u, v, up, vp, w, n, sums);
  std::array<double, 6> m = weighted_fit(o.model, sums);

  const int64_t keep_max = static_cast<int64_t>(std::ceil((1.0 - o.trim_fraction) * static_cast<double>(n)));
  const int64_t keep_min = std::min<int64_t>(n, o.min_vectors);
  const double min_threshold2 = (o.min_threshold / scale) * (o.min_threshold / scale);
  const double inf = std::numeric_limits<double>::infinity();
  uint8_t* keep = scratch.keep.data();
  for (int it = 0; it < o.iterations; ++it) {
    double* resid = scratch.resid.data();
    for (int64_t i = 0; i < n; ++i) {
      const double rx = m[0] * u[i] + m[1] * v[i] + m[2] - up[i];
      const double ry = m[3] * u[i] + m[4] * v[i] + m[5] - vp[i];
      resid[i] = rx * rx + ry * ry;  // squared: their order statistics are the squares of the residuals'
    }
    const double bound = n > 0 ? trim_bound(resid, n, keep_max, keep_min, min_threshold2, o.cutoff, scratch)
                               : -inf;  // no vector: no inlier
    bool changed = false;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t k = resid[i] <= bound;
      changed |= k != keep[i];
      keep[i] = k;
      w[i] = k ? w0[i] : 0.0;
    }
    // the same inliers give the same sums, hence the same fit: every further refit would repeat this one
    if (!changed) break;
    weighted_sums(o.model, u, v, up, vp, w, n, sums);
    m = weighted_fit(o.model, sums);
  }
  // back to pixels: T(p) = s Tn((p - c) / s) + c
  std::array<double, 6> out = m;
  out[2] = m[2] * scale + cx - (m[0] * cx + m[1] * cy);
  out[5] = m[5] * scale + cy - (m[3] * cx + m[4] * cy);

  // half a pixel of spread is far below one 8x8 block: the points nearly coincide
  for (int64_t i = 0; i < n; ++i) w[i] = keep[i];
  double inlier_sums[kMaxSums];
  weighted_sums(o.model, u, v, up, vp, w, n, inlier_sums);
  if (n < o.min_vectors || degenerate(o.model, inlier_sums, scale, 0.5)) {
    return median_fit(p, scratch, inliers, true);
  }
  std::copy(keep, keep + n, inliers);
  return to_fit(out, false);
}

void fit_camera_batch(const double* centres, const double* motion, const uint8_t* valid, const double* weights,
                      int64_t batch, int64_t n, const CameraFitOptions& options, float* matrix, uint8_t* fallback,
                      uint8_t* inliers) {
  CameraFitScratch scratch;
  std::vector<double> x, y, mx, my, w;
  std::vector<uint8_t> frame_inliers;
  for (int64_t b = 0; b < batch; ++b) {
    x.clear();
    y.clear();
    mx.clear();
    my.clear();
    w.clear();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = b * n + i;
      if (!valid[at]) continue;
      x.push_back(centres[2 * at]);
      y.push_back(centres[2 * at + 1]);
      mx.push_back(motion[2 * at]);
      my.push_back(motion[2 * at + 1]);
      if (weights) w.push_back(weights[at]);
    }
    FramePoints points{x.data(), y.data(), mx.data(), my.data(), weights ? w.data() : nullptr,
                       static_cast<int64_t>(x.size())};
    frame_inliers.assign(x.size(), 0);
    const FrameFit fit = fit_camera_frame(points, options, scratch, frame_inliers.data());
    std::copy(fit.matrix.begin(), fit.matrix.end(), matrix + 6 * b);
    fallback[b] = fit.fallback;
    for (int64_t i = 0, j = 0; i < n; ++i) {
      const int64_t at = b * n + i;
      inliers[at] = valid[at] ? frame_inliers[j++] : 0;
    }
  }
}

}  // namespace codecprim
