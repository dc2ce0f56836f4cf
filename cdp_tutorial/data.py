"""Datasets and input pipelines: CIFAR-10/100, Fashion-MNIST and the committed offline fixture.

Every dataset comes back as one :class:`Dataset`: uint8 NHWC images of 32x32x3, int64 labels, class
names, the per-channel mean and std that normalise it, and an honest one-line ``description`` that
notebooks print beside every result.

=================  ====================================================  ===========================
name               where it comes from                                   network
=================  ====================================================  ===========================
``cifar10``        the official python archive, SHA-256 verified          downloaded once, if missing
``cifar100``       the official python archive, fine labels (100)         downloaded once, if missing
``fashion_mnist``  idx files: data dir, Keras cache or Debian package     never
``fixture``        ``data/fixture/`` in this repository (2,000/500        never
                   Fashion-MNIST images)
=================  ====================================================  ===========================

Fashion-MNIST images are padded from 28x28 to 32x32 and replicated to three channels, so the CIFAR
networks -- and their complexity counts -- apply unchanged. They are still *not* CIFAR, and every
description says so.

Security: CIFAR archives are Python pickles, and unpickling runs code. An archive is therefore
checked against its published SHA-256 *before* anything in it is unpickled, and a file that does
not match is refused.

Nothing is downloaded or read at import time; :func:`load_dataset` does the work when called.
"""

from __future__ import annotations

import gzip
import hashlib
import numbers
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from cdp_tutorial.files import write_atomically

__all__ = [
    "ARCHIVES",
    "ArchiveSpec",
    "ChecksumError",
    "DATASET_NAMES",
    "Dataset",
    "DatasetNotFoundError",
    "FIXTURE_SHA256",
    "channel_mean_std",
    "data_dir",
    "load_dataset",
    "make_epochs",
    "make_pipeline",
    "read_idx",
    "repository_file",
    "sha256_of",
    "stratified_indices",
]

DATASET_NAMES = ("cifar10", "cifar100", "fashion_mnist", "fixture")
_ALIASES = {
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "cifar-100": "cifar100",
    "cifar_100": "cifar100",
    "fashion-mnist": "fashion_mnist",
    "fashionmnist": "fashion_mnist",
}

IMAGE_SHAPE = (32, 32, 3)


@dataclass(frozen=True)
class ArchiveSpec:
    """Where an official archive comes from and what its bytes must hash to.

    Attributes
    ----------
    url : str
        Download address.
    filename : str
        Name of the archive in the data directory.
    sha256 : str
        Expected SHA-256 of the whole archive (hex).
    size : int
        Expected size in bytes; a smaller file is reported as truncated.
    """

    url: str
    filename: str
    sha256: str
    size: int


# SHA-256 and sizes of the official archives. Source: keras/src/datasets/cifar10.py and cifar100.py
# (``file_hash`` of ``get_file``), cross-checked against published provenance records that also list
# the sizes and the MD5s torchvision uses (c58f30108f718f92721af3b95e74349a and
# eb9058c3a382ffc7106e4002c42a8d85). Tests replace entries with archives they build themselves.
ARCHIVES: dict[str, ArchiveSpec] = {
    "cifar10": ArchiveSpec(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        filename="cifar-10-python.tar.gz",
        sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        size=170_498_071,
    ),
    "cifar100": ArchiveSpec(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        filename="cifar-100-python.tar.gz",
        sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        size=169_001_437,
    ),
}

# Members read from each archive: (train pickles, test pickle, meta pickle, label key, names key).
_CIFAR_LAYOUT = {
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
_REPO_ROOT = Path(__file__).resolve().parents[1]
_REPO_FIXTURE_DIR = _REPO_ROOT / "data" / "fixture"


class ChecksumError(RuntimeError):
    """A file's SHA-256 is not the one recorded for it (corrupted, truncated or modified)."""


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not on this machine and could not be fetched."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field by field has no single truth value
class Dataset:
    """One image-classification dataset, in memory, in the layout every CIFAR network expects.

    Attributes
    ----------
    name : str
        ``"cifar10"``, ``"cifar100"``, ``"fashion_mnist"`` or ``"fixture"``.
    x_train, x_test : numpy.ndarray
        uint8 images, shape ``(N, 32, 32, 3)`` (NHWC).
    y_train, y_test : numpy.ndarray
        int64 labels, shape ``(N,)``.
    num_classes : int
        Number of classes.
    class_names : tuple of str
        Class names, indexed by label.
    description : str
        Honest one-line label of what this data is, shown beside every result.
    mean, std : tuple of float
        Per-channel mean and standard deviation of ``x_train / 255``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    description: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"num_classes={self.num_classes}, description={self.description!r})")


# --------------------------------------------------------------------------- public API


def data_dir() -> Path:
    """Return the folder datasets are downloaded to and cached in.

    ``$CDP_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/cdp_tutorial``, else ``~/.cache/cdp_tutorial``.
    The folder is not created here; it is created when something is first written to it.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import os
    >>> os.environ["CDP_DATA_DIR"] = "/tmp/cdp-data"
    >>> str(data_dir())
    '/tmp/cdp-data'
    >>> del os.environ["CDP_DATA_DIR"]
    """
    return _default_data_dir()


def load_dataset(name, *, data_dir=None, train_size=None, test_size=None, seed=0) -> Dataset:
    """Load a dataset by name, optionally as a class-balanced subset.

    Parameters
    ----------
    name : str
        One of ``"cifar10"``, ``"cifar100"``, ``"fashion_mnist"``, ``"fixture"`` (case-insensitive;
        ``"cifar-10"``, ``"cifar-100"`` and ``"fashion-mnist"`` are accepted too).
    data_dir : str or pathlib.Path, optional
        Folder for downloads and caches; default :func:`data_dir`.
    train_size, test_size : int, optional
        Take a class-balanced (stratified) random subset of this many images; default: all.
    seed : int, default 0
        Seed of the subset; the same seed gives the same images.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown ``name``, or a size that is not a positive int or exceeds the split.
    ChecksumError
        A CIFAR archive or the fixture does not have its recorded SHA-256.
    DatasetNotFoundError
        The files are missing and cannot be downloaded (offline); the message says what to put where.

    Examples
    --------
    >>> ds = load_dataset("fixture")
    >>> ds.x_train.shape, ds.y_train.dtype, ds.num_classes
    ((2000, 32, 32, 3), dtype('int64'), 10)
    >>> small = load_dataset("fixture", train_size=500, test_size=100, seed=1)
    >>> np.bincount(small.y_train).tolist()
    [50, 50, 50, 50, 50, 50, 50, 50, 50, 50]
    """
    key = _canonical_name(name)
    train_size = _check_size(train_size, "train_size")
    test_size = _check_size(test_size, "test_size")
    root = Path(data_dir).expanduser() if data_dir is not None else _default_data_dir()

    if key in _CIFAR_LAYOUT:
        raw = _load_cifar(key, root)
    elif key == "fashion_mnist":
        raw = _load_fashion_mnist(root)
    else:
        raw = _load_fixture(root, explicit_dir=data_dir is not None)

    x_train, y_train = _take_subset(raw["x_train"], raw["y_train"], train_size, seed, "train_size")
    x_test, y_test = _take_subset(raw["x_test"], raw["y_test"], test_size, seed, "test_size")
    if key in ("fashion_mnist", "fixture"):  # 28x28 grey: subset first, then pad (less memory)
        x_train, x_test = _to_cifar_shape(x_train), _to_cifar_shape(x_test)
    mean, std = channel_mean_std(x_train)
    return Dataset(
        name=key,
        x_train=x_train,
        y_train=y_train.astype(np.int64),
        x_test=x_test,
        y_test=y_test.astype(np.int64),
        num_classes=len(raw["class_names"]),
        class_names=tuple(str(n) for n in raw["class_names"]),
        description=_describe(key, len(x_train), len(x_test),
                              subset=train_size is not None or test_size is not None, seed=seed),
        mean=mean,
        std=std,
    )


def make_pipeline(dataset: Dataset, split: str, *, batch_size: int, augment: bool = False,
                  shuffle: bool | None = None, seed: int = 0, cache: bool = True) -> tf.data.Dataset:
    """Build the ``tf.data`` input pipeline that feeds one split of ``dataset`` to ``model.fit``.

    uint8 slices -> cast and normalise with ``dataset.mean``/``dataset.std`` -> cache -> shuffle
    (seeded, a new order every epoch) -> augment -> batch -> prefetch.

    Parameters
    ----------
    dataset : Dataset
        From :func:`load_dataset`.
    split : {"train", "test"}
        Which split to feed.
    batch_size : int
        Images per batch; the last batch may be smaller.
    augment : bool, default False
        Random crop (pad 4 black pixels, crop 32) and random horizontal flip, the usual CIFAR
        recipe. Training split only. Seeded: the same seed gives the same images, epoch by epoch.
    shuffle : bool, optional
        Default: ``split == "train"``.
    seed : int, default 0
        Seed of the shuffle and the augmentation.
    cache : bool, default True
        Keep the normalised float32 images in memory after the first epoch (4 bytes a value:
        about 600 MB for CIFAR's training split; turn off on small machines).

    Returns
    -------
    tf.data.Dataset
        Yields ``(images, labels)``: float32 ``(B, 32, 32, 3)`` and int64 ``(B,)``. Pass it to
        ``model.fit(pipeline, shuffle=False, ...)``: it shuffles itself, and Keras 3 warns about its
        own default ``shuffle=True`` on a ``tf.data`` input.

    Raises
    ------
    ValueError
        Unknown ``split``, a ``batch_size`` that is not a positive int, or ``augment`` on ``"test"``.

    Examples
    --------
    >>> ds = load_dataset("fixture")
    >>> train = make_pipeline(ds, "train", batch_size=64, augment=True)
    >>> images, labels = next(iter(train))
    >>> images.shape, images.dtype, labels.dtype
    (TensorShape([64, 32, 32, 3]), tf.float32, tf.int64)
    """
    images, labels = _split_arrays(dataset, split)
    batch_size = _check_positive_int(batch_size, "batch_size")
    if augment and split != "train":
        raise ValueError(f"augment=True is for the 'train' split only, got split={split!r}")
    shuffle = split == "train" if shuffle is None else bool(shuffle)

    scale, offset = _normalisation(dataset)
    pipeline = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
    pipeline = pipeline.map(lambda x, y: (tf.cast(x, tf.float32) * scale + offset, y),
                            num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        pipeline = pipeline.cache()
    if shuffle:
        # A full-size buffer is a true permutation; reshuffling gives a new order every epoch.
        pipeline = pipeline.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if augment:
        pipeline = _augment(pipeline, black=offset, seed=seed)
    return pipeline.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_epochs(dataset: Dataset, *, batch_size: int, seeds, augment: bool = False) -> tf.data.Dataset:
    """Training batches of several epochs in a row; epoch ``i`` is shuffled (and augmented) by ``seeds[i]``.

    What training uses, so that a resumed run can start at any epoch: epoch ``i``'s order and
    augmentation depend only on ``seeds[i]`` (stateless random ops: not on TensorFlow's global seed,
    not on the epochs before it). All epochs share one copy of the images and are chained inside
    tf.data, so no Python runs per batch.

    Parameters
    ----------
    dataset : Dataset
    batch_size : int
    seeds : sequence of int
        One seed per epoch.
    augment : bool, default False
        Random crop + flip, as in :func:`make_pipeline`.

    Returns
    -------
    tf.data.Dataset
        ``len(seeds)`` epochs of normalised ``(images, labels)`` batches.

    Examples
    --------
    >>> ds = load_dataset("fixture", train_size=100, test_size=50)
    >>> sum(int(y.shape[0]) for _, y in make_epochs(ds, batch_size=64, seeds=[1, 2]))
    200
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold one seed per epoch (at least one)")
    scale, offset = _normalisation(dataset)
    images = tf.constant(dataset.x_train)  # uint8: one copy, shared by every epoch
    labels = tf.constant(dataset.y_train.astype(np.int64))
    count = len(dataset.y_train)

    def one_epoch(seed):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([seed, tf.constant(0, tf.int64)]))
        epoch = tf.data.Dataset.from_tensor_slices(order)

        def load(index):
            image = tf.cast(tf.gather(images, index), tf.float32) * scale + offset
            if augment:  # per-image seed (epoch seed, position): repeatable, new every epoch
                image = _crop_and_flip(image, tf.stack([seed, index + 1]), black=offset)
            return image, tf.gather(labels, index)

        return epoch.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)

    epochs = tf.data.Dataset.from_tensor_slices(tf.constant(seeds, tf.int64))
    return epochs.flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)


def stratified_indices(labels, size: int, seed: int = 0) -> np.ndarray:
    """Pick ``size`` indices with (as nearly as possible) the same number from every class.

    Parameters
    ----------
    labels : array-like of int
        Class label of every sample.
    size : int
        How many indices to pick, ``1 <= size <= len(labels)``.
    seed : int, default 0
        Seed of the random choice.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices into ``labels``.

    Raises
    ------
    ValueError
        ``size`` is not a positive int or exceeds ``len(labels)``.

    Examples
    --------
    >>> labels = np.repeat(np.arange(3), 10)
    >>> np.bincount(labels[stratified_indices(labels, 6, seed=0)]).tolist()
    [2, 2, 2]
    """
    labels = np.asarray(labels)
    size = _check_positive_int(size, "size")
    if size > len(labels):
        raise ValueError(f"size={size} exceeds the {len(labels)} samples available")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = _balanced_quotas(counts, size, rng)
    picked = [rng.choice(np.flatnonzero(labels == c), q, replace=False)
              for c, q in zip(classes, quotas) if q]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def channel_mean_std(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``images / 255``.

    Computed exactly from a 256-bin histogram per channel, so no float copy of the images is made
    (that copy would be 1.2 GB for CIFAR's training split).

    Parameters
    ----------
    images : numpy.ndarray
        uint8, shape ``(N, H, W, C)``.

    Returns
    -------
    mean, std : tuple of float
        One value per channel.

    Examples
    --------
    >>> images = np.zeros((2, 1, 1, 3), np.uint8); images[1] = 255
    >>> channel_mean_std(images)
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[-1]):
        hist = np.bincount(images[..., channel].ravel(), minlength=256).astype(np.float64)
        hist /= hist.sum()
        mean = float(hist @ values)
        var = max(float(hist @ values**2) - mean**2, 0.0)
        means.append(mean)
        stds.append(var**0.5)
    return tuple(means), tuple(stds)


# --------------------------------------------------------------------------- names and checks


def _default_data_dir() -> Path:
    if os.environ.get("CDP_DATA_DIR"):
        return Path(os.environ["CDP_DATA_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative paths in XDG_CACHE_HOME are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "cdp_tutorial"


def _canonical_name(name) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return key


def _check_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _check_size(value, what: str) -> int | None:
    return None if value is None else _check_positive_int(value, what)


def _describe(key: str, n_train: int, n_test: int, *, subset: bool, seed: int) -> str:
    sizes = f"{n_train:,}/{n_test:,}"
    text = {
        "cifar10": f"CIFAR-10: {sizes} train/test images, 32x32x3, 10 classes",
        "cifar100": f"CIFAR-100: {sizes} train/test images, 32x32x3, 100 fine classes",
        "fashion_mnist": f"Fashion-MNIST: {sizes} images padded from 28x28 to 32x32x3 (not CIFAR)",
        "fixture": f"fixture: {sizes} Fashion-MNIST images padded to 32x32x3 (not CIFAR)",
    }[key]
    return f"{text}; class-balanced subset, seed {seed}" if subset else text


# --------------------------------------------------------------------------- subsets and shapes


def _balanced_quotas(counts: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``size`` over classes as evenly as their counts allow; the remainder goes to random classes."""
    quotas = np.zeros(len(counts), dtype=np.int64)
    remaining = size
    while remaining:
        open_classes = np.flatnonzero(quotas < counts)
        share, extra = divmod(remaining, len(open_classes))
        add = np.full(len(open_classes), share, dtype=np.int64)
        add[rng.permutation(len(open_classes))[:extra]] += 1
        add = np.minimum(add, counts[open_classes] - quotas[open_classes])  # small classes give all they have
        quotas[open_classes] += add
        remaining -= int(add.sum())
    return quotas


def _take_subset(images, labels, size, seed, what):
    if size is None:
        return images, labels
    if size > len(labels):
        raise ValueError(f"{what}={size} exceeds the {len(labels):,} images available")
    index = stratified_indices(labels, size, seed)
    return images[index], labels[index]


def _to_cifar_shape(images: np.ndarray) -> np.ndarray:
    """Pad (N, 28, 28) grey images with zeros to 32x32 and replicate them to three channels."""
    pad_h = (IMAGE_SHAPE[0] - images.shape[1]) // 2
    pad_w = (IMAGE_SHAPE[1] - images.shape[2]) // 2
    padded = np.pad(images, ((0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    return np.repeat(padded[..., None], IMAGE_SHAPE[2], axis=-1)


# --------------------------------------------------------------------------- checksums and files


def sha256_of(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_archive(path: Path, spec: ArchiveSpec, what: str | None = None) -> None:
    """Raise ChecksumError unless ``path`` is exactly the archive ``spec`` describes.

    ``what`` names the file in the message (default: its path).
    """
    actual = sha256_of(path)
    if actual == spec.sha256:
        return
    size = path.stat().st_size
    if _gzip_ends_early(path):
        problem = f"is truncated ({size:,} of {spec.size:,} bytes; an interrupted download?)"
    else:
        problem = f"is corrupted or not the official file ({size:,} bytes, expected {spec.size:,})"
    advice = "" if what else f" Delete it and run again to download it from {spec.url}."
    raise ChecksumError(
        f"{what or path} {problem}: expected SHA-256 {spec.sha256}, got {actual}. It was not used.{advice}"
    )


def _gzip_ends_early(path: Path) -> bool:
    """True if ``path`` is a gzip stream cut short: the mark of an interrupted download.

    Decompressing is safe on untrusted bytes (unpickling is not), so this may run before verification.
    """
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except EOFError:
        return True
    except (OSError, zlib.error):  # not gzip at all, or damaged inside: corrupted, not truncated
        return False
    return False


# --------------------------------------------------------------------------- CIFAR


def _load_cifar(key: str, root: Path) -> dict:
    """Arrays of a CIFAR dataset: from the converted cache, else from the verified archive."""
    spec = ARCHIVES[key]
    cache = root / f"{key}.npz"
    cached = _read_cifar_cache(cache, spec.sha256)
    if cached is not None:
        return cached
    archive = root / spec.filename
    if not archive.exists():
        _download(spec, archive)
    _verify_archive(archive, spec)  # before anything is unpickled
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
    train_members, test_member, meta_member, label_key, names_key = _CIFAR_LAYOUT[key]
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
    """Read the named regular files of a tar.gz into memory, in one sequential pass.

    Nothing is written to disk, so member paths (``../``, absolute, links) can never escape.
    """
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


def _download(spec: ArchiveSpec, target: Path) -> None:
    """Download ``spec.url`` to ``target`` with a progress bar, verified before it lands there."""
    from tqdm.auto import tqdm  # imported here: only a download needs it

    def fetch(tmp):
        with urllib.request.urlopen(spec.url, timeout=60) as response, open(tmp, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=spec.filename) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    handle.write(chunk)
                    bar.update(len(chunk))
        # A bad download never reaches ``target``.
        _verify_archive(tmp, spec, what=f"The download from {spec.url}")

    try:
        write_atomically(target, fetch)
    except OSError as err:  # URLError, refused connection, timeout, DNS failure ...
        if isinstance(err, urllib.error.HTTPError):
            reason = f"the server answered HTTP {err.code} {err.reason}"
        else:
            reason = f"the network is unreachable ({err})"
        raise DatasetNotFoundError(
            f"Could not download {spec.filename} from {spec.url}: {reason}.\n"
            f"Download it on a machine with internet access from\n    {spec.url}\n"
            f"check that its SHA-256 is\n    {spec.sha256}\nand put it at\n    {target}\n"
            "then run again (or set CDP_DATA_DIR to the folder that holds it)."
        ) from err


# --------------------------------------------------------------------------- Fashion-MNIST


def _fashion_mnist_dirs(root: Path) -> list[Path]:
    """Where Fashion-MNIST idx files are looked for, in order."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()
    return [root / "fashion-mnist", keras_home / "datasets" / "fashion-mnist", DEBIAN_FASHION_MNIST_DIR]


def _load_fashion_mnist(root: Path) -> dict:
    """The 28x28 Fashion-MNIST arrays from the first folder that holds all four idx files."""
    places = _fashion_mnist_dirs(root)
    for folder in places:
        if all((folder / f).is_file() for f in FASHION_MNIST_FILES.values()):
            arrays = {k: read_idx(folder / f) for k, f in FASHION_MNIST_FILES.items()}
            return {**arrays, "class_names": np.array(FASHION_MNIST_CLASSES)}
    looked = "\n".join(f"    {p}" for p in places)
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found. Looked for {', '.join(FASHION_MNIST_FILES.values())} in\n{looked}\n"
        "Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download "
        "it once with `keras.datasets.fashion_mnist.load_data()`, or copy the four files into "
        f"{places[0]}."
    )


def read_idx(path) -> np.ndarray:
    """Read a gzipped idx file (the MNIST format) into a uint8 array.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``*-ubyte.gz`` file.

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(N,)`` for labels or ``(N, rows, cols)`` for images.

    Raises
    ------
    ValueError
        The header is not that of a uint8 idx file or the data is short.
    """
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    zeros, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zeros != 0 or dtype_code != 0x08 or not 1 <= ndim <= 3:
        raise ValueError(f"{path} is not a uint8 idx file")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {data.size} values")
    return data.reshape(shape)


# --------------------------------------------------------------------------- fixture


def _fixture_candidates(root: Path, explicit_dir: bool) -> list[Path]:
    """Where the fixture is looked for: an explicit data dir first, then the repository, then the cache."""
    in_root = root / "fixture" / FIXTURE_FILENAME
    in_repo = _REPO_FIXTURE_DIR / FIXTURE_FILENAME
    return [in_root, in_repo] if explicit_dir else [in_repo, in_root]


def _load_fixture(root: Path, explicit_dir: bool) -> dict:
    """The 28x28 fixture arrays, after checking the file's SHA-256."""
    candidates = _fixture_candidates(root, explicit_dir)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None and not explicit_dir:  # an installed package without the repository (Colab)
        try:
            path = repository_file(f"data/fixture/{FIXTURE_FILENAME}")
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


# --------------------------------------------------------------------------- repository files


def repository_file(relative: str) -> Path:
    """A file of this repository (``data/...``): from the checkout, or downloaded once into the data dir.

    A clone or an editable install has the file next to the package. ``pip install`` from git (as on
    Colab) installs only the package, so the file is fetched from the repository's raw address into
    ``data_dir() / "repository"`` the first time it is needed. Callers that need integrity check the
    file's SHA-256 themselves (the fixture does).

    Raises
    ------
    DatasetNotFoundError
        If the file is neither here nor downloadable (offline), naming the address to fetch it from.
    """
    local = _REPO_ROOT / relative
    if local.exists():
        return local
    cached = _default_data_dir() / "repository" / relative
    if cached.exists():
        return cached
    from cdp_tutorial.notebook import BRANCH, REPOSITORY

    url = f"https://raw.githubusercontent.com/{REPOSITORY}/{BRANCH}/{relative}"

    def fetch(tmp):
        with urllib.request.urlopen(url, timeout=60) as response:
            tmp.write_bytes(response.read())

    try:
        write_atomically(cached, fetch)
    except OSError as err:
        raise DatasetNotFoundError(
            f"{relative} is not in this installation and could not be downloaded from {url} ({err}). "
            f"Clone the repository, or put the file at {cached}."
        ) from err
    return cached


# --------------------------------------------------------------------------- tf.data


def _split_arrays(dataset: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split == "train":
        return dataset.x_train, dataset.y_train
    if split == "test":
        return dataset.x_test, dataset.y_test
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _normalisation(dataset: Dataset) -> tuple[tf.Tensor, tf.Tensor]:
    """(scale, offset) with ``x * scale + offset == (x / 255 - mean) / std`` for uint8 ``x``."""
    mean = np.asarray(dataset.mean, dtype=np.float64)
    std = np.asarray(dataset.std, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)  # a constant channel would divide by zero
    scale = tf.constant(1.0 / (255.0 * std), tf.float32)
    offset = tf.constant(-mean / std, tf.float32)
    return scale, offset


def _augment(pipeline: tf.data.Dataset, *, black: tf.Tensor, seed: int) -> tf.data.Dataset:
    """Random crop (pad 4, crop back) and horizontal flip, with stateless ops and per-image seeds.

    The seeds come from ``Dataset.random(rerandomize_each_iteration=True)``: a deterministic
    sequence for a given ``seed``, yet a different one every epoch.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def crop_and_flip(element, image_seed):
        image, label = element
        return _crop_and_flip(image, image_seed, black=black), label

    return tf.data.Dataset.zip((pipeline, seeds)).map(crop_and_flip, num_parallel_calls=tf.data.AUTOTUNE)


def _crop_and_flip(image: tf.Tensor, image_seed: tf.Tensor, *, black: tf.Tensor) -> tf.Tensor:
    """Pad 4 pixels with black, crop back to size at a random place, maybe flip: all seeded by ``image_seed``."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(image_seed, num=2))
    # Pad with black (0 before normalisation is ``black`` after it), as torchvision's RandomCrop does.
    padded = tf.pad(image - black, [[4, 4], [4, 4], [0, 0]]) + black
    image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
