"""The study's other datasets through torchvision, when torchvision is importable.

Why optional: the core package must not require torchvision (on some machines the PyPI wheel does not
match the installed torch and its import fails). Every failure becomes one :class:`DatasetError` line
saying what to install.

Prompts are data, not code: the templates are the catalog's (``files/datasets.json``: the study's own, from
MMCoA's ``clip_prompts``; the study's single template where it has none), and the class names are the
shipped zero-shot names (``files/classnames.json``, CLIP_benchmark's) where the package has them, because
torchvision's are missing (Flowers102, PCAM) or raw (WordNet tuples, ``Abyssinian`` / codes like ``AD``).
Other sets keep torchvision's names, made readable as CLIP_benchmark does (``apple_pie`` -> ``apple pie``).
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
from .catalog import Catalog
from .templates import STUDY_TEMPLATE


@dataclass(frozen=True)
class TorchvisionSpec:
    """How to build one torchvision dataset: class, split keyword, split values, class-name attribute.

    Templates and curated class names live in the catalog under the same name (data, not code)."""

    cls: str
    split_kw: str | None
    splits: dict[str, Any]
    classes_attr: str = "classes"
    extra: dict[str, Any] = field(default_factory=dict)


TORCHVISION_DATASETS: dict[str, TorchvisionSpec] = {
    "stl10": TorchvisionSpec("STL10", "split", {"test": "test", "train": "train"}),
    "caltech101": TorchvisionSpec("Caltech101", None, {"all": None}, "categories"),
    "oxford_pets": TorchvisionSpec("OxfordIIITPet", "split", {"test": "test", "train": "trainval"}),
    "flowers102": TorchvisionSpec("Flowers102", "split", {"test": "test", "train": "train"}),
    "dtd": TorchvisionSpec("DTD", "split", {"test": "test", "train": "train"}),
    "eurosat": TorchvisionSpec("EuroSAT", None, {"all": None}),
    "fgvc_aircraft": TorchvisionSpec("FGVCAircraft", "split", {"test": "test", "train": "trainval"}),
    "food101": TorchvisionSpec("Food101", "split", {"test": "test", "train": "train"}),
    "stanford_cars": TorchvisionSpec("StanfordCars", "split", {"test": "test", "train": "train"}),
    "sun397": TorchvisionSpec("SUN397", None, {"all": None}),
    "country211": TorchvisionSpec("Country211", "split", {"test": "test", "valid": "valid", "train": "train"}),
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


def resolve_class_names(inner: Any, labels: np.ndarray, spec: TorchvisionSpec, name: str,
                        shipped: list[str] | None) -> list[str]:
    """The shipped names when the package has them (count checked against torchvision's, or against the labels
    when torchvision names none), else torchvision's attribute made readable."""
    raw = getattr(inner, spec.classes_attr, None)
    if shipped is not None:
        if raw is not None and len(raw) != len(shipped):
            raise DatasetError(f"{name}: mmrobust ships {len(shipped)} class names but torchvision's {spec.cls} has "
                               f"{len(raw)} classes (a different torchvision version or dataset release?)")
        if len(labels) and int(labels.max()) >= len(shipped):
            raise DatasetError(f"{name}: label {int(labels.max())} but mmrobust ships only {len(shipped)} class names")
        return list(shipped)
    if raw is None:
        raise DatasetError(f"{name}: torchvision's {spec.cls} has no '{spec.classes_attr}' attribute and mmrobust ships "
                           f"no class names for it (mmrobust/data/files/classnames.json): this torchvision is unsupported")
    return [refine_classname(c[0] if isinstance(c, (tuple, list)) else str(c)) for c in raw]


def catalog_templates(catalog: Catalog, name: str) -> list[str]:
    """The catalog's templates for ``name`` (the study's own), else the study's single template."""
    entry = catalog.get(name)
    return list(entry.templates) if entry is not None and entry.templates else [STUDY_TEMPLATE]


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
        labels, catalog = _labels_of(inner), Catalog()
        classes = resolve_class_names(inner, labels, spec, name, catalog.class_names(name))
        return TorchvisionImageDataset(inner, labels, image_size, name=name, split=split, classes=classes,
                                       templates=catalog_templates(catalog, name), root=root)

    return load
