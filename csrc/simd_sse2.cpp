// The pixel kernels at the sse2 level (see simd_dispatch.h).
#define CODECPRIM_SIMD_LEVEL 1
#define CODECPRIM_SIMD_NS sse2
#include "interpolation_kernels.h"
