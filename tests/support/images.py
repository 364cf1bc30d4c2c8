"""Small real images for upload tests, made with Pillow, plus the metadata a phone camera would leave in them."""
from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import ExifTags, Image, PngImagePlugin

SECRET = b"SECRET-GPS-CAMERA-42"   # planted in metadata; must never survive an upload


def camera_exif(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = SECRET.decode()
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (39.0, 54.0, 27.0),
                                  ExifTags.GPS.GPSLongitudeRef: "E",
                                  ExifTags.GPS.GPSLongitude: (116.0, 23.0, 17.0)}
    return exif.tobytes()


def picture(size: tuple[int, int] = (48, 32), mode: str = "RGB", noise: bool = False) -> Image.Image:
    if noise:
        return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))
    image = Image.new(mode, size, (200, 40, 90, 255)[:len(mode)])
    image.putpixel((1, 1), (10, 220, 30, 128)[:len(mode)])
    return image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(size: tuple[int, int] = (48, 32), *, metadata: bool = False, noise: bool = False, **options: object) -> bytes:
    if metadata:
        xmp = b"<x:xmpmeta>" + SECRET + b"</x:xmpmeta>"
        options = {"exif": camera_exif(), "comment": SECRET, "xmp": xmp, **options}
    return encode(picture(size, noise=noise), "JPEG", **{"quality": 90, **options})


def png(size: tuple[int, int] = (48, 32), *, metadata: bool = False, mode: str = "RGBA") -> bytes:
    options: dict[str, object] = {}
    if metadata:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", SECRET.decode())
        info.add_itxt("Author", SECRET.decode(), zip=True)
        options = {"pnginfo": info, "exif": camera_exif()}
    return encode(picture(size, mode=mode), "PNG", **options)


def webp(size: tuple[int, int] = (48, 32), *, metadata: bool = False, lossless: bool = False) -> bytes:
    options: dict[str, object] = {"lossless": lossless, "quality": 80}
    if metadata:
        options.update(exif=camera_exif(), xmp=b"<x:xmpmeta>" + SECRET + b"</x:xmpmeta>")
    return encode(picture(size, mode="RGBA"), "WEBP", **options)


def png_with_ihdr_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size, with a correct CRC so only a decode can tell."""
    out = bytearray(data)
    out[16:24] = struct.pack(">II", width, height)
    out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    return bytes(out)


def multipart(parts: list[tuple[str, str | None, str | None, bytes]], boundary: str = "test-boundary-7f3a") \
        -> tuple[bytes, dict[str, str]]:
    """(name, filename, content type, bytes) parts → body and headers, built independently of the app's code."""
    chunks = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(head.encode() + b"\r\n" + data + b"\r\n")
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
