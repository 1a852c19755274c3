"""Rewrite an H.264 stream's declared reorder depth (VUI max_num_reorder_frames) in place.

Encoders that under-declare it exist; x264 never does, so the tests make such a stream by editing the SPS
that Matroska/MP4 carry in their avcC record, or the SPS NAL units of a raw Annex B stream. Only values whose
Exp-Golomb codes have equal length are swapped (1 <-> 2), so no byte moves and the container stays valid.
"""
from __future__ import annotations

HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


class _Bits:
    def __init__(self, nal: bytes):
        self.nal, self.pos, self.byte_of = nal, 0, []
        zeros = 0
        for i, b in enumerate(nal):  # RBSP bit positions skip emulation-prevention bytes
            if zeros >= 2 and b == 3:
                zeros = 0
                continue
            self.byte_of.append(i)
            zeros = zeros + 1 if b == 0 else 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.nal[self.byte_of[self.pos // 8]]
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)


def _skip_hrd(b: _Bits) -> None:
    count = b.ue()
    b.u(8)
    for _ in range(count + 1):
        b.ue(), b.ue(), b.u(1)
    b.u(20)


def _reorder_field(nal: bytes) -> tuple[int, int, int]:
    """(bit position, bit length, value) of max_num_reorder_frames in an SPS NAL unit."""
    b = _Bits(nal)
    b.u(8)
    profile = b.u(8)
    b.u(16), b.ue()
    if profile in HIGH_PROFILES:
        if b.ue() == 3:
            b.u(1)
        b.ue(), b.ue(), b.u(1)
        assert b.u(1) == 0, "scaling matrices are not handled"
    b.ue()
    assert b.ue() == 0, "only pic_order_cnt_type 0 is handled"
    b.ue(), b.ue(), b.u(1), b.ue(), b.ue()
    if b.u(1) == 0:
        b.u(1)
    b.u(1)
    if b.u(1):
        b.ue(), b.ue(), b.ue(), b.ue()
    assert b.u(1), "the SPS has no VUI"
    if b.u(1) and b.u(8) == 255:
        b.u(32)
    if b.u(1):
        b.u(1)
    if b.u(1):
        b.u(4)
        if b.u(1):
            b.u(24)
    if b.u(1):
        b.ue(), b.ue()
    if b.u(1):
        b.u(65)
    nal_hrd = b.u(1)
    if nal_hrd:
        _skip_hrd(b)
    vcl_hrd = b.u(1)
    if vcl_hrd:
        _skip_hrd(b)
    if nal_hrd or vcl_hrd:
        b.u(1)
    b.u(1)
    assert b.u(1), "the VUI has no bitstream restriction"
    b.u(1), b.ue(), b.ue(), b.ue(), b.ue()
    start = b.pos
    value = b.ue()
    return start, b.pos - start, value


def _rewrite(out: bytearray, sps: int, length: int, depth: int) -> int:
    """Rewrites the SPS NAL unit at out[sps:sps + length] in place; returns the depth it declared before."""
    nal = bytes(out[sps:sps + length])
    start, bits, before = _reorder_field(nal)
    code = format(depth + 1, "b")
    assert 2 * len(code) - 1 == bits, f"{depth} needs another code length than {before}"
    code = "0" * (len(code) - 1) + code
    positions = _Bits(nal).byte_of
    for k, bit in enumerate(code):
        p = start + k
        mask = 1 << (7 - p % 8)
        byte = sps + positions[p // 8]
        out[byte] = (out[byte] & ~mask) | (mask if bit == "1" else 0)
    return before


def declare_reorder_depth(data: bytes, depth: int) -> tuple[bytes, int]:
    """The file with its SPS declaring `depth`; also returns the depth it declared before. `data` is a
    Matroska/MP4 file (the avcC record's SPS is rewritten) or a raw Annex B stream (every SPS NAL unit is)."""
    out = bytearray(data)
    if out.startswith(b"\x00\x00\x01") or out.startswith(b"\x00\x00\x00\x01"):
        befores = []
        at = out.find(b"\x00\x00\x01\x67")
        while at >= 0:
            end = out.find(b"\x00\x00\x01", at + 3)
            end = len(out) if end < 0 else end
            befores.append(_rewrite(out, at + 3, end - at - 3, depth))
            at = out.find(b"\x00\x00\x01\x67", end)
        assert befores and len(set(befores)) == 1, "no SPS NAL unit, or SPS units that disagree"
        return bytes(out), befores[0]
    at = out.index(b"\xff\xe1") - 4  # avcC: version, profile, compatibility, level, 0xff, 0xe1, SPS length
    length = int.from_bytes(out[at + 6:at + 8], "big")
    before = _rewrite(out, at + 8, length, depth)
    return bytes(out), before
