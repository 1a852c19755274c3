// MSB-first bit reader for the few header fields FFmpeg does not expose (MPEG-4 VOP rounding, H.263+ RTYPE,
// the H.264 SPS fields that name the decoded pixel format).
// Reading past the end yields zeros and sets overrun(), so malformed headers cannot read out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace codecprim {

class BitReader {
 public:
  BitReader(const uint8_t* data, size_t size) : data_(data), size_bits_(size * 8) {}

  uint32_t read(int bits) {
    uint32_t value = 0;
    for (int i = 0; i < bits; ++i) value = (value << 1) | read_bit();
    return value;
  }
  uint32_t read_bit() {
    if (pos_ >= size_bits_) {
      overrun_ = true;
      return 0;
    }
    const uint32_t bit = (data_[pos_ >> 3] >> (7 - (pos_ & 7))) & 1u;
    ++pos_;
    return bit;
  }
  void skip(int bits) { pos_ += static_cast<size_t>(bits); }
  // Exp-Golomb codes (H.264 ue(v) / se(v)); more than 31 leading zeros is malformed: 0 and overrun().
  uint32_t read_ue() {
    int zeros = 0;
    while (read_bit() == 0) {
      if (++zeros > 31 || overrun_) {
        overrun_ = true;
        return 0;
      }
    }
    return zeros == 0 ? 0 : (1u << zeros) - 1 + read(zeros);
  }
  int32_t read_se() {
    const uint32_t code = read_ue();
    return (code & 1) ? static_cast<int32_t>((code + 1) / 2) : -static_cast<int32_t>(code / 2);
  }
  bool overrun() const { return overrun_ || pos_ > size_bits_; }

 private:
  const uint8_t* data_;
  size_t size_bits_;
  size_t pos_ = 0;
  bool overrun_ = false;
};

}  // namespace codecprim
