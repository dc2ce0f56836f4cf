"""File formats: CIFAR python archives, Fashion-MNIST idx files and the committed fixture.

Each ``load_*_arrays`` function finds its files (:mod:`cdp_tutorial.data.sources` verifies and, for
CIFAR, downloads them), decodes them and returns the raw arrays as a dict with ``x_train``,
``y_train``, ``x_test``, ``y_test`` and ``class_names``. CIFAR images come back as 32x32x3 uint8 NHWC;
Fashion-MNIST and the fixture as 28x28 grey, which :func:`cdp_tutorial.data.load_dataset` pads.

Nothing in an archive is unpickled before its SHA-256 matched, and nothing is extracted to disk:
tar members are read into memory, so their paths (``../``, links) can never escape.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

from cdp_tutorial.data import sources
from cdp_tutorial.data.sources import ARCHIVES, ChecksumError, DatasetNotFoundError, sha256_of
from cdp_tutorial.files import write_atomically

__all__ = ["DEBIAN_FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "FASHION_MNIST_FILES", "FIXTURE_FILENAME",
           "FIXTURE_SHA256", "check_fashion_mnist", "load_cifar_arrays", "load_fashion_mnist_arrays",
           "load_fixture_arrays", "read_idx"]

# Members read from each archive: (train pickles, test pickle, meta pickle, label key, names key).
CIFAR_LAYOUT = {
    "cifar10": (
        tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
        "cifar-10-batches-py/test_batch",
        "cifar-10-batches-py/batches.meta",
        b"labels",
        b"label_names",
    ),
    "cifar100": (
        ("cifar-100-python/train",),
        "cifar-100-python/test",
        "cifar-100-python/meta",
        b"fine_labels",
        b"fine_label_names",
    ),
}

FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

FIXTURE_FILENAME = "fashion_mnist_fixture.npz"
# SHA-256 of data/fixture/fashion_mnist_fixture.npz as scripts/make_fixture.py writes it.
FIXTURE_SHA256 = "a7ae5bac932aa0f25fb136151462a8112ba1e1f662aea341106d77b6b8428ab3"


# --------------------------------------------------------------------------- CIFAR


def load_cifar_arrays(key: str, root: Path) -> dict:
    """Arrays of ``"cifar10"`` or ``"cifar100"``: from the converted cache, else from the verified archive.

    The archive is downloaded into ``root`` if missing and verified before it is unpickled; its
    decoded arrays are cached as ``root / f"{key}.npz"``, tagged with the archive's SHA-256.
    """
    spec = ARCHIVES[key]
    cache = root / f"{key}.npz"
    cached = _read_cifar_cache(cache, spec.sha256)
    if cached is not None:
        return cached
    archive = root / spec.filename
    if not archive.exists():
        sources.download(spec, archive)
    sources.verify_archive(archive, spec)  # before anything is unpickled
    arrays = _read_cifar_archive(archive, key)
    write_atomically(cache, lambda tmp: np.savez(tmp, source_sha256=np.array(spec.sha256), **arrays))
    return arrays


def _read_cifar_cache(path: Path, source_sha256: str) -> dict | None:
    """The cached arrays, or None if there is no cache or it was made from another archive."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as cache:
            if str(cache["source_sha256"]) != source_sha256:
                return None
            return {k: cache[k] for k in ("x_train", "y_train", "x_test", "y_test", "class_names")}
    except (OSError, KeyError, ValueError):  # an unreadable cache is rebuilt from the archive
        return None


def _read_cifar_archive(archive: Path, key: str) -> dict:
    """Decode a verified CIFAR python archive into NHWC uint8 images, int64 labels and class names."""
    train_members, test_member, meta_member, label_key, names_key = CIFAR_LAYOUT[key]
    raw = _read_tar_members(archive, (*train_members, test_member, meta_member))
    # pop: each pickle's bytes are freed once decoded, which keeps the peak memory lower.
    batches = [_decode_batch(raw.pop(m), label_key, m) for m in train_members]
    x_test, y_test = _decode_batch(raw.pop(test_member), label_key, test_member)
    meta = pickle.loads(raw[meta_member], encoding="bytes")
    return {
        "x_train": np.concatenate([x for x, _ in batches]),
        "y_train": np.concatenate([y for _, y in batches]),
        "x_test": x_test,
        "y_test": y_test,
        "class_names": np.array([n.decode("utf-8") for n in meta[names_key]]),
    }


def _read_tar_members(archive: Path, names) -> dict[str, bytes]:
    """Read the named regular files of a tar.gz into memory, in one sequential pass."""
    wanted, found = set(names), {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                found[member.name] = tar.extractfile(member).read()
    missing = wanted - found.keys()
    if missing:
        raise ValueError(f"{archive} lacks the regular files {', '.join(sorted(missing))}; "
                         "it is not in the official layout")
    return found


def _decode_batch(raw: bytes, label_key: bytes, member: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle -> (N, 32, 32, 3) uint8 images and (N,) int64 labels."""
    batch = pickle.loads(raw, encoding="bytes")  # only ever called on a verified archive
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{member}: unexpected CIFAR layout, data {data.shape}, {len(labels)} labels")
    # Rows are channel-major (1024 red, 1024 green, 1024 blue values, each row by row).
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


# --------------------------------------------------------------------------- Fashion-MNIST


def _fashion_mnist_dirs(root: Path) -> list[Path]:
    """Where Fashion-MNIST idx files are looked for, in order."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()
    return [root / "fashion-mnist", keras_home / "datasets" / "fashion-mnist", DEBIAN_FASHION_MNIST_DIR]


def load_fashion_mnist_arrays(root: Path) -> dict:
    """The 28x28 Fashion-MNIST arrays from the first folder that holds all four idx files.

    Looked for in ``root / "fashion-mnist"``, Keras' download cache, then the Debian package's folder.
    The files are checked as they are read (:func:`check_fashion_mnist`): each is a gzipped uint8 idx
    file of the right rank, images are 28x28, every images file has as many images as its labels
    file has labels, and every label is a class index 0-9. The first file that breaks a rule is named.

    Raises
    ------
    DatasetNotFoundError
        None of them has the files; the message names every place looked and how to install them.
    ValueError
        A file is damaged or is not what its name says; the message names the file.
    """
    places = _fashion_mnist_dirs(root)
    for folder in places:
        if all((folder / f).is_file() for f in FASHION_MNIST_FILES.values()):
            paths = {k: folder / f for k, f in FASHION_MNIST_FILES.items()}
            arrays = {k: read_idx(path, ndim=1 if k.startswith("y") else 3) for k, path in paths.items()}
            check_fashion_mnist(arrays, paths)
            return {**arrays, "class_names": np.array(FASHION_MNIST_CLASSES)}
    looked = "\n".join(f"    {p}" for p in places)
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found. Looked for {', '.join(FASHION_MNIST_FILES.values())} in\n{looked}\n"
        "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download "
        "it once with `keras.datasets.fashion_mnist.load_data()`, or copy the four files into "
        f"{places[0]}."
    )


def check_fashion_mnist(arrays: dict, paths: dict) -> None:
    """Raise ``ValueError`` naming the file unless the four decoded idx arrays form Fashion-MNIST.

    Parameters
    ----------
    arrays : dict
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` as :func:`read_idx` returns them.
    paths : dict
        The file each array was read from, by the same keys (named in the messages).

    Raises
    ------
    ValueError
        Images that are not 28x28, an empty file, image and label counts that differ, or a label
        outside ``0..9``.
    """
    n_classes = len(FASHION_MNIST_CLASSES)
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        x_path, y_path = paths[f"x_{split}"], paths[f"y_{split}"]
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{x_path} holds {images.shape[1]}x{images.shape[2]} images; Fashion-MNIST "
                             "images are 28x28 (is this file from another dataset?)")
        if len(images) == 0:
            raise ValueError(f"{x_path} holds no images; it needs at least one")
        if len(images) != len(labels):
            raise ValueError(f"{x_path} holds {len(images):,} images but {y_path} holds {len(labels):,} "
                             "labels; every image needs exactly one label (are the files from different "
                             "releases, or one cut short?)")
        bad = np.flatnonzero(labels >= n_classes)
        if bad.size:
            more = f" (and {bad.size - 1:,} more)" if bad.size > 1 else ""
            raise ValueError(f"{y_path}: label {int(labels[bad[0]])} at index {int(bad[0])}{more} is not a "
                             f"class; Fashion-MNIST labels are 0 to {n_classes - 1}")


def read_idx(path, ndim: int | None = None) -> np.ndarray:
    """Read a gzipped idx file (the MNIST format) into a uint8 array.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``*-ubyte.gz`` file.
    ndim : int, optional
        The rank the file must have: 1 for labels, 3 for images.

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(N,)`` for labels or ``(N, rows, cols)`` for images.

    Raises
    ------
    FileNotFoundError
        There is no such file.
    ValueError
        The file is not gzip, its gzip stream is cut short or fails its CRC, it is empty, its
        header is not that of a uint8 idx file, its rank is not ``ndim`` or its data is shorter or
        longer than the header says. Every message names the file.

    Examples
    --------
    >>> import tempfile, gzip, struct
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "labels-idx1-ubyte.gz"
    ...     with gzip.open(path, "wb") as f:
    ...         _ = f.write(struct.pack(">HBBI", 0, 8, 1, 3) + bytes([4, 0, 9]))
    ...     read_idx(path, ndim=1).tolist()
    [4, 0, 9]
    """
    path = Path(path)
    allowed = "a gzipped uint8 idx file (*-ubyte.gz, as published for (Fashion-)MNIST)"
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except EOFError:
        raise ValueError(f"{path} is truncated: its gzip stream ends early (an interrupted download "
                         "or copy?); replace it with a complete copy") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path} is damaged or not gzip ({error}); expected {allowed}") from None
    if len(raw) < 4:
        raise ValueError(f"{path} is empty ({len(raw)} bytes once decompressed); expected {allowed}")
    zeros, dtype_code, rank = struct.unpack(">HBB", raw[:4])
    if zeros != 0 or dtype_code != 0x08 or not 1 <= rank <= 3:
        raise ValueError(f"{path} is not a uint8 idx file (header {raw[:4].hex()}); expected {allowed}")
    if len(raw) < 4 + 4 * rank:
        raise ValueError(f"{path} is truncated inside its header; expected {allowed}")
    shape = struct.unpack(f">{rank}I", raw[4:4 + 4 * rank])
    if ndim is not None and rank != ndim:
        what = {1: "labels (rank 1)", 3: "images (rank 3)"}.get(ndim, f"rank {ndim}")
        found = {1: "labels", 3: "images"}.get(rank, f"a rank-{rank} array")
        raise ValueError(f"{path} holds {found} of shape {shape}, but {what} were expected here "
                         "(are the images and labels files swapped?)")
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {data.size:,} values instead of "
                         f"{int(np.prod(shape)):,} (a damaged or cut-short file)")
    return data.reshape(shape)


# --------------------------------------------------------------------------- fixture


def _fixture_candidates(root: Path, explicit_dir: bool) -> list[Path]:
    """Where the fixture is looked for: an explicit data dir first, then the repository, then the cache."""
    in_root = root / "fixture" / FIXTURE_FILENAME
    in_repo = sources.REPO_ROOT / "data" / "fixture" / FIXTURE_FILENAME
    return [in_root, in_repo] if explicit_dir else [in_repo, in_root]


def load_fixture_arrays(root: Path, explicit_dir: bool) -> dict:
    """The 28x28 fixture arrays, after checking the file's SHA-256.

    Parameters
    ----------
    root : pathlib.Path
        The data directory.
    explicit_dir : bool
        The caller named ``root`` itself: look there before the repository's copy.

    Raises
    ------
    ChecksumError
        The file is not the committed fixture (modified or corrupted).
    DatasetNotFoundError
        No copy was found (and none could be downloaded).
    """
    candidates = _fixture_candidates(root, explicit_dir)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None and not explicit_dir:  # an installed package without the repository (Colab)
        try:
            path = sources.repository_file(f"data/fixture/{FIXTURE_FILENAME}")
        except DatasetNotFoundError:
            path = None
    if path is None:
        looked = "\n".join(f"    {p}" for p in candidates)
        raise DatasetNotFoundError(
            f"The fixture {FIXTURE_FILENAME} was not found. Looked in\n{looked}\n"
            "Copy data/fixture/ from the cdp-tutorial repository to the first place, or remake it "
            "with `python scripts/make_fixture.py`."
        )
    actual = sha256_of(path)
    if actual != FIXTURE_SHA256:
        raise ChecksumError(
            f"{path} was modified or is corrupted: expected SHA-256 {FIXTURE_SHA256}, got {actual}. "
            "Restore it (`git checkout data/fixture`) or remake it with `python scripts/make_fixture.py`."
        )
    with np.load(path, allow_pickle=False) as fixture:
        arrays = {k: fixture[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    return {**arrays, "class_names": np.array(FASHION_MNIST_CLASSES)}
