"""Prompt templates: the study's single template, CLIP's ensembles, and per-dataset ones.

Why several: the study (and MMCoA's code) uses "This is a photo of a {}" for CIFAR/ImageNet-like sets and
dataset-specific templates elsewhere; CLIP's ensembles give higher clean accuracy. A run records which
templates it used, since zero-shot accuracy (and text-attack strength) depends on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from .text_lists import read_lines

STUDY_TEMPLATE = "This is a photo of a {}"

#: CLIP's CIFAR-10/100 ensemble (Radford et al. 2021, notebooks/Prompt_Engineering_for_ImageNet)
CLIP_CIFAR_TEMPLATES = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
]

#: a short general-purpose ensemble (a subset of CLIP's ImageNet templates)
CLIP_GENERAL_TEMPLATES = [
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a low resolution photo of a {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "itap of a {}.",
    "art of the {}.",
]

DIGIT_TEMPLATES = ["a photo of the digit {}.", "a handwritten digit {}.", "the number {}."]

NAMED_TEMPLATE_SETS: dict[str, list[str]] = {
    "study": [STUDY_TEMPLATE],
    "clip-cifar": CLIP_CIFAR_TEMPLATES,
    "clip": CLIP_GENERAL_TEMPLATES,
    "digits": DIGIT_TEMPLATES,
}


def from_clip_benchmark(template: str) -> str:
    """CLIP_benchmark writes ``{c}`` for the class name (its ``zeroshot_classification_templates.txt``);
    mmrobust's templates use ``{}``. Every template file reader goes through here, so both spellings work."""
    return template.replace("{c}", "{}")


#: longer than this is not a prompt (CLIP's text tower reads 77 tokens); a 1 MB line took 11 s to tokenize
MAX_TEMPLATE_CHARS = 1000


def _shown(template: str) -> str:
    """A template as an error message shows it: quoted, cut to 60 characters (never a 1 MB error line)."""
    return repr(template if len(template) <= 60 else template[:57] + "...")


def validate_templates(templates: Sequence[str]) -> list[str]:
    """Every template must have exactly one ``{}`` field and nothing else ``str.format`` would act on; an empty
    list is an error, not a no-op.

    Why :class:`string.Formatter` and not ``count("{}")``: a template is used as ``template.format(name)``, so
    ``"{}.{__class__}"`` (one ``{}``, plus a named field) raised KeyError, ``"{} {[0]}"`` IndexError and
    ``"{} }{"`` ValueError deep inside the model code, while ``"{{}}"`` (an escaped literal, no field at all)
    passed and gave prompts without the class name. Fields with attributes, indices, conversions or format
    specs (``{c.__class__}``, ``{0}``, ``{!r}``, ``{:>9999}``) are refused the same way."""
    from string import Formatter

    templates = [t for t in templates]
    if not templates:
        raise ConfigError("the template list is empty")
    for template in templates:
        if len(template) > MAX_TEMPLATE_CHARS:
            raise ConfigError(f"template {_shown(template)} is {len(template):,} characters long; a prompt "
                              f"template is at most {MAX_TEMPLATE_CHARS:,} (CLIP's text tower reads 77 tokens)")
        try:
            fields = [(name, spec, conv) for _, name, spec, conv in Formatter().parse(template) if name is not None]
        except ValueError as exc:
            raise ConfigError(f"template {_shown(template)} is not a valid format string ({exc}); write a "
                              f"literal brace as '{{{{' or '}}}}'") from None
        if fields != [("", "", None)]:
            raise ConfigError(f"template {_shown(template)} must contain exactly one '{{}}' (or '{{c}}') "
                              f"placeholder for the class name and no other '{{...}}' field")
    return templates


def resolve_templates(choice: str | None, dataset_default: Sequence[str]) -> list[str]:
    """``None``/"default" -> the dataset's own; a named set; or a text file with one template per line
    (``{}`` or CLIP_benchmark's ``{c}`` for the class name)."""
    if choice in (None, "", "default"):
        return validate_templates(dataset_default)
    if choice in NAMED_TEMPLATE_SETS:
        return list(NAMED_TEMPLATE_SETS[choice])
    if Path(choice).is_file():
        return validate_templates([from_clip_benchmark(t) for t in read_lines(choice, f"--templates {choice}")])
    raise ConfigError(
        f"unknown template set {choice!r}: use one of {sorted(NAMED_TEMPLATE_SETS)} or a file with one template per line"
    )
