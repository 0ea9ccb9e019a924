"""Images as data: PNG bytes carried as base64 text on an instance, and a guarded decoder.

Instances must survive a JSON round trip (the contract battery checks it), so an image travels as
``{"png_b64": "..."}`` inside ``Instance.data``, never as a path: an archived instance stays
self-contained. ``decode`` is the one door through which bytes from outside (an instance file, a
request, a dataset row) become a Pillow image; it refuses oversized, corrupt and non-PNG/JPEG
input with a one-line ``BadImage`` instead of letting Pillow raise (or decompress a bomb).

Pillow is imported lazily: environment modules import this file, and a sandboxed program that
imports an environment must not pay for (or need) Pillow until it draws.
"""

from __future__ import annotations

import base64
import binascii
import io

#: Largest encoded image accepted by ``decode`` (bytes). PROPOSED: the rendered scenes are ~2-6 KB.
MAX_IMAGE_BYTES = 4 * 1024 * 1024
#: Largest decoded image accepted (pixels), checked from the header before any pixel is decoded.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Formats ``decode`` opens.
FORMATS = ("PNG", "JPEG")


class BadImage(ValueError):
    """An image that cannot be used: missing, too large, corrupt or of another format (one line)."""


def png_bytes(image) -> bytes:
    """Deterministic PNG bytes of a Pillow image (no timestamps, fixed compression)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=1)  # speed over size: ~1-3 KB
    return buf.getvalue()


def to_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_b64(text: object) -> bytes:
    """The bytes of base64 ``text``; ``BadImage`` when it is not valid base64 or too large."""
    if not isinstance(text, str) or not text:
        raise BadImage("image missing: no base64 PNG on the instance")
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 8:
        raise BadImage(f"image larger than {MAX_IMAGE_BYTES} bytes")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise BadImage(f"image is not valid base64 ({type(exc).__name__})") from None


def decode(data: bytes | str | None):
    """A loaded RGB Pillow image from PNG/JPEG bytes (or their base64 text); ``BadImage`` otherwise."""
    from PIL import Image, UnidentifiedImageError

    if data is None:
        raise BadImage("image missing")
    if isinstance(data, str):
        data = from_b64(data)
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise BadImage("image missing: empty bytes")
    if len(data) > MAX_IMAGE_BYTES:
        raise BadImage(f"image larger than {MAX_IMAGE_BYTES} bytes ({len(data)})")
    try:
        image = Image.open(io.BytesIO(bytes(data)), formats=list(FORMATS))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise BadImage(f"image of {width}x{height} pixels exceeds {MAX_IMAGE_PIXELS} pixels")
        image.load()
    except BadImage:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImage(f"corrupt or unsupported image ({type(exc).__name__})") from None
    return image.convert("RGB")


def instance_image(data: dict):
    """The decoded image of an instance's data (``data["image"]["png_b64"]``)."""
    image = data.get("image") if isinstance(data, dict) else None
    return decode(image.get("png_b64") if isinstance(image, dict) else None)


def instance_png(data: dict) -> bytes | None:
    """The image bytes an instance's data carries (``data["image"]["png_b64"]``), None when it
    carries no image; ``BadImage`` when the entry is there but unusable."""
    image = data.get("image") if isinstance(data, dict) else None
    if image is None:
        return None
    if not isinstance(image, dict):
        raise BadImage("image entry is not an object with png_b64")
    return from_b64(image.get("png_b64"))


def data_url(png: bytes) -> str:
    """An RFC 2397 ``data:`` URL of PNG bytes, the form OpenAI-style APIs take in ``image_url``."""
    return "data:image/png;base64," + to_b64(png)
