"""One reader for the one-item-per-line text files users and datasets hand us (templates, class names).

Why one: the same file format (UTF-8, one item per line, blank lines ignored, as CLIP_benchmark's
``classnames.txt`` and ``zeroshot_classification_templates.txt``) is read for ``--templates``,
``--classnames`` and webdataset folders; an unreadable or non-UTF-8 file is one error line naming it,
never a traceback. A NUL byte is refused too: it is valid UTF-8, but no class name or template holds one, and
C-based tokenizers and terminals truncate the text at it, so the model would see another word than the report.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, MMRobustError


def read_lines(path: str | Path, label: str, error: type[MMRobustError] = ConfigError) -> list[str]:
    """The stripped non-blank lines of ``path``; ``label`` names the file (or option) in the error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{label}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise error(f"{label}: cannot read it ({exc.strerror or exc})") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise error(f"{label}: line {line} contains a NUL byte (a binary file, or a name truncated by C tools); "
                    f"save it as plain UTF-8 text")
    return [line.strip() for line in text.splitlines() if line.strip()]


def warn_duplicates(names: list[str], label: str) -> list[tuple[str, int, int]]:
    """Warn (one ``warning:`` line on stderr) when a class name is listed twice; returns (name, first, later).

    Why: zero-shot classification builds one text embedding per name, so two equal names give two identical
    heads that tie on every image; argmax picks the first, and the later label is never predicted (its accuracy
    is 0 by construction). Why a warning and not an error: CLIP_benchmark's own ImageNet list (shipped in
    ``files/classnames.json``) names 'missile' and 'sunglasses' twice, and every published ImageNet zero-shot
    number carries those ties; refusing would make the standard set unusable."""
    import sys

    first: dict[str, int] = {}
    pairs = []
    for index, name in enumerate(names):
        if name in first:
            pairs.append((name, first[name], index))
        else:
            first[name] = index
    if pairs:
        name, a, b = pairs[0]
        more = f" (and {len(pairs) - 1} more name(s))" if len(pairs) > 1 else ""
        print(f"warning: {label}: class name {name!r} is listed twice (labels {a} and {b}){more}; zero-shot heads "
              f"of equal names tie, so the later label is never predicted", file=sys.stderr)
    return pairs
