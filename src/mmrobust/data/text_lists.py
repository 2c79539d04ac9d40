"""One reader for the one-item-per-line text files users and datasets hand us (templates, class names).

Why one: the same file format (UTF-8, one item per line, blank lines ignored, as CLIP_benchmark's
``classnames.txt`` and ``zeroshot_classification_templates.txt``) is read for ``--templates``,
``--classnames`` and webdataset folders; an unreadable or non-UTF-8 file is one error line naming it,
never a traceback.
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
    return [line.strip() for line in text.splitlines() if line.strip()]
