"""Decode one image file safely: a bad, huge or odd-sized file is one error line naming it.

Why: a dataset folder is untrusted input. A tiny PNG can declare 20000 x 20000 pixels (a decompression bomb that
would take gigabytes), and one image of another size in a fixed-size dataset (Tiny-ImageNet: all 64 x 64)
would otherwise surface as a tensor-stacking traceback far from the file. The pixel count is checked from the
header, before any pixel is decoded, without touching Pillow's global ``MAX_IMAGE_PIXELS``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError

#: largest image decoded (pixels): 64 megapixels, far above any benchmark image, far below a bomb's billions
MAX_PIXELS = 64 * 1024 * 1024


def decode_image(
    path: Path, image_size: int | None = None, expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """RGB uint8 array H x W x 3; ``image_size`` resizes the shorter side and centre-crops to a square,
    ``expected_size`` (width, height) refuses any other size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise DatasetError(
                        f"image {path} is too large to decode safely: {width}x{height} pixels, over the limit of "
                        f"{MAX_PIXELS} (a decompression bomb or not a dataset image)"
                    )
                if expected_size is not None and (width, height) != tuple(expected_size):
                    raise DatasetError(
                        f"image {path} is {width}x{height}, expected {expected_size[0]}x{expected_size[1]} "
                        "like every image of this dataset"
                    )
                img = img.convert("RGB")
                if image_size is not None:
                    img = resize_center_crop(img, image_size)
                return np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DatasetError(f"image file {path} does not exist") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(f"image {path} is too large to decode safely: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DatasetError(f"corrupt image {path}: {exc}") from None


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) from the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise DatasetError(f"image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"corrupt image {path}: {exc}") from None


def resize_center_crop(img: Any, size: int) -> Any:
    from PIL import Image

    width, height = img.size
    scale = size / min(width, height)
    img = img.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC)
    width, height = img.size
    left, top = (width - size) // 2, (height - size) // 2
    return img.crop((left, top, left + size, top + size))
