"""Datasets in CLIP_benchmark's webdataset layout, read with the standard library's ``tarfile``.

CLIP_benchmark (LAION-AI) publishes its zero-shot classification sets in one layout, written by its
``clip_benchmark_export_wds`` converter and read by ``build_wds_dataset``::

    ROOT/classnames.txt                              one class name per line, line i = label i
    ROOT/zeroshot_classification_templates.txt       one template per line, ``{c}`` = the class name
    ROOT/dataset_type.txt                            optional; "retrieval"/"multilabel" are not classification
    ROOT/<split>/nshards.txt                         number of shards (mandatory, as in CLIP_benchmark)
    ROOT/<split>/0.tar, 1.tar, ...                   samples: "<key>.webp|png|jpg|jpeg" + "<key>.cls"

A sample is the run of consecutive tar members sharing a key (the member name up to the first dot of its
base name), as webdataset groups them; ``.cls`` holds the integer label as ASCII.

Why ``tarfile`` and not the ``webdataset`` package: webdataset is a streaming ``IterableDataset`` built
for sharded training at scale; an evaluation here needs *random access* (a seeded subset of n images, the
same indices recorded in the report, per-batch resume from position k, worker processes splitting a fixed
index list). One pass over the tar headers gives every sample's (shard, offset, size), after which any
image is one seek and one read, the dataset is an ordinary map-style ``Dataset`` and no dependency is
added. The shards are uncompressed tar files, so nothing is lost by not streaming.

Hub ids (``wds:clip-benchmark/wds_vtab-cifar10``) are fetched once through ``huggingface_hub`` (installed
with transformers) into its cache; offline, a spec that is neither a local folder nor cached fails with one
line saying how to fetch it.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DatasetError
from .base import ImageClassificationDataset
from .image_decode import decode_image
from .templates import from_clip_benchmark
from .text_lists import read_lines, warn_duplicates

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")
CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
TYPE_FILE = "dataset_type.txt"
NSHARDS_FILE = "nshards.txt"
#: images of mixed sizes are resized (shorter side) and centre-cropped to this, as ImageFolder does
DEFAULT_IMAGE_SIZE = 224
#: how many leading samples decide whether the split has one native size (headers only, cheap)
SIZE_PROBE = 16
#: a ``.cls`` member holds one integer as ASCII; a header claiming more is refused before anything is read
MAX_LABEL_BYTES = 64
#: more shards than this in ``nshards.txt`` is a damaged file, not a dataset (published sets have a few)
MAX_SHARDS = 100_000
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class WdsSample:
    """Where one sample's image bytes live: shard file, byte offset and size, image extension."""

    shard: int
    key: str
    offset: int
    size: int
    extension: str


def split_member_name(name: str) -> tuple[str, str]:
    """``"dir/s0000001.png" -> ("dir/s0000001", "png")``: webdataset's key = base name up to its first dot."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{folder}/{stem}" if folder else stem
    return key, ext.lower() if dot else ""


def _read_lines(path: Path) -> list[str]:
    return read_lines(path, str(path), DatasetError)


def dataset_kind(root: Path) -> str:
    """What CLIP_benchmark's converter wrote in ``dataset_type.txt`` ("retrieval", "multilabel"); a folder
    without the file is a classification set, as CLIP_benchmark assumes."""
    kind_file = root / TYPE_FILE
    if not kind_file.is_file():
        return "classification"
    try:
        return kind_file.read_text(encoding="utf-8").strip().lower() or "classification"
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {kind_file}: {exc}") from None


def check_layout(root: Path, split: str) -> tuple[list[str], list[Path]]:
    """Class names and shard paths of ``root/split``; every missing piece is named in one line."""
    if not root.is_dir():
        raise DatasetError(f"wds folder {root} does not exist")
    kind = dataset_kind(root)
    if kind == "retrieval":
        raise DatasetError(f"{root} is a retrieval dataset ({TYPE_FILE}): evaluate it with --task retrieval")
    if kind == "multilabel":
        raise DatasetError(f"{root} is a multilabel dataset ({TYPE_FILE}); mmrobust reads classification and "
                           f"retrieval sets")
    if not (root / CLASSNAMES_FILE).is_file():
        raise DatasetError(f"{root} is not a CLIP_benchmark classification folder: {CLASSNAMES_FILE} is missing "
                           f"(one class name per line, label i on line i+1)")
    classes = _read_lines(root / CLASSNAMES_FILE)
    if not classes:
        raise DatasetError(f"{root / CLASSNAMES_FILE} is empty")
    warn_duplicates(classes, str(root / CLASSNAMES_FILE))
    split_dir = root / split
    if not split_dir.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise DatasetError(f"{root} has no split {split!r} (splits here: {', '.join(present) or 'none'})")
    nshards_file = split_dir / NSHARDS_FILE
    if not nshards_file.is_file():
        raise DatasetError(f"{split_dir} has no {NSHARDS_FILE} (CLIP_benchmark's converter writes the shard count there)")
    nshards = read_shard_count(nshards_file)
    shards = [split_dir / f"{i}.tar" for i in range(nshards)]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise DatasetError(f"{split_dir}: {NSHARDS_FILE} says {nshards} shards but {len(missing)} of them "
                           f"{'is' if len(missing) == 1 else 'are'} missing ({', '.join(missing[:3])}"
                           f"{', ...' if len(missing) > 3 else ''})")
    return classes, shards


def read_shard_count(path: Path) -> int:
    """The integer in ``nshards.txt``, between 1 and :data:`MAX_SHARDS`.

    Why bounded: the count is turned into a list of shard paths, so ``10**9`` would build a billion paths (tens
    of GB) before a missing shard is reported; ``-1`` used to read "says -1 shards but none are missing"."""
    try:
        head = path.read_bytes()[:200]
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        nshards = int(head.decode("utf-8").strip())
    except (UnicodeDecodeError, ValueError):  # text, a float, NUL bytes, an empty file
        raise DatasetError(f"{path} must hold one integer (the shard count), got "
                           f"{head[:40].decode('utf-8', 'replace').strip()!r}") from None
    if not 1 <= nshards <= MAX_SHARDS:
        raise DatasetError(f"{path} says {nshards} shards; the count must be between 1 and {MAX_SHARDS:,}")
    return nshards


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member is refused, or None.

    Why refuse rather than skip: nothing is ever extracted (samples are read by offset), but a shard holding
    links, devices or names escaping the folder was not written by CLIP_benchmark's converter and would be
    dangerous to any tool that unpacks it (Python's ``tarfile`` ``data`` filter, PEP 706, refuses the same
    members); skipping them would also silently drop samples. A ``.cls`` header claiming more than a label's
    bytes is refused before it is read (10**12 was a MemoryError)."""
    name = member.name
    if name.startswith("/") or ".." in name.split("/"):
        return f"member {name!r} has an absolute or '..' name (it would escape the folder it is unpacked into)"
    kinds = ((member.issym, "a symbolic link"), (member.islnk, "a hard link"), (member.ischr, "a character device"),
             (member.isblk, "a block device"), (member.isfifo, "a FIFO"))
    kind = next((word for test, word in kinds if test()), None)
    if kind is not None:
        return f"member {name!r} is {kind}; a shard holds regular files only"
    if member.isfile() and split_member_name(name)[1] == "cls" and member.size > MAX_LABEL_BYTES:
        return (f"label member {name!r} claims {member.size:,} bytes; a .cls label is one integer "
                f"(at most {MAX_LABEL_BYTES} bytes)")
    return None


def check_member_size(member: tarfile.TarInfo, shard_size: int) -> None:
    """A member whose data would run past the file's end: the shard is truncated (or the header forged).

    Raised as ``tarfile.ReadError`` so readers report it as the corrupt shard it is; checked from the header
    alone, before a reader that loads members into memory tries to allocate the claimed size."""
    if member.isfile() and member.offset_data + member.size > shard_size:
        raise tarfile.ReadError(f"member {member.name!r} claims {member.size:,} bytes, past the end of the shard "
                                f"({shard_size:,} bytes; truncated, or a forged header)")


def index_shard(path: Path, shard: int) -> tuple[list[WdsSample], list[int]]:
    """One pass over a shard's headers: image locations and labels, in member order."""
    samples: list[WdsSample] = []
    labels: list[int] = []
    current: dict[str, Any] = {}
    last_key = None

    def close(key: str | None) -> None:
        if key is None:
            return
        image = next((current[e] for e in IMAGE_EXTENSIONS if e in current), None)
        if image is None or "cls" not in current:
            what = "image (.webp/.png/.jpg/.jpeg)" if image is None else ".cls label"
            raise DatasetError(f"shard {path}: sample {key!r} has no {what}")
        try:
            label = int(current["cls"].strip())
        except ValueError:
            raise DatasetError(f"shard {path}: sample {key!r} has a non-integer label {current['cls'][:20]!r}") from None
        samples.append(WdsSample(shard, key, image[0], image[1], image[2]))
        labels.append(label)

    end = 0
    try:
        size = path.stat().st_size
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                problem = member_problem(member)
                if problem is not None:
                    raise DatasetError(f"shard {path}: {problem}")
                check_member_size(member, size)
                if not member.isfile():
                    continue
                key, ext = split_member_name(member.name)
                if key != last_key:
                    close(last_key)
                    current, last_key = {}, key
                if ext in IMAGE_EXTENSIONS:
                    current[ext] = (member.offset_data, member.size, ext)
                elif ext == "cls":
                    handle = tar.extractfile(member)
                    current["cls"] = handle.read().decode("ascii", errors="replace") if handle else ""
            close(last_key)
        check_end_marker(path, end)
    except (tarfile.TarError, OSError, EOFError) as exc:
        after = f" after sample {last_key!r}" if last_key else ""
        raise DatasetError(f"corrupt shard {path}{after}: {exc}") from None
    return samples, labels


def check_end_marker(path: Path, end: int) -> None:
    """``tarfile`` stops quietly at a damaged header, so a truncated shard would just look shorter.

    A complete tar ends with zero blocks after its last member; anything else there means data was lost.
    """
    with open(path, "rb") as handle:
        handle.seek(end)
        tail = handle.read()
    if not tail:  # cut exactly at a member boundary: the message used to say "0 trailing bytes are not zero blocks"
        raise tarfile.ReadError(f"the file ends at byte {end} without an end-of-archive marker (truncated)")
    if tail.count(0) != len(tail):
        raise tarfile.ReadError(f"no end-of-archive marker after byte {end} (truncated or damaged; "
                                f"{len(tail)} trailing bytes are not zero blocks)")


class WdsImageDataset(ImageClassificationDataset):
    """A split of a CLIP_benchmark webdataset folder as a map-style dataset (see the module docstring)."""

    def __init__(self, shards: Sequence[Path], samples: Sequence[WdsSample], labels: Sequence[int],
                 image_size: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shards = [Path(s) for s in shards]
        self.samples = list(samples)
        self._labels = np.asarray(labels, dtype=np.int64)
        self.image_size = image_size

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def __len__(self) -> int:
        return len(self.samples)

    def read_bytes(self, index: int) -> bytes:
        sample = self.samples[index]
        with open(self.shards[sample.shard], "rb") as handle:
            handle.seek(sample.offset)
            data = handle.read(sample.size)
        if len(data) != sample.size:
            raise DatasetError(f"corrupt shard {self.shards[sample.shard]}: sample {sample.key!r} is truncated")
        return data

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:

        sample = self.samples[index]
        buffer = io.BytesIO(self.read_bytes(index))
        try:  # the safe decoder: size limit before decoding, one line for undecodable bytes
            array = decode_image(buffer, self.image_size)  # type: ignore[arg-type]  (Pillow reads file objects)
        except DatasetError as exc:
            detail = str(exc).replace(f" {buffer}", "").replace("corrupt image: ", "not a decodable image: ")
            raise DatasetError(f"corrupt image in shard {self.shards[sample.shard]}, sample {sample.key!r}: "
                               f"{detail}") from None
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0), int(self._labels[index])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "format": "CLIP_benchmark webdataset", "n_shards": len(self.shards),
                "image_size": self.image_size or "native"}


def native_size(dataset: WdsImageDataset, probe: int = SIZE_PROBE) -> int | None:
    """The common square size of the first images if they agree (e.g. CIFAR's 32), else ``None``."""
    from PIL import Image

    sizes = set()
    for index in range(min(probe, len(dataset))):
        try:
            with Image.open(io.BytesIO(dataset.read_bytes(index))) as img:
                sizes.add(img.size)
        except DatasetError:
            raise
        except Exception:
            dataset[index]  # raises the DatasetError naming shard and key
    if len(sizes) == 1:
        width, height = sizes.pop()
        if width == height:
            return width
    return None


def load_wds_folder(root: str | Path, split: str = "test", *, name: str | None = None,
                    templates: Sequence[str] | None = None, image_size: int | None = None) -> WdsImageDataset:
    """Read ``root/split`` (see the module docstring).

    ``templates`` overrides the folder's (the study's own, from the catalog); ``image_size=None`` keeps the
    native size when the first images share one square size, else resizes to 224 (batches must stack).
    """
    root = Path(root).expanduser()
    classes, shards = check_layout(root, split)
    samples: list[WdsSample] = []
    labels: list[int] = []
    for number, shard in enumerate(shards):
        shard_samples, shard_labels = index_shard(shard, number)
        samples.extend(shard_samples)
        labels.extend(shard_labels)
    if not samples:
        raise DatasetError(f"no samples in {root / split} ({len(shards)} shards)")
    bad = [(s, y) for s, y in zip(samples, labels) if not 0 <= y < len(classes)]
    if bad:
        sample, label = bad[0]
        raise DatasetError(f"shard {shards[sample.shard]}: sample {sample.key!r} has label {label}, outside "
                           f"0..{len(classes) - 1} ({CLASSNAMES_FILE} has {len(classes)} names)")
    if templates is None:
        templates_file = root / TEMPLATES_FILE
        if not templates_file.is_file():
            raise DatasetError(f"{root}: {TEMPLATES_FILE} is missing (pass --templates to choose prompts)")
        templates = [from_clip_benchmark(t) for t in _read_lines(templates_file)]
    dataset = WdsImageDataset(shards, samples, labels, None, name=name or f"wds:{root.name}", split=split,
                              classes=classes, templates=list(templates), root=root)
    dataset.image_size = image_size if image_size is not None else (
        None if native_size(dataset) is not None else DEFAULT_IMAGE_SIZE)
    return dataset


def is_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec))


def hub_download_hint(repo_id: str, data_root: str | Path | None = None) -> str:
    target = Path(data_root or "DATA_ROOT") / repo_id.rpartition("/")[2]
    return (f"fetch it once online: huggingface-cli download --repo-type dataset {repo_id} --local-dir {target} "
            f"(or run the same command online: mmrobust caches it)")


def fetch_from_hub(repo_id: str, split: str, data_root: str | Path | None = None) -> Path:
    """The local snapshot of a CLIP_benchmark hub dataset: the cache first, then the network."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise DatasetError(f"wds:{repo_id} is not a local folder and huggingface_hub is not installed "
                           f"(`pip install huggingface_hub`); or {hub_download_hint(repo_id, data_root)}") from None
    patterns = [f"{split}/*", CLASSNAMES_FILE, TEMPLATES_FILE, TYPE_FILE]
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns, local_files_only=True))
    except Exception:  # not cached: try the network below
        pass
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns))
    except Exception as exc:  # offline: ConnectError/LocalEntryNotFoundError; unknown repo: RepositoryNotFound
        cause = "no network" if "connect" in str(exc).lower() or "offline" in str(exc).lower() else type(exc).__name__
        raise DatasetError(f"wds:{repo_id} is neither a local folder nor cached, and the Hugging Face hub cannot "
                           f"provide it ({cause}); {hub_download_hint(repo_id, data_root)}") from None


def locate(spec: str, data_root: str | Path | None) -> Path | None:
    """A local folder for ``spec``: as given, under the data root, or under it by the hub name's last part."""
    candidates = [Path(spec).expanduser()]
    if data_root is not None:
        root = Path(data_root).expanduser()
        candidates += [root / spec, root / spec.rpartition("/")[2]]
    return next((c for c in candidates if c.is_dir()), None)


def resolve_wds(spec: str, data_root: str | Path | None, split: str, allow_network: bool = True) -> Path:
    """Local folder for ``wds:SPEC`` (a path, or a hub id found locally, cached or downloaded)."""
    folder = locate(spec, data_root)
    if folder is not None:
        return folder
    if not is_hub_id(spec):
        where = f" (nor under --data-root {data_root})" if data_root else ""
        raise DatasetError(f"wds folder {spec} does not exist{where}")
    if not allow_network:
        raise DatasetError(f"wds:{spec} is not on this machine; {hub_download_hint(spec, data_root)}")
    return fetch_from_hub(spec, split, data_root)


def load_wds(root: str | Path | None = None, split: str = "test", path: str = "", image_size: int | None = None,
             allow_network: bool = True) -> WdsImageDataset:
    """The dataset spec ``wds:PATH``: a local folder (as given or under ``root``) or a hub id; an empty
    ``PATH`` means ``root`` itself is the folder.

    A folder or hub id the catalog knows (``clip-benchmark/wds_vtab-cifar10``) gets the study's template
    where the study has one; otherwise the folder's own templates are used.
    """
    from .catalog import Catalog

    spec = path or (str(root) if root is not None else "")
    if not spec:
        raise DatasetError("empty wds spec: use wds:FOLDER or wds:OWNER/NAME (a Hugging Face dataset id)")
    folder = resolve_wds(spec, root if path else None, split, allow_network)
    entry = Catalog().for_wds(spec)
    name = f"wds:{spec}" if is_hub_id(spec) and not Path(spec).expanduser().is_dir() else f"wds:{folder.name}"
    templates = list(entry.templates) if entry and entry.templates else None
    return load_wds_folder(folder, split, name=name, templates=templates, image_size=image_size)
