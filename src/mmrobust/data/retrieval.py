"""Image–caption retrieval sets as mmrobust sees them: images (pixels in [0, 1]) with several captions each.

Why a class of its own (not an :class:`~.base.ImageClassificationDataset`): retrieval has no labels; the
ground truth is which captions belong to which image, and recall is computed against the whole split
(the gallery), so the evaluation needs every caption up front and the images batch by batch.

Images are decoded on access and brought to one square size (shorter side resized, centre crop), the
test transform of Co-Attack and SGA (``Resize(n_px)`` + ``CenterCrop(n_px)``): Flickr30k and COCO images
differ in size, so a batch could not be stacked otherwise, and the perturbation then lives at the
resolution the model sees.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import DatasetError
from .base import load_image_file
from .image_decode import decode_image as safe_decode


@dataclass(frozen=True)
class ImageSource:
    """Where one image comes from: a file, or encoded bytes held in memory (a webdataset member)."""

    name: str
    path: Path | None = None
    data: bytes | None = None


def decode_image(source: ImageSource, image_size: int | None) -> torch.Tensor:
    """3 x S x S float pixels in [0, 1], through the safe decoder (size limit); a bad image names itself."""
    if source.path is not None:
        return load_image_file(source.path, image_size)
    buffer = io.BytesIO(source.data or b"")
    try:
        array = safe_decode(buffer, image_size)  # type: ignore[arg-type]  (Pillow reads file objects too)
    except DatasetError as exc:
        raise DatasetError(str(exc).replace(str(buffer), source.name)) from None
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


class RetrievalDataset:
    """``dataset.captions[i]`` are image ``i``'s captions; ``dataset.image(i)`` its pixels.

    ``n_skipped_no_captions`` counts images of the split that had no caption and were left out (they
    cannot be retrieved nor retrieve anything). ``image_size`` must be set (by the evaluation, to the
    crafting model's input size) before images are read unless all images share one size.
    """

    def __init__(
        self,
        name: str,
        split: str,
        sources: Sequence[ImageSource],
        captions: Sequence[Sequence[str]],
        root: str | Path | None = None,
        n_skipped_no_captions: int = 0,
        layout: str = "",
    ) -> None:
        if len(sources) != len(captions):
            raise DatasetError(f"{name}: {len(sources)} images but {len(captions)} caption lists")
        if not sources:
            raise DatasetError(f"{name}: split {split!r} has no image with a caption"
                               + (f" ({n_skipped_no_captions} image(s) without captions)" if n_skipped_no_captions else ""))
        self.name = name
        self.split = split
        self.sources = list(sources)
        self.captions = [list(c) for c in captions]
        self.root = None if root is None else str(root)
        self.n_skipped_no_captions = int(n_skipped_no_captions)
        self.layout = layout
        self.image_size: int | None = None

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def n_captions(self) -> int:
        return sum(len(c) for c in self.captions)

    def image(self, index: int) -> torch.Tensor:
        return decode_image(self.sources[index], self.image_size)

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        """A stacked batch; images of different sizes need ``image_size`` set."""
        tensors = [self.image(int(i)) for i in indices]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise DatasetError(f"{self.name}: images differ in size {sorted(shapes)[:2]}; set image_size to batch them")
        return torch.stack(tensors)

    def subset(self, indices: Sequence[int]) -> "RetrievalDataset":
        """The images ``indices`` (sorted positions) with their captions; the skip count is kept."""
        out = RetrievalDataset(self.name, self.split, [self.sources[i] for i in indices],
                               [self.captions[i] for i in indices], self.root, self.n_skipped_no_captions, self.layout)
        out.image_size = self.image_size
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "split": self.split,
            "root": self.root,
            "layout": self.layout,
            "n_images": len(self),
            "n_captions": self.n_captions,
            "n_skipped_no_captions": self.n_skipped_no_captions,
            "image_size": self.image_size,
        }


def clean_captions(raw: Sequence[Any]) -> list[str]:
    """Strings with their whitespace collapsed; empty ones dropped."""
    out = []
    for caption in raw:
        text = " ".join(str(caption).split())
        if text:
            out.append(text)
    return out
