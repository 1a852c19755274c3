#include "bitstream_headers.h"

#include "bit_reader.h"

namespace codecprim {
namespace {

constexpr int kShapeRectangular = 0;
constexpr int kShapeBinaryOnly = 2;
constexpr int kShapeGrayscale = 3;
constexpr int kSpriteStatic = 1;
constexpr int kSpriteGmc = 2;

int ceil_log2_bits(uint32_t resolution) {
  // FFmpeg: av_log2(resolution - 1) + 1, at least 1.
  uint32_t value = resolution > 0 ? resolution - 1 : 0;
  int bits = 0;
  while (value > 1) {
    value >>= 1;
    ++bits;
  }
  return bits + 1 > 1 ? bits + 1 : 1;
}

void skip_quant_matrix(BitReader& br) {
  for (int i = 0; i < 64; ++i) {
    if (br.read(8) == 0) break;
  }
}

// ISO/IEC 14496-2, 6.2.3 video_object_layer(): only as far as the fields the VOP header depends on.
void parse_vol(BitReader& br, Mpeg4Vol& vol) {
  br.skip(1);  // random_accessible_vol
  br.skip(8);  // video_object_type_indication
  int verid = 1;
  if (br.read_bit()) {
    verid = static_cast<int>(br.read(4));
    br.skip(3);
  }
  if (br.read(4) == 0xF) br.skip(16);  // extended pixel aspect ratio
  if (br.read_bit()) {                 // vol_control_parameters
    br.skip(2 + 1);                    // chroma_format, low_delay
    if (br.read_bit()) br.skip(15 + 1 + 15 + 1 + 15 + 1 + 3 + 11 + 1 + 15 + 1);  // vbv_parameters
  }
  const int shape = static_cast<int>(br.read(2));
  if (shape == kShapeGrayscale && verid != 1) br.skip(4);
  br.skip(1);
  const uint32_t resolution = br.read(16);
  br.skip(1);
  vol.time_increment_bits = ceil_log2_bits(resolution);
  if (br.read_bit()) br.skip(vol.time_increment_bits);  // fixed_vop_time_increment
  if (shape == kShapeBinaryOnly) {
    vol.found = !br.overrun();
    return;
  }
  if (shape == kShapeRectangular) br.skip(1 + 13 + 1 + 13 + 1);
  vol.interlaced = br.read_bit() != 0;
  br.skip(1);  // obmc_disable
  vol.sprite_enable = static_cast<int>(verid == 1 ? br.read(1) : br.read(2));
  if (vol.sprite_enable == kSpriteStatic || vol.sprite_enable == kSpriteGmc) {
    if (vol.sprite_enable != kSpriteGmc) br.skip(13 + 1 + 13 + 1 + 13 + 1 + 13 + 1);
    br.skip(6 + 2 + 1);
    if (vol.sprite_enable != kSpriteGmc) br.skip(1);
  }
  if (verid != 1 && shape != kShapeRectangular) br.skip(1);
  if (br.read_bit()) br.skip(4 + 4);  // not_8_bit
  if (shape == kShapeGrayscale) br.skip(3);
  if (br.read_bit()) {  // quant_type: custom matrices end early at a zero entry
    if (br.read_bit()) skip_quant_matrix(br);
    if (br.read_bit()) skip_quant_matrix(br);
  }
  vol.quarter_sample = verid != 1 ? br.read_bit() != 0 : false;
  vol.found = !br.overrun();
}

struct VopHeader {
  uint32_t coding_type = 0;  // 0 I, 1 P, 2 B, 3 S
  bool coded = false;
  int rounding = -1;
};

VopHeader parse_vop(BitReader& br, const Mpeg4Vol& vol) {
  VopHeader vop;
  vop.coding_type = br.read(2);
  while (br.read_bit()) {
    if (br.overrun()) return vop;  // modulo_time_base
  }
  br.skip(1);
  br.skip(vol.time_increment_bits);
  br.skip(1);
  vop.coded = br.read_bit() != 0;  // vop_coded == 0: the decoder repeats the previous picture
  if (!vop.coded || br.overrun()) return VopHeader{};
  if (vop.coding_type == 1 || (vop.coding_type == 3 && vol.sprite_enable == kSpriteGmc)) {
    const int rounding = static_cast<int>(br.read_bit());
    vop.rounding = br.overrun() ? -1 : rounding;
  }
  return vop;
}

// Walks the MPEG-4 start codes of a packet: VOL headers update `vol`, and visit(header, offset) is called for
// each VOP until it returns false.
template <typename Visit>
void for_each_vop(const uint8_t* data, size_t size, Mpeg4Vol& vol, Visit visit) {
  for (size_t i = 0; i + 3 < size; ++i) {
    if (data[i] != 0 || data[i + 1] != 0 || data[i + 2] != 1) continue;
    const uint8_t code = data[i + 3];
    BitReader br(data + i + 4, size - i - 4);
    if (code >= 0x20 && code <= 0x2F) {
      parse_vol(br, vol);
    } else if (code == 0xB6 && !visit(parse_vop(br, vol), i)) {
      return;
    }
  }
}

// Calls visit(header byte, offset of the NAL payload) for each NAL unit of an H.264 access unit.
template <typename Visit>
void for_each_nal(const uint8_t* data, size_t size, int nal_length_size, Visit visit) {
  if (nal_length_size > 0) {
    size_t pos = 0;
    while (pos + static_cast<size_t>(nal_length_size) < size) {
      size_t length = 0;
      for (int b = 0; b < nal_length_size; ++b) length = (length << 8) | data[pos + b];
      pos += static_cast<size_t>(nal_length_size);
      if (length == 0 || pos + length > size) break;
      visit(data[pos]);
      pos += length;
    }
    return;
  }
  for (size_t i = 0; i + 3 < size; ++i) {
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1) visit(data[i + 3]);
  }
}

}  // namespace

int mpeg4_vop_rounding(const uint8_t* data, size_t size, Mpeg4Vol& vol) {
  int rounding = -1;
  for_each_vop(data, size, vol, [&rounding](const VopHeader& vop, size_t) {
    rounding = vop.rounding;
    return false;  // the first VOP of the packet only
  });
  return rounding;
}

H263Picture parse_h263_picture(const uint8_t* data, size_t size) {
  H263Picture picture;
  for (size_t i = 0; i + 2 < size; ++i) {
    // Picture start code: 0000 0000 0000 0000 1000 00 (22 bits), byte aligned in practice.
    if (data[i] != 0 || data[i + 1] != 0 || (data[i + 2] & 0xFC) != 0x80) continue;
    BitReader br(data + i, size - i);
    br.skip(22 + 8);  // PSC, TR
    br.skip(2 + 3);   // PTYPE bits 1-2 (marker, 0), split screen, document camera, freeze release
    const uint32_t source_format = br.read(3);
    if (source_format != 7) {
      picture.type = br.read_bit() ? 'P' : 'I';  // baseline: rounding is always on
      picture.rounding = 0;
    } else {
      const uint32_t ufep = br.read(3);
      if (ufep == 1) br.skip(18);  // OPPTYPE
      const uint32_t picture_type = br.read(3);  // 0 I, 1 P, 2 improved PB, 3 B, 4 EI, 5 EP
      br.skip(2);                                 // RPR, RRU
      const int rtype = static_cast<int>(br.read_bit());
      picture.type = picture_type == 0 || picture_type == 4 ? 'I' : (picture_type == 3 ? 'B' : 'P');
      picture.rounding = picture_type == 1 ? rtype : 0;
    }
    if (br.overrun()) return H263Picture{};
    return picture;
  }
  return picture;
}

int h264_nal_length_size(const uint8_t* extradata, size_t size) {
  if (extradata == nullptr || size < 7 || extradata[0] != 1) return 0;
  return (extradata[4] & 3) + 1;
}

int h264_nal_ref_idc(const uint8_t* data, size_t size, int nal_length_size) {
  int ref_idc = 0;
  for_each_nal(data, size, nal_length_size, [&ref_idc](uint8_t header) {
    const int type = header & 0x1F;
    if (type == 1 || type == 5) {
      const int idc = (header >> 5) & 3;
      if (idc > ref_idc) ref_idc = idc;
    }
  });
  return ref_idc;
}

bool h264_has_idr(const uint8_t* data, size_t size, int nal_length_size) {
  bool idr = false;
  for_each_nal(data, size, nal_length_size, [&idr](uint8_t header) { idr = idr || (header & 0x1F) == 5; });
  return idr;
}

int hevc_nal_length_size(const uint8_t* extradata, size_t size) {
  if (extradata == nullptr || size < 23 || extradata[0] != 1) return 0;
  return (extradata[21] & 3) + 1;
}

bool hevc_resets_poc(const uint8_t* data, size_t size, int nal_length_size) {
  bool resets = false;
  for_each_nal(data, size, nal_length_size, [&resets](uint8_t header) {
    const int type = (header >> 1) & 0x3F;
    resets = resets || (type >= 16 && type <= 20);  // BLA_W_LP, BLA_W_RADL, BLA_N_LP, IDR_W_RADL, IDR_N_LP
  });
  return resets;
}

std::vector<Mpeg4Vop> mpeg4_coded_vops(const uint8_t* data, size_t size, Mpeg4Vol& vol) {
  std::vector<Mpeg4Vop> vops;
  for_each_vop(data, size, vol, [&](const VopHeader& vop, size_t at) {
    if (!vops.empty()) vops.back().size = at - vops.back().offset;
    if (vop.coded) vops.push_back(Mpeg4Vop{"IPBP"[vop.coding_type & 3], vops.empty() ? 0 : at, size - at});
    return true;
  });
  return vops;
}

}  // namespace codecprim
