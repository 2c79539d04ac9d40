"""Labelled image datasets as mmrobust sees them: pixels in [0, 1], class names, prompt templates.

Every loader returns an :class:`ImageClassificationDataset`; attacks and evaluation never need to know
where the images came from. Images keep their native resolution (the model resizes inside), so a
perturbation is applied to the pixels a user actually has, as in the reference implementations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError
from .image_decode import decode_image


def refine_classname(name: str) -> str:
    """Readable class name for prompts: ``aquarium_fish`` -> ``aquarium fish`` (as CLIP/MMCoA do)."""
    return " ".join(name.replace("_", " ").replace("-", " ").replace("/", " ").split()).lower()


class ImageClassificationDataset(Dataset):
    """Base class: ``dataset[i] -> (float image 3 x H x W in [0, 1], int label)``."""

    def __init__(
        self,
        name: str,
        split: str,
        classes: Sequence[str],
        templates: Sequence[str],
        root: str | Path | None = None,
        class_synonyms: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self.name = name
        self.split = split
        self.classes = list(classes)
        self.templates = list(templates)
        self.root = None if root is None else str(root)
        #: alternative names per class where the source has them (e.g. WordNet synonyms)
        self.class_synonyms = [list(s) for s in class_synonyms] if class_synonyms else [[c] for c in self.classes]

    @property
    def labels(self) -> np.ndarray:
        """All labels as an int array (cheap: subclasses keep them in memory)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "split": self.split,
            "root": self.root,
            "n_total": len(self),
            "n_classes": len(self.classes),
        }


class TensorImageDataset(ImageClassificationDataset):
    """Images held in memory as uint8 N x 3 x H x W (CIFAR, digits): fast and exact."""

    def __init__(self, images: torch.Tensor, labels: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise DatasetError(f"{kwargs.get('name')}: expected uint8 N x 3 x H x W images, got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise DatasetError(f"{kwargs.get('name')}: {len(images)} images but {len(labels)} labels")
        self.images = images
        self._labels = np.asarray(labels, dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div_(255.0), int(self._labels[index])


class FileImageDataset(ImageClassificationDataset):
    """Images decoded from files on access (Tiny-ImageNet, ImageFolder): memory stays small.

    ``image_size`` (optional) resizes the shorter side and centre-crops to a square, so a batch can be
    stacked; ``None`` requires all images to share one size, ``expected_size`` (width, height), which is
    checked per file (Tiny-ImageNet's are all 64 x 64) so an odd image is an error naming it.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int],
        image_size: int | None = None,
        expected_size: tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(paths) != len(labels):
            raise DatasetError(f"{kwargs.get('name')}: {len(paths)} files but {len(labels)} labels")
        self.paths = [Path(p) for p in paths]
        self._labels = np.asarray(labels, dtype=np.int64)
        self.image_size = image_size
        self.expected_size = expected_size

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return load_image_file(self.paths[index], self.image_size, self.expected_size), int(self._labels[index])


def load_image_file(
    path: Path, image_size: int | None = None, expected_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Decode one image to a 3 x H x W float tensor in [0, 1]; a bad file names itself in the error."""
    array = decode_image(path, image_size, expected_size)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def image_to_tensor(img: Any, image_size: int | None = None) -> torch.Tensor:
    """An already opened PIL image (e.g. from a torchvision set) -> 3 x H x W float in [0, 1]."""
    from .image_decode import resize_center_crop

    img = img.convert("RGB")
    if image_size is not None and img.size != (image_size, image_size):
        img = resize_center_crop(img, image_size)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)


class SubsetView(ImageClassificationDataset):
    """A fixed list of indices into a dataset, keeping its names and templates."""

    def __init__(self, base: ImageClassificationDataset, indices: Sequence[int]) -> None:
        super().__init__(
            name=base.name, split=base.split, classes=base.classes, templates=base.templates, root=base.root,
            class_synonyms=base.class_synonyms,
        )
        self.base = base
        self.indices = [int(i) for i in indices]

    @property
    def labels(self) -> np.ndarray:
        return self.base.labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.base[self.indices[index]]


DatasetFactory = Callable[..., ImageClassificationDataset]
