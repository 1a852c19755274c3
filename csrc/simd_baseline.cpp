// The pixel kernels at the baseline level: plain C++ loops (see simd_dispatch.h).
#define CODECPRIM_SIMD_LEVEL 0
#define CODECPRIM_SIMD_NS baseline
#include "interpolation_kernels.h"
