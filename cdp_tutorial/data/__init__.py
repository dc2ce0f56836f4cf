"""Datasets and input pipelines: CIFAR-10/100, Fashion-MNIST and the committed offline fixture.

Start with :func:`load_dataset`, which returns a :class:`Dataset` (uint8 32x32x3 images, int64
labels, normalisation statistics and an honest one-line description), then feed it to a model with
:func:`make_epochs` (training) or :func:`make_pipeline` (evaluation).

==================  ==================================================================================
module              what it owns
==================  ==================================================================================
``sources``         the data dir, archive URLs and SHA-256s, verification, downloads, repository files
``readers``         file formats: CIFAR pickles in a tar.gz, gzipped idx files, the fixture ``.npz``
``datasets``        :class:`Dataset`, :func:`load_dataset`, class-balanced subsets, channel statistics
``pipeline``        ``tf.data`` streams: :func:`make_epochs` (training), :func:`make_pipeline` (evaluation)
==================  ==================================================================================

Every public name is re-exported here, so ``from cdp_tutorial.data import load_dataset`` is all a
notebook needs. (Module-level settings such as ``readers.DEBIAN_FASHION_MNIST_DIR`` are read where
they are defined: change them on the submodule, not on this package.)

Nothing is downloaded or read at import time; :func:`load_dataset` does the work when called.
"""

from cdp_tutorial.data.datasets import (DATASET_NAMES, IMAGE_SHAPE, Dataset, channel_mean_std,
                                        check_dataset_arrays, load_dataset, stratified_indices)
from cdp_tutorial.data.pipeline import make_epochs, make_pipeline
from cdp_tutorial.data.readers import (DEBIAN_FASHION_MNIST_DIR, FASHION_MNIST_CLASSES, FASHION_MNIST_FILES,
                                       FIXTURE_FILENAME, FIXTURE_SHA256, read_idx)
from cdp_tutorial.data.sources import (ARCHIVES, ArchiveSpec, ChecksumError, DatasetNotFoundError, data_dir,
                                       repository_file, sha256_of, verify_archive)

__all__ = [
    "ARCHIVES",
    "ArchiveSpec",
    "ChecksumError",
    "DATASET_NAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "Dataset",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "FIXTURE_FILENAME",
    "FIXTURE_SHA256",
    "IMAGE_SHAPE",
    "channel_mean_std",
    "check_dataset_arrays",
    "data_dir",
    "load_dataset",
    "make_epochs",
    "make_pipeline",
    "read_idx",
    "repository_file",
    "sha256_of",
    "stratified_indices",
    "verify_archive",
]
