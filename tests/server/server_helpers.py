"""Test images as bytes, shared by the server tests (import: `from server_helpers import ...`)."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

TOKEN = "test-token-0123456789abcdef"

# TestClient's base URL: a loopback server without tokens answers only local Host names
LOCAL = "http://127.0.0.1"


def jpeg(seed: int, size: "tuple[int, int]" = (96, 72), quality: int = 90) -> bytes:
    """A distinct, smooth-ish JPEG (random blocks scaled up)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
