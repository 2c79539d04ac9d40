"""The dataset registry: every dataset is one :class:`DatasetSpec` line.

Adding a dataset = one loader ``loader(root, split, **kwargs) -> ImageClassificationDataset`` (a module in
``data/``) + one line in :data:`SPECS`; ``mmrobust datasets``, ``--dataset`` and the contract tests follow.
Extension points: a ``task`` other than "classification" (e.g. "retrieval" image-caption sets for
``--task retrieval``) is a new field value plus its loader; a dataset addressed by a path prefix (``wds:PATH``
for WebDataset shards) is a spec whose ``name`` is the prefix, resolved by :func:`load_dataset` before the
plain-name lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import DatasetError
from .base import ImageClassificationDataset
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .image_folder import load_image_folder
from .retrieval_karpathy import load_coco, load_flickr30k
from .tiny_imagenet import load_tiny_imagenet
from .torchvision_datasets import TORCHVISION_DATASETS, make_torchvision_loader
from .wds import load_wds

@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Callable[..., ImageClassificationDataset]
    #: the split evaluated when none is given
    default_split: str
    description: str
    task: str = "classification"


SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec("digits", load_digits, "test", "scikit-learn digits, 8x8 grayscale, 10 classes (ships with scikit-learn)"),
    DatasetSpec("cifar10", load_cifar10, "test", "CIFAR-10, python pickle layout (cifar-10-batches-py/)"),
    DatasetSpec("cifar100", load_cifar100, "test", "CIFAR-100, python pickle layout (cifar-100-python/)"),
    DatasetSpec("tinyimagenet", load_tiny_imagenet, "val", "Tiny-ImageNet-200, official layout, names from words.txt"),
    DatasetSpec("imagefolder", load_image_folder, "test", "any ImageFolder tree: <root>/<class>/<image>"),
    DatasetSpec("flickr30k", load_flickr30k, "test",
                "Flickr30k, Karpathy split (dataset_flickr30k.json + flickr30k-images/); test = 1k", task="retrieval"),
    DatasetSpec("coco", load_coco, "test", "MSCOCO captions, Karpathy split (dataset_coco.json + val2014/); test = 5k",
                task="retrieval"),
    DatasetSpec("wds:", load_wds, "test", "CLIP_benchmark webdataset: wds:FOLDER, or a hub id wds:OWNER/NAME"),
) + tuple(
    DatasetSpec(name, make_torchvision_loader(name), "test" if "test" in info.splits else next(iter(info.splits)),
                f"torchvision {info.cls} (needs a working torchvision)")
    for name, info in TORCHVISION_DATASETS.items()
)

#: name -> spec
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in SPECS}


def load_dataset(
    name: str, root: str | Path | None = None, split: str | None = None, **kwargs: Any
) -> ImageClassificationDataset:
    """Load ``name`` (see :data:`DATASETS`); ``split=None`` takes the dataset's evaluation split."""
    for spec in SPECS:  # prefix specs (``wds:PATH``): the loader gets PATH
        if spec.name.endswith(":") and name.startswith(spec.name):
            return spec.loader(root, split or spec.default_split, path=name[len(spec.name):], **kwargs)
    key = name.lower().replace("-", "_") if name.lower().replace("-", "_") in DATASETS else name.lower()
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[key]
    if spec.task != "classification":
        raise DatasetError(f"{spec.name} is a {spec.task} dataset (image-caption pairs): use --task {spec.task}")
    return spec.loader(root, split or spec.default_split, **kwargs)


def list_datasets() -> list[dict[str, str]]:
    return [{"name": s.name, "default_split": s.default_split, "task": s.task, "description": s.description}
            for s in SPECS]
