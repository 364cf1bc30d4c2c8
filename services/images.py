"""Avatar images: decide the type by content, prove the file decodes, and drop its metadata without re-encoding.

Why not re-encode: a re-encode costs quality on every upload, can make a file bigger than the 5 MiB limit
(a noisy JPEG saved at quality 40 grows past twice its size at 90) and a WebP encode alone takes ~0.5 s of CPU.
Instead the containers are rewritten losslessly: JPEG APPn/COM segments, PNG text/EXIF chunks and WebP
EXIF/XMP chunks go (GPS position, camera serials, thumbnails), and so do bytes after the image's end (polyglots).
JPEG keeps only its EXIF orientation, so a rotated phone photo still displays upright. What is stored is then
fully decoded with Pillow and its dimensions must agree with the ones parsed from the header here: a truncated
file, or one whose header lies, is refused.
"""
from __future__ import annotations

import asyncio
import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from services.errors import FileInvalidError

MAX_AVATAR_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 25_000_000   # a 24 MP camera photo fits; a full decode of this many pixels needs <= 100 MB
NOT_AN_IMAGE = "The avatar must be a complete JPEG, PNG or WebP image."
FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD",
             b"pHYs", b"cICP", b"mDCv", b"cLLi", b"acTL", b"fcTL", b"fdAT"}
_WEBP_KEEP = {b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
_WEBP_EXIF_XMP_FLAGS = 0x08 | 0x04
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_ORIENTATION = 0x0112
_executor: ThreadPoolExecutor | None = None


class _Broken(Exception):
    """The container is malformed; the caller answers 1003."""


@dataclass(frozen=True)
class Avatar:
    data: bytes
    format: str          # JPEG, PNG or WEBP
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][0]

    @property
    def extension(self) -> str:
        return FORMATS[self.format][1]


def sniff(data: bytes) -> str | None:
    """The format by magic bytes; the name or extension the client gave is never trusted."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def sanitize(data: bytes) -> Avatar:
    """Blocking, CPU only: check, strip and decode one upload. Raises ``FileInvalidError``."""
    fmt = sniff(data)
    if fmt is None:
        raise FileInvalidError(NOT_AN_IMAGE)
    try:
        stripped, (width, height) = _STRIPPERS[fmt](data)
    except (_Broken, IndexError, ValueError, struct.error):   # ValueError: no end of scan (bytes.index)
        raise FileInvalidError(NOT_AN_IMAGE) from None
    if not (0 < width and 0 < height and width * height <= MAX_PIXELS):
        raise FileInvalidError(f"The avatar must have at most {MAX_PIXELS} pixels.")
    try:
        with Image.open(io.BytesIO(stripped), formats=[fmt]) as image:
            if image.format != fmt or image.size != (width, height):
                raise FileInvalidError(NOT_AN_IMAGE)
            image.load()   # the real decode: truncated or corrupt pixel data fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError):
        raise FileInvalidError(NOT_AN_IMAGE) from None
    return Avatar(stripped, fmt, width, height)


async def prepare_avatar(data: bytes) -> Avatar:
    """``sanitize`` off the IOLoop: a full decode of a 5 MiB image is 30-150 ms of CPU."""
    global _executor
    if _executor is None:
        # Pure CPU image work only (Pillow releases the GIL while decoding). Two threads per process bound the
        # memory of concurrent decodes; nothing else (no I/O, no database) runs on this executor.
        _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="swiper-image")
    return await asyncio.get_running_loop().run_in_executor(_executor, sanitize, data)


def _strip_jpeg(data: bytes) -> tuple[bytes, tuple[int, int]]:
    out, size, orientation, pos = [b"\xff\xd8"], None, 1, 2
    while True:
        if data[pos] != 0xFF:
            raise _Broken("expected a marker")
        marker = data[pos + 1]
        if marker == 0xFF:            # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:            # EOI: anything after it is not part of the image
            out.append(b"\xff\xd9")
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            raise _Broken("unexpected standalone marker")
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise _Broken("segment runs past the end")
        segment, payload = data[pos:end], data[pos + 4:end]
        if marker in _JPEG_SOF:
            if size is not None:
                raise _Broken("two frame headers")
            height, width = struct.unpack(">HH", payload[1:5])
            size = (width, height)
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            orientation = _orientation(payload)
        if _keep_jpeg_segment(marker, payload):
            out.append(segment)
        pos = end
        if marker == 0xDA:            # start of scan: copy the entropy-coded data up to the next real marker
            scan_end = _scan_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end
    if size is None:
        raise _Broken("no frame header")
    if 2 <= orientation <= 8:
        exif = Image.Exif()
        exif[_ORIENTATION] = orientation
        blob = exif.tobytes()
        out.insert(2 if len(out) > 1 and out[1].startswith(b"\xff\xe0") else 1,
                   b"\xff\xe1" + struct.pack(">H", len(blob) + 2) + blob)
    return b"".join(out), size


def _keep_jpeg_segment(marker: int, payload: bytes) -> bool:
    if marker == 0xFE:                                      # COM
        return False
    if marker == 0xE0:
        return payload.startswith(b"JFIF\x00")              # not JFXX thumbnails
    if marker == 0xE2:
        return payload.startswith(b"ICC_PROFILE\x00")       # not MPF (appended second images)
    if marker == 0xEE:
        return payload.startswith(b"Adobe")                 # colour transform of CMYK/YCCK files
    return not 0xE0 <= marker <= 0xEF                       # EXIF, XMP, IPTC, maker data


def _scan_end(data: bytes, pos: int) -> int:
    while True:
        pos = data.index(b"\xff", pos)
        follower = data[pos + 1]
        if follower == 0x00 or 0xD0 <= follower <= 0xD7 or follower == 0xFF:   # stuffed byte, restart, fill
            pos += 1 if follower == 0xFF else 2
            continue
        return pos


def _orientation(payload: bytes) -> int:
    try:
        value = Image.Exif()
        value.load(payload)
        orientation = value.get(_ORIENTATION, 1)
    except Exception:   # Pillow raises many types on a broken EXIF block; it is dropped either way
        return 1
    return orientation if isinstance(orientation, int) else 1


def _strip_png(data: bytes) -> tuple[bytes, tuple[int, int]]:
    out, pos, size = [_PNG_MAGIC], len(_PNG_MAGIC), None
    while True:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise _Broken("chunk runs past the end")
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4:end])[0]:
            raise _Broken("bad chunk CRC")
        if size is None:
            if kind != b"IHDR" or length != 13:
                raise _Broken("IHDR must come first")
            size = struct.unpack(">II", body[:8])
        if kind in _PNG_KEEP:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(out), size


def _strip_webp(data: bytes) -> tuple[bytes, tuple[int, int]]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = 8 + riff_size
    if riff_size < 4 or end > len(data):
        raise _Broken("RIFF size runs past the end")
    chunks, pos, canvas, frame = [], 12, None, None
    while pos < end:
        kind, length = struct.unpack("<4sI", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise _Broken("chunk runs past the end")
        if not chunks and kind not in (b"VP8X", b"VP8 ", b"VP8L"):
            raise _Broken("no image header")
        if kind == b"VP8X":
            body = bytes([body[0] & ~_WEBP_EXIF_XMP_FLAGS]) + body[1:]
            canvas = (1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little"))
        elif kind == b"VP8 " and frame is None:
            if body[3:6] != b"\x9d\x01\x2a":
                raise _Broken("bad VP8 start code")
            width, height = struct.unpack("<HH", body[6:10])
            frame = (width & 0x3FFF, height & 0x3FFF)
        elif kind == b"VP8L" and frame is None:
            if body[0] != 0x2F:
                raise _Broken("bad VP8L signature")
            bits = int.from_bytes(body[1:5], "little")
            frame = (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
        if kind in _WEBP_KEEP:
            chunks.append(struct.pack("<4sI", kind, length) + body + (b"\x00" if length % 2 else b""))
        pos += 8 + length + (length % 2)
    size = canvas or frame
    if size is None or (canvas and frame and canvas != frame):
        raise _Broken("no or inconsistent dimensions")
    payload = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload, size


_STRIPPERS = {"JPEG": _strip_jpeg, "PNG": _strip_png, "WEBP": _strip_webp}
