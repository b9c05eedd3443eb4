"""Small real images for the image tests: PNG files drawn with segno, and an image served over HTTP."""

from __future__ import annotations

import io
from pathlib import Path

import segno


def png_bytes(text: str = "engagebot") -> bytes:
    out = io.BytesIO()
    segno.make(text).save(out, kind="png", scale=3)
    return out.getvalue()


def png_file(directory: Path, name: str = "poster.png", text: str = "engagebot") -> Path:
    path = directory / name
    path.write_bytes(png_bytes(text))
    return path
