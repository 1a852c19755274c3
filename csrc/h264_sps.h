// What an H.264 sequence parameter set says about the pictures libavcodec will decode: read from the first SPS
// of an MP4's avcC record, so that opening the file need not decode a picture to learn its pixel format and its
// reorder depth (avformat_find_stream_info decodes one to seven pictures for that: 13 ms of a 720p open).
#pragma once

#include <cstddef>
#include <cstdint>

namespace codecprim {

struct H264SequenceFormat {
  bool parsed = false;             // false: no avcC record, no SPS, or an SPS this reader does not understand
  int profile_idc = 0;
  int chroma_format_idc = 1;       // 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4
  bool separate_colour_planes = false;
  int bit_depth_luma = 8;
  int bit_depth_chroma = 8;
  int full_range = -1;             // VUI video_full_range_flag; -1 when the SPS does not signal it
  int matrix_coefficients = -1;    // VUI matrix_coefficients; -1 when the SPS does not signal them
  int max_num_reorder_frames = -1; // VUI bitstream restriction; -1 when absent
};

H264SequenceFormat h264_sequence_format(const uint8_t* avcc, size_t size);

}  // namespace codecprim
