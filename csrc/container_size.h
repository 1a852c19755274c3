// Whether a file is shorter than its container says: MP4/MOV boxes, the Matroska/WebM Segment and AVI RIFF
// chunks all declare their byte size up front, so a download or copy cut short is seen before decoding, from
// a few header reads; a whole FLV ends with the size of its last tag (a cut one is walked tag by tag).
// Containers without such sizes (MPEG-TS/PS, raw streams) get no verdict here.
#pragma once

#include <string>

#include "input_source.h"

namespace codecprim {

// Empty when the container's declared sizes fit in the source (or it declares none, or the size is unknown);
// otherwise what was promised and what is there. `container` is FFmpeg's demuxer name.
std::string container_cut(ByteSource& source, const std::string& container);

}  // namespace codecprim
