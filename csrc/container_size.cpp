#include "container_size.h"

#include <cstdint>

namespace codecprim {
namespace {

bool read_exact(ByteSource& source, int64_t pos, uint8_t* dst, int n) { return source.read_at(pos, dst, n) == n; }

uint64_t big_endian(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

std::string beyond(const std::string& what, int64_t end, int64_t size) {
  return what + " ends at byte " + std::to_string(end) + " but the file has " + std::to_string(size) + " bytes";
}

// ISO/IEC 14496-12: top-level boxes follow each other to the end of the file.
std::string mp4_cut(ByteSource& source, int64_t size) {
  int64_t pos = 0;
  while (pos + 8 <= size) {
    uint8_t head[16];
    if (!read_exact(source, pos, head, 8)) return {};
    uint64_t box = big_endian(head, 4);
    const std::string type(reinterpret_cast<char*>(head + 4), 4);
    if (box == 1) {
      if (!read_exact(source, pos + 8, head + 8, 8)) return {};
      box = big_endian(head + 8, 8);
    } else if (box == 0) {
      return {};  // the last box runs to the end of the file, whatever that is
    }
    if (box < 8) return {};  // not a box structure we can follow: no verdict
    if (static_cast<uint64_t>(pos) + box > static_cast<uint64_t>(size)) {
      return beyond("the '" + type + "' box", pos + static_cast<int64_t>(box), size);
    }
    pos += static_cast<int64_t>(box);
  }
  return {};
}

// EBML variable-length integer at `pos`: its value (marker bit removed unless `keep_marker`) and length.
bool ebml_vint(ByteSource& source, int64_t pos, bool keep_marker, uint64_t& value, int& length, bool& unknown) {
  uint8_t bytes[8];
  if (!read_exact(source, pos, bytes, 1) || bytes[0] == 0) return false;
  length = 1;
  while (!(bytes[0] & (0x80 >> (length - 1)))) ++length;
  if (length > 1 && !read_exact(source, pos + 1, bytes + 1, length - 1)) return false;
  value = keep_marker ? bytes[0] : bytes[0] & (0xFF >> length);
  bool all_ones = value == (0xFFu >> length);
  for (int i = 1; i < length; ++i) {
    value = (value << 8) | bytes[i];
    all_ones = all_ones && bytes[i] == 0xFF;
  }
  unknown = all_ones && !keep_marker;
  return true;
}

// Matroska: the EBML header, then the Segment with its size (unknown only when written live).
std::string matroska_cut(ByteSource& source, int64_t size) {
  int64_t pos = 0;
  for (int element = 0; element < 2; ++element) {
    uint64_t id = 0, length = 0;
    int id_bytes = 0, size_bytes = 0;
    bool unknown = false, ignored = false;
    if (!ebml_vint(source, pos, true, id, id_bytes, ignored)) return {};
    if (!ebml_vint(source, pos + id_bytes, false, length, size_bytes, unknown)) return {};
    const int64_t data = pos + id_bytes + size_bytes;
    if (element == 0 && id != 0x1A45DFA3) return {};
    if (element == 1) {
      if (id != 0x18538067 || unknown) return {};
      if (static_cast<uint64_t>(data) + length > static_cast<uint64_t>(size)) {
        return beyond("the Segment", data + static_cast<int64_t>(length), size);
      }
      return {};
    }
    pos = data + static_cast<int64_t>(length);
  }
  return {};
}

// AVI: RIFF chunks (AVI, then AVIX for files over 1 GiB), each with its little-endian size.
std::string avi_cut(ByteSource& source, int64_t size) {
  int64_t pos = 0;
  while (pos + 8 <= size) {
    uint8_t head[8];
    if (!read_exact(source, pos, head, 8) || std::string(reinterpret_cast<char*>(head), 4) != "RIFF") return {};
    const int64_t chunk = static_cast<int64_t>(head[4]) | static_cast<int64_t>(head[5]) << 8 |
                          static_cast<int64_t>(head[6]) << 16 | static_cast<int64_t>(head[7]) << 24;
    const int64_t end = pos + 8 + chunk + (chunk & 1);
    if (pos + 8 + chunk > size) return beyond("the RIFF chunk", pos + 8 + chunk, size);
    pos = end;
  }
  return {};
}

// FLV: a header (its size at bytes 5-8), then tags, each an 11-byte header (type, 24-bit data size, ...) and its
// data followed by the 4-byte size of the tag just ended, so a whole file ends with its last tag's size.
std::string flv_cut(ByteSource& source, int64_t size) {
  uint8_t head[11];
  if (!read_exact(source, 0, head, 9) || head[0] != 'F' || head[1] != 'L' || head[2] != 'V') return {};
  const int64_t first = static_cast<int64_t>(big_endian(head + 5, 4)) + 4;
  if (size >= first + 4 && read_exact(source, size - 4, head, 4)) {
    const int64_t last = static_cast<int64_t>(big_endian(head, 4));
    const int64_t at = size - 4 - last;
    if (last >= 11 && at >= first && read_exact(source, at, head, 11) &&
        11 + static_cast<int64_t>(big_endian(head + 1, 3)) == last) {
      return {};
    }
  }
  // The end is not a whole tag (a cut file, or a muxer that writes other sizes there): walk the tags. One that
  // runs past the end of the file means it was cut; anything that is not a tag gives no verdict.
  int64_t pos = first;
  while (pos < size) {
    if (pos + 11 > size) return beyond("the FLV tag header at byte " + std::to_string(pos), pos + 11, size);
    if (!read_exact(source, pos, head, 11)) return {};
    const int type = head[0] & 0x1F;
    if (type != 8 && type != 9 && type != 18) return {};
    const int64_t end = pos + 11 + static_cast<int64_t>(big_endian(head + 1, 3)) + 4;
    if (end == size + 4) return {};  // a last tag whole but for the size after it: nothing of the video is missing
    if (end > size) return beyond("the FLV tag at byte " + std::to_string(pos), end, size);
    pos = end;
  }
  return {};
}

}  // namespace

std::string container_cut(ByteSource& source, const std::string& container) {
  const int64_t size = source.size();
  if (size <= 0) return {};
  if (container.find("mp4") != std::string::npos || container.find("mov") != std::string::npos) return mp4_cut(source, size);
  if (container.find("matroska") != std::string::npos || container.find("webm") != std::string::npos) {
    return matroska_cut(source, size);
  }
  if (container == "avi") return avi_cut(source, size);
  if (container == "flv" || container == "live_flv") return flv_cut(source, size);
  return {};
}

}  // namespace codecprim
