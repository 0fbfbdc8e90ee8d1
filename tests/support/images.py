"""Image files made byte by byte for the camera tests."""

from __future__ import annotations

import struct
import zlib


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid greyscale PNG of ``width`` × ``height`` black pixels, about 1/1000 of its pixel
    count on disk (every row compresses to almost nothing): a decompression bomb when large."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(6)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
