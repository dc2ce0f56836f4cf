"""The :class:`Dataset` every notebook uses, :func:`load_dataset`, and class-balanced subsets.

Every dataset comes back in one layout: uint8 NHWC images of 32x32x3, int64 labels, class names,
the per-channel mean and std that normalise it, and an honest one-line ``description`` that
notebooks print beside every result. Fashion-MNIST images are padded from 28x28 to 32x32 and
replicated to three channels, so the CIFAR networks -- and their complexity counts -- apply
unchanged. They are still *not* CIFAR, and every description says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_int, check_seed
from cdp_tutorial.data.readers import load_cifar_arrays, load_fashion_mnist_arrays, load_fixture_arrays
from cdp_tutorial.data.sources import data_dir as default_data_dir

__all__ = ["DATASET_NAMES", "IMAGE_SHAPE", "Dataset", "channel_mean_std", "check_dataset_arrays",
           "load_dataset", "stratified_indices"]

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

    def __post_init__(self):
        check_dataset_arrays(self)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"num_classes={self.num_classes}, description={self.description!r})")


def load_dataset(name, *, data_dir=None, train_size=None, test_size=None, seed=0) -> Dataset:
    """Load a dataset by name, optionally as a class-balanced subset.

    =================  ====================================================  ===========================
    name               where it comes from                                   network
    =================  ====================================================  ===========================
    ``cifar10``        the official python archive, SHA-256 verified          downloaded once, if missing
    ``cifar100``       the official python archive, fine labels (100)         downloaded once, if missing
    ``fashion_mnist``  idx files: data dir, Keras cache or Debian package     never
    ``fixture``        ``data/fixture/`` in this repository (2,000/500        never
                       Fashion-MNIST images)
    =================  ====================================================  ===========================

    Parameters
    ----------
    name : str
        One of ``"cifar10"``, ``"cifar100"``, ``"fashion_mnist"``, ``"fixture"`` (case-insensitive;
        ``"cifar-10"``, ``"cifar-100"`` and ``"fashion-mnist"`` are accepted too).
    data_dir : str or pathlib.Path, optional
        Folder for downloads and caches; default :func:`cdp_tutorial.data.data_dir`.
    train_size, test_size : int, optional
        Take a class-balanced (stratified) random subset of this many images; default: all.
    seed : int, default 0
        Seed of the subset (numpy integers accepted); the same seed gives the same images.

    Returns
    -------
    Dataset

    Raises
    ------
    TypeError
        A size or the seed is not an integer.
    ValueError
        Unknown ``name``, a size below 1 or above the split's, or a negative seed.
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
    train_size = check_int(train_size, "train_size", minimum=1, allow_none=True)
    test_size = check_int(test_size, "test_size", minimum=1, allow_none=True)
    seed = check_seed(seed)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()

    if key in ("cifar10", "cifar100"):
        raw = load_cifar_arrays(key, root)
    elif key == "fashion_mnist":
        raw = load_fashion_mnist_arrays(root)
    else:
        raw = load_fixture_arrays(root, explicit_dir=data_dir is not None)

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


def check_dataset_arrays(data) -> None:
    """Raise ``ValueError`` unless a :class:`Dataset`'s arrays agree with each other.

    Run whenever a :class:`Dataset` is made (``dataclasses.replace`` included), so a dataset whose
    labels a network cannot learn never reaches training: images are ``(N, H, W, C)`` uint8 of one
    size in both splits, every image has one integer label, every label is a class index
    ``0 <= label < num_classes``, and there is one class name per class.

    Raises
    ------
    ValueError
        The first rule broken, naming the dataset, the array and (for a label) its index and value.

    Examples
    --------
    >>> ds = load_dataset("fixture", train_size=20, test_size=10)
    >>> import dataclasses
    >>> dataclasses.replace(ds, y_test=np.full_like(ds.y_test, 10))
    Traceback (most recent call last):
        ...
    ValueError: dataset 'fixture': y_test[0] = 10 is not a class; labels must be 0 to 9 (10 classes)
    """
    name = data.name
    if len(data.class_names) != data.num_classes:
        raise ValueError(f"dataset {name!r}: {len(data.class_names)} class names for "
                         f"num_classes={data.num_classes}; give one name per class")
    for split in ("train", "test"):
        images, labels = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"dataset {name!r}: x_{split} must be uint8 images shaped (N, H, W, C), "
                             f"got {images.dtype} {images.shape}")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"dataset {name!r}: y_{split} must be 1-D integer labels, got "
                             f"{labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"dataset {name!r}: x_{split} holds {len(images):,} images but y_{split} "
                             f"{len(labels):,} labels; every image needs exactly one label")
        bad = np.flatnonzero((labels < 0) | (labels >= data.num_classes))
        if bad.size:
            raise ValueError(f"dataset {name!r}: y_{split}[{bad[0]}] = {labels[bad[0]]} is not a class; "
                             f"labels must be 0 to {data.num_classes - 1} ({data.num_classes} classes)")
    if data.x_train.shape[1:] != data.x_test.shape[1:]:
        raise ValueError(f"dataset {name!r}: training images are {data.x_train.shape[1:]} but test images "
                         f"{data.x_test.shape[1:]}; both splits must have one image size")


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
    TypeError
        ``size`` or ``seed`` is not an integer.
    ValueError
        ``size`` is below 1 or exceeds ``len(labels)``, or ``seed`` is negative.

    Examples
    --------
    >>> labels = np.repeat(np.arange(3), 10)
    >>> np.bincount(labels[stratified_indices(labels, 6, seed=0)]).tolist()
    [2, 2, 2]
    """
    labels = np.asarray(labels)
    size = check_int(size, "size", minimum=1)
    if size > len(labels):
        raise ValueError(f"size={size} exceeds the {len(labels)} samples available")
    rng = np.random.default_rng(check_seed(seed))
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


# --------------------------------------------------------------------------- helpers


def _canonical_name(name) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return key


def _describe(key: str, n_train: int, n_test: int, *, subset: bool, seed: int) -> str:
    sizes = f"{n_train:,}/{n_test:,}"
    text = {
        "cifar10": f"CIFAR-10: {sizes} train/test images, 32x32x3, 10 classes",
        "cifar100": f"CIFAR-100: {sizes} train/test images, 32x32x3, 100 fine classes",
        "fashion_mnist": f"Fashion-MNIST: {sizes} images padded from 28x28 to 32x32x3 (not CIFAR)",
        "fixture": f"fixture: {sizes} Fashion-MNIST images padded to 32x32x3 (not CIFAR)",
    }[key]
    return f"{text}; class-balanced subset, seed {seed}" if subset else text


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
