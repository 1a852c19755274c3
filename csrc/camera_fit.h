// Robust camera-motion fit of one frame's block vectors: the CPU implementation of
// codecprim.ops.camera.fit_camera (whose docstring is the contract; the torch code there runs on GPUs).
//
// A frame's n vectors map block centres p to p + m. The similarity / affine models are weighted least squares
// in a normalised frame (zero-mean points, unit RMS radius), refitted `iterations` times on the vectors whose
// squared residual is at most min(keep_max-th smallest, max(max(cutoff^2 median, min_threshold^2), keep_min-th
// smallest)), the order statistics found by selection (linear time) instead of sorting. Frames with fewer than
// min_vectors vectors or with inliers spread less than half a pixel fall back to the per-axis lower median of
// the vectors.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace codecprim {

enum class CameraModel : int { kNone = 0, kMedian = 1, kSimilarity = 2, kAffine = 3 };

struct CameraFitOptions {
  CameraModel model = CameraModel::kSimilarity;
  int iterations = 5;
  double trim_fraction = 0.2;
  double cutoff = 3.0;
  double min_threshold = 1.0;
  int min_vectors = 8;
};

struct FrameFit {
  std::array<float, 6> matrix;  // row-major 2x3: p -> matrix[:, :2] p + matrix[:, 2]
  bool fallback = false;
};

// One frame's points, structure of arrays (float64 holds the float32 inputs exactly).
struct FramePoints {
  const double* x = nullptr;       // centres
  const double* y = nullptr;
  const double* mx = nullptr;      // motion in pixels
  const double* my = nullptr;
  const double* weight = nullptr;  // per-vector least-squares weight; null: all 1
  int64_t n = 0;
};

// Reused buffers, so fitting many frames allocates once.
struct CameraFitScratch {
  std::vector<double> u, v, up, vp, weight0, weight, resid, select;
  std::vector<uint64_t> keys, cand, next;  // the residuals' bit patterns, for their order statistics
  std::vector<uint8_t> keep;
};

// Fits one frame; writes inliers[i] (1: used by the last refit, every vector for "none"/"median"/fallbacks).
FrameFit fit_camera_frame(const FramePoints& points, const CameraFitOptions& options, CameraFitScratch& scratch,
                          uint8_t* inliers);

// A padded batch as fit_camera takes it: centres and motion (B, N, 2), valid (B, N), weights (B, N) or null.
// Writes matrix (B, 2, 3), fallback (B,) and inliers (B, N).
void fit_camera_batch(const double* centres, const double* motion, const uint8_t* valid, const double* weights,
                      int64_t batch, int64_t n, const CameraFitOptions& options, float* matrix, uint8_t* fallback,
                      uint8_t* inliers);

}  // namespace codecprim
