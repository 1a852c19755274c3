#include "simd_dispatch.h"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace codecprim {

// Each level's table, defined by interpolation_kernels.h in its own namespace.
namespace baseline { const PixelKernels& kernels(); }
#if defined(__x86_64__) || defined(__i386__)
namespace sse2 { const PixelKernels& kernels(); }
namespace avx2 { const PixelKernels& kernels(); }
#endif

namespace {

SimdLevel supported_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return SimdLevel::kAvx2;
  if (__builtin_cpu_supports("sse2")) return SimdLevel::kSse2;
#endif
  return SimdLevel::kBaseline;
}

SimdLevel chosen_level() {
  SimdLevel level = supported_level();
  const char* wanted = std::getenv("CODECPRIM_SIMD");
  if (wanted == nullptr) return level;
  for (SimdLevel lower : {SimdLevel::kBaseline, SimdLevel::kSse2, SimdLevel::kAvx2}) {
    if (std::strcmp(wanted, simd_level_name(lower)) == 0 && lower < level) level = lower;
  }
  return level;
}

const PixelKernels& kernels_of(SimdLevel level) {
#if defined(__x86_64__) || defined(__i386__)
  if (level == SimdLevel::kAvx2) return avx2::kernels();
  if (level == SimdLevel::kSse2) return sse2::kernels();
#endif
  (void)level;
  return baseline::kernels();
}

}  // namespace

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kSse2: return "sse2";
    case SimdLevel::kBaseline: break;
  }
  return "baseline";
}

const PixelKernels& pixel_kernels() {
  static const PixelKernels& active = kernels_of(chosen_level());
  return active;
}

}  // namespace codecprim
