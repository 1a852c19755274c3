// Header fields that change the decoder's motion compensation but that FFmpeg keeps private:
// the MPEG-4 Part 2 VOP rounding type, the H.263+ RTYPE bit, and whether an H.264 picture is a reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace codecprim {

// State carried from the MPEG-4 video object layer header to each VOP header.
struct Mpeg4Vol {
  bool found = false;
  int time_increment_bits = 1;
  int sprite_enable = 0;   // 2 = GMC: S-VOPs then carry a rounding bit too
  bool quarter_sample = false;
  bool interlaced = false;
};

// Scans `data` for MPEG-4 start codes: updates `vol` from any VOL header and returns the rounding type
// (0 or 1) of the first coded P/S-VOP, or -1 when the packet holds no such VOP.
int mpeg4_vop_rounding(const uint8_t* data, size_t size, Mpeg4Vol& vol);

// A coded VOP inside a packet: its type ('I', 'P' (also S-VOPs), 'B') and its byte span. Packed-bitstream
// AVIs (DivX/Xvid) carry a P-VOP and a B-VOP in one packet; VOPs with vop_coded == 0 are left out (the
// decoder shows nothing new for them).
struct Mpeg4Vop {
  char type = '?';
  size_t offset = 0;
  size_t size = 0;
};
std::vector<Mpeg4Vop> mpeg4_coded_vops(const uint8_t* data, size_t size, Mpeg4Vol& vol);

// An H.263 picture header: its type ('I', 'P', 'B'; '?' when no header is found) and the H.263+ RTYPE
// rounding bit of a P-picture (0 for baseline headers, where rounding is always on).
struct H263Picture {
  char type = '?';
  int rounding = -1;
};
H263Picture parse_h263_picture(const uint8_t* data, size_t size);

// The largest nal_ref_idc over the slice NAL units in an H.264 access unit: 0 means nothing refers to this picture.
// nal_length_size is 1..4 for length-prefixed (avcC/MP4) packets and 0 for Annex B start codes.
int h264_nal_ref_idc(const uint8_t* data, size_t size, int nal_length_size);

// Whether an H.264 access unit holds an IDR slice (an IDR picture is intra by definition, whatever a damaged
// slice header says).
bool h264_has_idr(const uint8_t* data, size_t size, int nal_length_size);

// The NAL length size from avcC extradata (1..4), or 0 when the extradata is Annex B or absent.
int h264_nal_length_size(const uint8_t* extradata, size_t size);

// The NAL length size from hvcC extradata (1..4), or 0 when the extradata is Annex B or absent.
int hevc_nal_length_size(const uint8_t* extradata, size_t size);

// Whether an HEVC access unit holds an IDR or BLA picture, where the picture order count starts again.
bool hevc_resets_poc(const uint8_t* data, size_t size, int nal_length_size);

}  // namespace codecprim
