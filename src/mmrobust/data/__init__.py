"""Data: labelled image datasets with class names and prompt templates, and deterministic sub-sampling."""

from .base import ImageClassificationDataset, SubsetView
from .registry import DATASETS, list_datasets, load_dataset
from .sampling import indices_sha256, subsample_indices
from .templates import resolve_templates, validate_templates

__all__ = [
    "DATASETS",
    "ImageClassificationDataset",
    "SubsetView",
    "indices_sha256",
    "list_datasets",
    "load_dataset",
    "resolve_templates",
    "subsample_indices",
    "validate_templates",
]
