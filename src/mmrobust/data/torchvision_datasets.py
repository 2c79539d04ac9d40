"""The study's other datasets through torchvision, when torchvision is importable.

Why optional: the core package must not require torchvision (on some machines the PyPI wheel does not
match the installed torch and its import fails). Every failure becomes one :class:`DatasetError` line
saying what to install. Templates follow the study's code (MMCoA's ``clip_prompts``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DatasetError
from .base import ImageClassificationDataset, refine_classname
from .templates import STUDY_TEMPLATE


@dataclass(frozen=True)
class TorchvisionSpec:
    """How to build one torchvision dataset: class, split keyword, split values, template, class names."""

    cls: str
    split_kw: str | None
    splits: dict[str, Any]
    template: str = STUDY_TEMPLATE
    classes_attr: str = "classes"
    extra: dict[str, Any] = field(default_factory=dict)


TORCHVISION_DATASETS: dict[str, TorchvisionSpec] = {
    "stl10": TorchvisionSpec("STL10", "split", {"test": "test", "train": "train"}),
    "caltech101": TorchvisionSpec("Caltech101", None, {"all": None}, "A photo of a {}.", "categories"),
    "oxford_pets": TorchvisionSpec("OxfordIIITPet", "split", {"test": "test", "train": "trainval"},
                                   "A photo of a {}, a type of pet."),
    "flowers102": TorchvisionSpec("Flowers102", "split", {"test": "test", "train": "train"},
                                  "A photo of a {}, a type of flower."),
    "dtd": TorchvisionSpec("DTD", "split", {"test": "test", "train": "train"}, "A surface with a {} texture."),
    "eurosat": TorchvisionSpec("EuroSAT", None, {"all": None}, "A centered satellite photo of {}."),
    "fgvc_aircraft": TorchvisionSpec("FGVCAircraft", "split", {"test": "test", "train": "trainval"},
                                     "A photo of a {}, a type of aircraft."),
    "food101": TorchvisionSpec("Food101", "split", {"test": "test", "train": "train"}, "A photo of {}, a type of food."),
    "stanford_cars": TorchvisionSpec("StanfordCars", "split", {"test": "test", "train": "train"}),
    "sun397": TorchvisionSpec("SUN397", None, {"all": None}),
    "imagenet": TorchvisionSpec("ImageNet", "split", {"test": "val", "val": "val", "train": "train"}),
    "pcam": TorchvisionSpec("PCAM", "split", {"test": "test", "train": "train"}),
}


def import_torchvision() -> Any:
    """Import torchvision or raise one clear line explaining why it is unusable here."""
    try:
        return importlib.import_module("torchvision")
    except ImportError:
        raise DatasetError(
            "this dataset is loaded through torchvision, which is not installed: `pip install torchvision` "
            "(a build matching your torch)"
        ) from None
    except Exception as exc:  # a CUDA-only wheel next to a CPU torch dies with RuntimeError at import
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DatasetError(
            f"this dataset is loaded through torchvision, which is installed but fails to import "
            f"({type(exc).__name__}: {first}); install a torchvision build matching torch {torch.__version__}"
        ) from None


class TorchvisionImageDataset(ImageClassificationDataset):
    """Wraps a torchvision dataset; images are resized/centre-cropped to ``image_size`` and scaled to [0, 1]."""

    def __init__(self, inner: Any, labels: np.ndarray, image_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = inner
        self._labels = labels
        self.image_size = image_size

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from .base import image_to_tensor

        image, label = self.inner[index]
        return image_to_tensor(image, self.image_size), int(label)


def _labels_of(inner: Any) -> np.ndarray:
    for attr in ("targets", "labels", "_labels", "y", "_samples"):
        value = getattr(inner, attr, None)
        if value is None:
            continue
        if attr == "_samples":
            return np.asarray([s[1] for s in value], dtype=np.int64)
        return np.asarray(value, dtype=np.int64)
    return np.asarray([inner[i][1] for i in range(len(inner))], dtype=np.int64)


def _class_names(inner: Any, spec: TorchvisionSpec, name: str) -> list[str]:
    raw = getattr(inner, spec.classes_attr, None)
    if raw is None:
        raise DatasetError(f"{name}: torchvision gives no class names; pass --classnames FILE (one name per line)")
    return [refine_classname(c[0] if isinstance(c, (tuple, list)) else str(c)) for c in raw]


def make_torchvision_loader(name: str) -> Callable[..., ImageClassificationDataset]:
    spec = TORCHVISION_DATASETS[name]

    def load(root: str | Path | None, split: str = "test", image_size: int = 224) -> ImageClassificationDataset:
        if root is None:
            raise DatasetError(f"{name} needs --data-root (the folder torchvision's {spec.cls} reads)")
        if not Path(root).expanduser().exists():
            raise DatasetError(f"data root {root} does not exist")
        if split not in spec.splits:
            raise DatasetError(f"{name} has splits {sorted(spec.splits)}, not {split!r}")
        datasets = import_torchvision().datasets
        kwargs: dict[str, Any] = dict(spec.extra)
        if spec.split_kw is not None:
            kwargs[spec.split_kw] = spec.splits[split]
        if spec.cls != "ImageNet":
            kwargs["download"] = False
        try:
            inner = getattr(datasets, spec.cls)(str(Path(root).expanduser()), **kwargs)
        except Exception as exc:  # torchvision raises RuntimeError("Dataset not found ...") and others
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise DatasetError(f"{name} could not be read under {root}: {first} (no download is attempted)") from None
        return TorchvisionImageDataset(
            inner, _labels_of(inner), image_size, name=name, split=split, classes=_class_names(inner, spec, name),
            templates=[spec.template], root=root,
        )

    return load
