"""CLIP_benchmark's webdataset retrieval layout (``--dataset wds:PATH``), read with the standard library.

Layout (as CLIP_benchmark's ``build_wds_dataset`` / ``convert_retrieval_dataset`` write and read it)::

    PATH/dataset_type.txt          "retrieval"
    PATH/<split>/nshards.txt       number of shards N
    PATH/<split>/0.tar ... N-1.tar samples: <key>.{webp,png,jpg,jpeg} + <key>.txt

``<key>.txt`` holds the image's captions, one per line (CLIP_benchmark splits it with ``str.splitlines``).
A sample's key is its member path up to the first dot of the file name, as in webdataset. Why no
``webdataset`` dependency: a local tar reader is a few lines, and evaluation needs the whole split (the
gallery) anyway, not a stream. Images stay encoded in memory and are decoded batch by batch.

Bad input: a missing shard is an error naming it; a sample with captions but no image names the sample;
a sample without captions is skipped and counted; an empty split is an error.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from ..errors import DatasetError
from .retrieval import ImageSource, RetrievalDataset, clean_captions
from .wds import check_member_size, member_problem, read_shard_count, split_member_name

PREFIX = "wds:"
IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None


def shard_paths(root: Path, split: str) -> list[Path]:
    folder = root / split
    count_file = folder / "nshards.txt"
    if not count_file.is_file():
        raise DatasetError(f"no {count_file}: a webdataset split needs <root>/<split>/nshards.txt")
    count = read_shard_count(count_file)  # 1..MAX_SHARDS: 10**9 would build a billion paths first
    return [folder / f"{i}.tar" for i in range(count)]


def read_shard(path: Path) -> dict[str, dict[str, bytes]]:
    """key -> {extension: bytes} for one tar, in the tar's order."""
    if not path.is_file():
        raise DatasetError(f"missing shard {path} (listed by nshards.txt)")
    samples: dict[str, dict[str, bytes]] = {}
    try:
        size = path.stat().st_size
        with tarfile.open(path) as tar:
            for member in tar:
                problem = member_problem(member)  # links, devices, escaping names
                if problem is not None:
                    raise DatasetError(f"shard {path}: {problem}")
                check_member_size(member, size)  # before reading it into memory (10**12 was a MemoryError)
                if not member.isfile():
                    continue
                key, extension = split_member_name(member.name)
                handle = tar.extractfile(member)
                samples.setdefault(key, {})[extension] = handle.read() if handle else b""
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"corrupt shard {path}: {exc}") from None
    return samples


def load_wds_retrieval(path: str | Path, split: str = "test") -> RetrievalDataset:
    root = Path(str(path)[len(PREFIX):] if str(path).startswith(PREFIX) else path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"webdataset folder {root} does not exist")
    type_file = root / "dataset_type.txt"
    if type_file.is_file() and read_text(type_file).strip().lower() != "retrieval":
        raise DatasetError(f"{root} is a {read_text(type_file).strip()!r} webdataset "
                           f"(dataset_type.txt); retrieval needs one written as 'retrieval'")
    sources, captions, skipped = [], [], 0
    for shard in shard_paths(root, split):
        for key, parts in read_shard(shard).items():
            texts = clean_captions(parts["txt"].decode("utf-8", errors="replace").splitlines()) if "txt" in parts else []
            image_ext = next((e for e in IMAGE_EXTENSIONS if e in parts), None)
            if not texts:
                skipped += 1
                continue
            if image_ext is None:
                raise DatasetError(f"sample {key} in {shard} has captions but no image "
                                   f"({', '.join('.' + e for e in IMAGE_EXTENSIONS)})")
            sources.append(ImageSource(f"{shard.name}:{key}.{image_ext}", data=parts[image_ext]))
            captions.append(texts)
    return RetrievalDataset(f"wds:{root.name}", split, sources, captions, root, skipped, layout="webdataset (CLIP_benchmark)")
