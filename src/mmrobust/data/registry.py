"""Dataset names -> loaders. Adding a dataset = one loader function plus one line here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import DatasetError
from .base import ImageClassificationDataset
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .image_folder import load_image_folder
from .tiny_imagenet import load_tiny_imagenet
from .torchvision_datasets import TORCHVISION_DATASETS, make_torchvision_loader

#: name -> (loader(root, split), default evaluation split, description)
DATASETS: dict[str, tuple[Callable[..., ImageClassificationDataset], str, str]] = {
    "digits": (load_digits, "test", "scikit-learn digits, 8x8 grayscale, 10 classes (ships with scikit-learn)"),
    "cifar10": (load_cifar10, "test", "CIFAR-10, python pickle layout (cifar-10-batches-py/)"),
    "cifar100": (load_cifar100, "test", "CIFAR-100, python pickle layout (cifar-100-python/)"),
    "tinyimagenet": (load_tiny_imagenet, "val", "Tiny-ImageNet-200, official layout, names from words.txt"),
    "imagefolder": (load_image_folder, "test", "any ImageFolder tree: <root>/<class>/<image>"),
}
for _name in TORCHVISION_DATASETS:
    DATASETS[_name] = (make_torchvision_loader(_name), "test" if "test" in TORCHVISION_DATASETS[_name].splits
                       else next(iter(TORCHVISION_DATASETS[_name].splits)),
                       f"torchvision {TORCHVISION_DATASETS[_name].cls} (needs a working torchvision)")


def load_dataset(
    name: str, root: str | Path | None = None, split: str | None = None, **kwargs: Any
) -> ImageClassificationDataset:
    """Load ``name`` (see :data:`DATASETS`); ``split=None`` takes the dataset's evaluation split."""
    key = name.lower().replace("-", "_") if name.lower().replace("-", "_") in DATASETS else name.lower()
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    loader, default_split, _ = DATASETS[key]
    return loader(root, split or default_split, **kwargs)


def list_datasets() -> list[dict[str, str]]:
    return [{"name": n, "default_split": s, "description": d} for n, (_, s, d) in DATASETS.items()]
