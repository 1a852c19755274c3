#include "h264_sps.h"

#include <vector>

#include "bit_reader.h"

namespace codecprim {
namespace {

// The SPS payload without its emulation-prevention bytes (00 00 03 -> 00 00).
std::vector<uint8_t> rbsp_of(const uint8_t* nal, size_t size) {
  std::vector<uint8_t> rbsp;
  rbsp.reserve(size);
  int zeros = 0;
  for (size_t i = 0; i < size; ++i) {
    if (zeros >= 2 && nal[i] == 3) {
      zeros = 0;
      continue;
    }
    zeros = nal[i] == 0 ? zeros + 1 : 0;
    rbsp.push_back(nal[i]);
  }
  return rbsp;
}

void skip_scaling_list(BitReader& br, int size) {
  int last = 8, next = 8;
  for (int j = 0; j < size && !br.overrun(); ++j) {
    if (next != 0) next = (last + br.read_se() + 256) % 256;
    last = next == 0 ? last : next;
  }
}

// False when the parameters are out of range (cpb_cnt_minus1 <= 31).
bool skip_hrd_parameters(BitReader& br) {
  const uint32_t count = br.read_ue() + 1;
  if (count > 32) return false;
  br.skip(8);  // bit_rate_scale, cpb_size_scale
  for (uint32_t i = 0; i < count; ++i) {
    br.read_ue();  // bit_rate_value_minus1
    br.read_ue();  // cpb_size_value_minus1
    br.skip(1);    // cbr_flag
  }
  br.skip(20);  // four 5-bit delay and offset lengths
  return true;
}

bool high_profile(int profile_idc) {
  switch (profile_idc) {
    case 100: case 110: case 122: case 244: case 44: case 83: case 86: case 118: case 128: case 138: case 139:
    case 134: case 135:
      return true;
    default:
      return false;
  }
}

}  // namespace

H264SequenceFormat h264_sequence_format(const uint8_t* avcc, size_t size) {
  H264SequenceFormat out;
  // avcC: version 1, profile, compatibility, level, length size, then the SPS count and each SPS with a 16-bit length
  if (avcc == nullptr || size < 9 || avcc[0] != 1 || (avcc[5] & 0x1F) == 0) return out;
  const size_t length = (static_cast<size_t>(avcc[6]) << 8) | avcc[7];
  if (length < 4 || 8 + length > size || (avcc[8] & 0x1F) != 7) return out;
  const std::vector<uint8_t> rbsp = rbsp_of(avcc + 9, length - 1);
  BitReader br(rbsp.data(), rbsp.size());

  out.profile_idc = static_cast<int>(br.read(8));
  br.skip(16);   // constraint flags, level_idc
  br.read_ue();  // seq_parameter_set_id
  if (high_profile(out.profile_idc)) {
    out.chroma_format_idc = static_cast<int>(br.read_ue());
    if (out.chroma_format_idc > 3) return out;
    if (out.chroma_format_idc == 3) out.separate_colour_planes = br.read_bit() != 0;
    out.bit_depth_luma = static_cast<int>(br.read_ue()) + 8;
    out.bit_depth_chroma = static_cast<int>(br.read_ue()) + 8;
    br.skip(1);  // qpprime_y_zero_transform_bypass_flag
    if (br.read_bit()) {  // seq_scaling_matrix_present_flag
      const int lists = out.chroma_format_idc == 3 ? 12 : 8;
      for (int i = 0; i < lists; ++i) {
        if (br.read_bit()) skip_scaling_list(br, i < 6 ? 16 : 64);
      }
    }
  }
  br.read_ue();  // log2_max_frame_num_minus4
  const uint32_t poc_type = br.read_ue();
  if (poc_type == 0) {
    br.read_ue();  // log2_max_pic_order_cnt_lsb_minus4
  } else if (poc_type == 1) {
    br.skip(1);    // delta_pic_order_always_zero_flag
    br.read_se();  // offset_for_non_ref_pic
    br.read_se();  // offset_for_top_to_bottom_field
    const uint32_t cycle = br.read_ue();
    if (cycle > 255) return out;
    for (uint32_t i = 0; i < cycle; ++i) br.read_se();
  } else if (poc_type != 2) {
    return out;
  }
  br.read_ue();  // max_num_ref_frames
  br.skip(1);    // gaps_in_frame_num_value_allowed_flag
  br.read_ue();  // pic_width_in_mbs_minus1
  br.read_ue();  // pic_height_in_map_units_minus1
  if (!br.read_bit()) br.skip(1);  // frame_mbs_only_flag, else mb_adaptive_frame_field_flag
  br.skip(1);                      // direct_8x8_inference_flag
  if (br.read_bit()) {             // frame_cropping_flag
    for (int i = 0; i < 4; ++i) br.read_ue();
  }
  if (br.read_bit()) {  // vui_parameters_present_flag
    if (br.read_bit() && br.read(8) == 255) br.skip(32);  // aspect_ratio_idc, extended SAR
    if (br.read_bit()) br.skip(1);                        // overscan
    if (br.read_bit()) {                                  // video_signal_type_present_flag
      br.skip(3);                                         // video_format
      out.full_range = static_cast<int>(br.read_bit());
      if (br.read_bit()) {  // colour_description_present_flag
        br.skip(16);        // colour_primaries, transfer_characteristics
        out.matrix_coefficients = static_cast<int>(br.read(8));
      }
    }
    if (br.read_bit()) {  // chroma_loc_info_present_flag
      br.read_ue();
      br.read_ue();
    }
    if (br.read_bit()) br.skip(65);  // timing info: num_units_in_tick, time_scale, fixed_frame_rate_flag
    const bool nal_hrd = br.read_bit() != 0;
    if (nal_hrd && !skip_hrd_parameters(br)) return out;
    const bool vcl_hrd = br.read_bit() != 0;
    if (vcl_hrd && !skip_hrd_parameters(br)) return out;
    if (nal_hrd || vcl_hrd) br.skip(1);  // low_delay_hrd_flag
    br.skip(1);                          // pic_struct_present_flag
    if (br.read_bit()) {                 // bitstream_restriction_flag
      br.skip(1);                        // motion_vectors_over_pic_boundaries_flag
      for (int i = 0; i < 4; ++i) br.read_ue();  // bytes/bits per pic/mb denominators, log2 max mv lengths
      const uint32_t reorder = br.read_ue();
      const uint32_t buffering = br.read_ue();
      if (reorder > 16 || buffering > 16 || reorder > buffering) return out;
      out.max_num_reorder_frames = static_cast<int>(reorder);
    }
  }
  out.parsed = !br.overrun();
  return out;
}

}  // namespace codecprim
