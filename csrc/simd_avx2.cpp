// The pixel kernels at the avx2 level (see simd_dispatch.h); CMake compiles this file alone with -mavx2.
#define CODECPRIM_SIMD_LEVEL 2
#define CODECPRIM_SIMD_NS avx2
#include "interpolation_kernels.h"
