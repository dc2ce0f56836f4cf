"""Tests of cdp_tutorial.data: real files, real archives built here, no mocks of our own code.

CIFAR cannot be downloaded on the machines these tests run on, so the CIFAR tests build tiny archives
in the official format and record their SHA-256 in ``data.ARCHIVES``, as a new mirror would.
"""

from __future__ import annotations

import doctest
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import pytest

from cdp_tutorial import data
from cdp_tutorial.data import (ArchiveSpec, ChecksumError, DatasetNotFoundError, load_dataset, make_epochs,
                               make_pipeline, readers, sources)

CLOSED_PORT_URL = "http://127.0.0.1:9/{}"  # the discard port: nothing listens, the connection is refused


# --------------------------------------------------------------------------- files in official formats


def cifar_rows(n: int, seed: int) -> np.ndarray:
    """``n`` random CIFAR rows: 3072 uint8 values each, channel-major (R plane, G plane, B plane)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def cifar10_members(per_batch: int = 2) -> dict[str, bytes]:
    members = {}
    for i in range(1, 6):
        rows = cifar_rows(per_batch, seed=i)
        labels = [(i + j) % 10 for j in range(per_batch)]
        members[f"cifar-10-batches-py/data_batch_{i}"] = pickle.dumps({b"data": rows, b"labels": labels})
    members["cifar-10-batches-py/test_batch"] = pickle.dumps(
        {b"data": cifar_rows(per_batch, seed=9), b"labels": [3] * per_batch})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": names})
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    return members


def publish(monkeypatch, key: str, archive: Path) -> ArchiveSpec:
    """Record ``archive``'s SHA-256 and size in the checksum table, with an unreachable URL."""
    spec = ArchiveSpec(
        url=CLOSED_PORT_URL.format(archive.name),
        filename=archive.name,
        sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
        size=archive.stat().st_size,
    )
    monkeypatch.setitem(data.ARCHIVES, key, spec)
    return spec


class MakesMarkerWhenUnpickled:
    """Unpickling this object creates a folder: proof that a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped idx file: two zero bytes, type 0x08 (uint8), ndim, big-endian dims, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


# --------------------------------------------------------------------------- CIFAR archives


def test_cifar10_archive_is_read_as_nhwc_with_its_labels(tmp_path, monkeypatch):
    members = cifar10_members(per_batch=2)
    rows = pickle.loads(members["cifar-10-batches-py/data_batch_1"])[b"data"]
    rows[0, 1 * 1024 + 5 * 32 + 7] = 201  # green value of row 5, column 7 of the first image
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps({b"data": rows, b"labels": [1, 2]})
    publish(monkeypatch, "cifar10", write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members))

    ds = load_dataset("CIFAR-10", data_dir=tmp_path)

    assert ds.name == "cifar10" and ds.num_classes == 10 and ds.class_names[0] == "airplane"
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (2, 32, 32, 3)
    assert ds.x_train[0, 5, 7, 1] == 201
    np.testing.assert_array_equal(ds.x_train[0], rows[0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert ds.y_train.dtype == np.int64
    assert ds.y_train.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6] and ds.y_test.tolist() == [3, 3]


def test_cifar_cache_is_used_once_the_archive_was_converted(tmp_path, monkeypatch):
    archive = write_tar_gz(tmp_path / "cifar-10-python.tar.gz", cifar10_members())
    publish(monkeypatch, "cifar10", archive)
    first = load_dataset("cifar10", data_dir=tmp_path)
    archive.unlink()  # from now on only the converted cache can answer

    second = load_dataset("cifar10", data_dir=tmp_path)

    assert (tmp_path / "cifar10.npz").is_file()
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert first.class_names == second.class_names


def test_cifar100_uses_fine_labels_and_names_from_meta(tmp_path, monkeypatch):
    fine_names = [f"fine{i}".encode() for i in range(100)]
    members = {
        "cifar-100-python/train": pickle.dumps(
            {b"data": cifar_rows(4, seed=1), b"fine_labels": [99, 0, 42, 7], b"coarse_labels": [1, 2, 3, 4]}),
        "cifar-100-python/test": pickle.dumps(
            {b"data": cifar_rows(2, seed=2), b"fine_labels": [5, 6], b"coarse_labels": [0, 0]}),
        "cifar-100-python/meta": pickle.dumps(
            {b"fine_label_names": fine_names, b"coarse_label_names": [b"c"] * 20}),
    }
    publish(monkeypatch, "cifar100", write_tar_gz(tmp_path / "cifar-100-python.tar.gz", members))

    ds = load_dataset("cifar-100", data_dir=tmp_path)

    assert ds.num_classes == 100 and ds.class_names[99] == "fine99"
    assert ds.y_train.tolist() == [99, 0, 42, 7] and ds.y_test.tolist() == [5, 6]
    assert ds.x_train.shape == (4, 32, 32, 3)


def test_corrupted_archive_is_refused_before_anything_is_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    members = cifar10_members()
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps(MakesMarkerWhenUnpickled(marker))
    write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members)  # the right name, the wrong bytes

    with pytest.raises(ChecksumError, match="corrupted") as error:
        load_dataset("cifar10", data_dir=tmp_path)

    assert data.ARCHIVES["cifar10"].sha256 in str(error.value)
    assert not marker.exists()
    assert not (tmp_path / "cifar10.npz").exists()


def test_the_marker_trap_does_fire_when_an_archive_is_trusted(tmp_path, monkeypatch):
    # Control for the test above: with its hash on record, the same archive is unpickled.
    marker = tmp_path / "unpickled"
    members = cifar10_members()
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps(MakesMarkerWhenUnpickled(marker))
    publish(monkeypatch, "cifar10", write_tar_gz(tmp_path / "cifar-10-python.tar.gz", members))

    with pytest.raises(TypeError):  # os.mkdir returned None where a dict was expected
        load_dataset("cifar10", data_dir=tmp_path)

    assert marker.exists()


def test_truncated_archive_is_refused_and_says_so(tmp_path, monkeypatch):
    archive = write_tar_gz(tmp_path / "cifar-10-python.tar.gz", cifar10_members(per_batch=20))
    spec = publish(monkeypatch, "cifar10", archive)
    archive.write_bytes(archive.read_bytes()[: spec.size // 2])  # an interrupted download
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()

    with pytest.raises(ChecksumError, match="truncated") as error:
        load_dataset("cifar10", data_dir=tmp_path)

    assert spec.sha256 in str(error.value) and actual in str(error.value)
    assert not (tmp_path / "cifar10.npz").exists()


def test_offline_error_says_what_to_download_and_where_to_put_it(tmp_path, monkeypatch):
    spec = ArchiveSpec(url=CLOSED_PORT_URL.format("cifar-10-python.tar.gz"),
                       filename="cifar-10-python.tar.gz", sha256="ab" * 32, size=1)
    monkeypatch.setitem(data.ARCHIVES, "cifar10", spec)

    with pytest.raises(DatasetNotFoundError, match="network is unreachable") as error:
        load_dataset("cifar10", data_dir=tmp_path)

    message = str(error.value)
    assert spec.filename in message and spec.url in message and spec.sha256 in message
    assert str(tmp_path / spec.filename) in message
    assert list(tmp_path.iterdir()) == []  # no partial download left behind


def test_archive_members_are_read_never_extracted_and_links_are_not_followed(tmp_path, monkeypatch):
    members = cifar10_members()
    del members["cifar-10-batches-py/test_batch"]
    folder = tmp_path / "data"
    folder.mkdir()
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in {**members, "../escaped": b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("cifar-10-batches-py/test_batch")  # the right name, but a link
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    publish(monkeypatch, "cifar10", archive)

    with pytest.raises(ValueError, match="lacks the regular files cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", data_dir=folder)

    assert not (tmp_path / "escaped").exists() and not (folder / "cifar-10-batches-py").exists()


# --------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_is_padded_to_32x32_and_replicated_to_3_channels(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    images = rng.integers(1, 256, size=(6, 28, 28), dtype=np.uint8)  # no zeros: padding is visible
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 0, 1, 2]))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[:3])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([2, 1, 0]))

    ds = load_dataset("fashion_mnist", data_dir=tmp_path)

    assert ds.x_train.shape == (6, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(ds.x_train[:, 2:30, 2:30, 0], images)
    assert (ds.x_train[:, :2] == 0).all() and (ds.x_train[:, 30:] == 0).all()
    assert (ds.x_train[:, :, :2] == 0).all() and (ds.x_train[:, :, 30:] == 0).all()
    assert (ds.x_train == ds.x_train[..., :1]).all()  # three equal channels
    assert ds.y_train.tolist() == [0, 1, 2, 0, 1, 2] and ds.class_names[9] == "Ankle boot"
    assert "not CIFAR" in ds.description


def test_missing_fashion_mnist_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras"))

    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as error:
        load_dataset("fashion_mnist", data_dir=tmp_path)

    for place in (tmp_path / "fashion-mnist", tmp_path / "no-keras", tmp_path / "no-debian"):
        assert str(place) in str(error.value)


def write_fashion_mnist(folder: Path, n_train: int = 6, n_test: int = 3, **replace) -> dict[str, Path]:
    """Four valid idx files of random 28x28 images in ``folder``; ``replace`` swaps in other arrays."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28)), "y_train": np.arange(n_train) % 10,
              "x_test": rng.integers(0, 256, (n_test, 28, 28)), "y_test": np.arange(n_test) % 10, **replace}
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / name for k, name in data.FASHION_MNIST_FILES.items()}
    for key, path in paths.items():
        write_idx(path, arrays[key])
    return paths


def test_fashion_mnist_counts_that_disagree_are_refused_naming_both_files(tmp_path):
    paths = write_fashion_mnist(tmp_path / "fashion-mnist", n_train=20)
    write_idx(paths["y_train"], np.arange(15) % 10)  # 20 images, 15 labels

    with pytest.raises(ValueError, match="holds 20 images but .* holds 15 labels") as error:
        load_dataset("fashion_mnist", data_dir=tmp_path)
    assert str(paths["x_train"]) in str(error.value) and str(paths["y_train"]) in str(error.value)


def test_fashion_mnist_labels_beyond_the_ten_classes_are_refused_naming_the_file(tmp_path):
    paths = write_fashion_mnist(tmp_path / "fashion-mnist", y_test=np.array([3, 200, 1]))

    with pytest.raises(ValueError, match="label 200 at index 1 .* labels are 0 to 9") as error:
        load_dataset("fashion_mnist", data_dir=tmp_path)
    assert str(paths["y_test"]) in str(error.value)


def test_fashion_mnist_images_of_another_size_are_refused_not_padded_to_31x31(tmp_path):
    rng = np.random.default_rng(1)
    paths = write_fashion_mnist(tmp_path / "fashion-mnist", x_train=rng.integers(0, 256, (6, 29, 29)))

    with pytest.raises(ValueError, match="holds 29x29 images; Fashion-MNIST images are 28x28") as error:
        load_dataset("fashion_mnist", data_dir=tmp_path)
    assert str(paths["x_train"]) in str(error.value)


def damage(path: Path, how: str) -> None:
    """Damage a gzipped idx file the way disks, downloads and careless copies do."""
    raw = path.read_bytes()
    if how == "truncated gzip":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "not gzip":
        path.write_bytes(gzip.decompress(raw))  # the idx bytes, never compressed
    elif how == "CRC error":
        crc = bytearray(raw)
        crc[-8] ^= 0xFF  # the gzip trailer: CRC-32 of the data, then its length
        path.write_bytes(bytes(crc))
    elif how == "empty file":
        path.write_bytes(b"")
    elif how == "empty gzip":
        path.write_bytes(gzip.compress(b""))
    elif how == "wrong rank":
        write_idx(path, np.zeros((3, 2), np.uint8))  # a labels file must be rank 1


@pytest.mark.parametrize("how, message", [
    ("truncated gzip", "is truncated: its gzip stream ends early"),
    ("not gzip", "is damaged or not gzip"),
    ("CRC error", "is damaged or not gzip .*CRC check failed"),
    ("empty file", "is empty"),
    ("empty gzip", "is empty"),
    ("wrong rank", r"holds a rank-2 array of shape \(3, 2\), but labels \(rank 1\) were expected"),
])
def test_a_damaged_idx_file_is_refused_naming_the_file_and_what_is_allowed(tmp_path, how, message):
    paths = write_fashion_mnist(tmp_path / "fashion-mnist")
    damage(paths["y_train"], how)

    with pytest.raises(ValueError, match=message) as error:
        load_dataset("fashion_mnist", data_dir=tmp_path)
    assert str(error.value).startswith(str(paths["y_train"]))


def test_swapped_images_and_labels_files_are_refused(tmp_path):
    paths = write_fashion_mnist(tmp_path / "fashion-mnist")
    images, labels = paths["x_test"].read_bytes(), paths["y_test"].read_bytes()
    paths["x_test"].write_bytes(labels)
    paths["y_test"].write_bytes(images)

    with pytest.raises(ValueError, match="holds labels of shape .* but images .* swapped") as error:
        load_dataset("fashion_mnist", data_dir=tmp_path)
    assert str(paths["x_test"]) in str(error.value)


def test_a_dataset_whose_labels_no_network_can_learn_cannot_be_made():
    import dataclasses

    ds = load_dataset("fixture", train_size=20, test_size=10)
    with pytest.raises(ValueError, match=r"y_train\[4\] = 10 is not a class; labels must be 0 to 9"):
        dataclasses.replace(ds, y_train=np.where(np.arange(20) == 4, 10, ds.y_train))
    with pytest.raises(ValueError, match="x_test holds 9 images but y_test 10 labels"):
        dataclasses.replace(ds, x_test=ds.x_test[:9])
    with pytest.raises(ValueError, match="both splits must have one image size"):
        dataclasses.replace(ds, x_test=ds.x_test[:, :28, :28])


# --------------------------------------------------------------------------- the committed fixture


def test_fixture_is_a_balanced_fashion_mnist_subset():
    ds = load_dataset("fixture")

    assert ds.x_train.shape == (2000, 32, 32, 3) and ds.x_test.shape == (500, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert np.bincount(ds.y_train).tolist() == [200] * 10
    assert np.bincount(ds.y_test).tolist() == [50] * 10
    assert (ds.x_train[:, :2] == 0).all() and (ds.x_train[..., 0] == ds.x_train[..., 2]).all()
    assert "Fashion-MNIST" in ds.description and "not CIFAR" in ds.description
    assert len(ds.mean) == 3 and 0 < ds.mean[0] < 1 and 0 < ds.std[0] < 1


def test_fixture_checksum_is_enforced(tmp_path):
    original = Path(__file__).resolve().parents[1] / "data" / "fixture" / data.FIXTURE_FILENAME
    copy = tmp_path / "fixture" / data.FIXTURE_FILENAME
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    assert load_dataset("fixture", data_dir=tmp_path).x_train.shape == (2000, 32, 32, 3)

    payload = bytearray(copy.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    copy.write_bytes(bytes(payload))

    with pytest.raises(ChecksumError, match="modified") as error:
        load_dataset("fixture", data_dir=tmp_path)
    assert data.FIXTURE_SHA256 in str(error.value)


# --------------------------------------------------------------------------- names, sizes, subsets


def test_stratified_subset_is_balanced_and_seeded():
    a = load_dataset("fixture", train_size=300, test_size=40, seed=1)
    b = load_dataset("fixture", train_size=300, test_size=40, seed=1)
    c = load_dataset("fixture", train_size=300, test_size=40, seed=2)

    assert np.bincount(a.y_train).tolist() == [30] * 10 and np.bincount(a.y_test).tolist() == [4] * 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert "subset" in a.description


def test_uneven_subset_sizes_differ_by_at_most_one_per_class():
    labels = np.repeat(np.arange(10), 20)
    counts = np.bincount(labels[data.stratified_indices(labels, 37, seed=0)], minlength=10)
    assert counts.sum() == 37 and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("name", ["imagenet", "cifar", ""])
def test_unknown_dataset_name_lists_the_allowed_ones(name):
    with pytest.raises(ValueError, match="cifar10, cifar100, fashion_mnist, fixture"):
        load_dataset(name)


@pytest.mark.parametrize("sizes, error", [
    ({"train_size": 0}, ValueError), ({"test_size": -5}, ValueError), ({"train_size": 2001}, ValueError),
    ({"test_size": 501}, ValueError), ({"train_size": 1.5}, TypeError), ({"train_size": True}, TypeError),
])
def test_bad_subset_sizes_are_refused(sizes, error):
    with pytest.raises(error, match="_size"):
        load_dataset("fixture", **sizes)


def test_numpy_integers_are_accepted_as_sizes_and_seeds_and_recorded_as_ints():
    from_numpy = load_dataset("fixture", train_size=np.int64(50), test_size=np.int32(20), seed=np.int64(3))
    from_python = load_dataset("fixture", train_size=50, test_size=20, seed=3)
    np.testing.assert_array_equal(from_numpy.x_train, from_python.x_train)
    assert from_numpy.description == from_python.description  # "seed 3", not "seed np.int64(3)"
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 4294967295\], got -1"):
        load_dataset("fixture", train_size=50, seed=-1)


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path / "mine"))
    assert data.data_dir() == tmp_path / "mine"
    monkeypatch.delenv("CDP_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir() == tmp_path / "xdg" / "cdp_tutorial"


# --------------------------------------------------------------------------- tf.data pipelines


@pytest.fixture(scope="module")
def small():
    return load_dataset("fixture", train_size=200, test_size=50, seed=0)


def test_pipeline_yields_normalised_float32_batches(small):
    batches = list(make_pipeline(small, "train", batch_size=64))

    assert [x.shape[0] for x, _ in batches] == [64, 64, 64, 8]
    assert batches[0][0].shape[1:] == (32, 32, 3)
    assert batches[0][0].dtype.name == "float32" and batches[0][1].dtype.name == "int64"
    images = np.concatenate([x.numpy() for x, _ in batches])
    np.testing.assert_allclose(images.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(images.std(axis=(0, 1, 2)), 1.0, atol=1e-3)


@pytest.mark.parametrize("split", ["train", "test"])
def test_pipeline_is_each_stored_image_normalised_in_order_never_augmented(small, split):
    images, labels = (small.x_train, small.y_train) if split == "train" else (small.x_test, small.y_test)
    batches = list(make_pipeline(small, split, batch_size=32))
    expected = (images / 255.0 - np.asarray(small.mean)) / np.asarray(small.std)
    np.testing.assert_allclose(np.concatenate([x.numpy() for x, _ in batches]), expected, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in batches]), labels)


def test_pipeline_refuses_bad_arguments(small):
    with pytest.raises(ValueError, match="split must be one of \\['train', 'test'\\], got 'validation'"):
        make_pipeline(small, "validation", batch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        make_pipeline(small, "train", batch_size=0)
    with pytest.raises(TypeError, match="augment"):  # training streams are make_epochs' job
        make_pipeline(small, "train", batch_size=8, augment=True)


# --------------------------------------------------------------------------- repository files


def test_repository_file_prefers_the_checkout():
    path = data.repository_file("data/reference/paper_results.csv")
    assert path.is_file() and path.parts[-3:] == ("data", "reference", "paper_results.csv")


def test_repository_file_outside_a_checkout_names_both_places_it_looked(tmp_path, monkeypatch):
    # As after a wheel install whose data/ lacks the file: no download is tried, the message says
    # where the file was looked for. (tests/test_project.py installs a real wheel and reads its data.)
    monkeypatch.setattr(sources, "REPO_ROOT", tmp_path / "site-packages")
    with pytest.raises(data.DatasetNotFoundError, match=r"neither in a checkout .*no-such-file.csv.* nor in "
                                                         r"the installed package .*repository_data"):
        data.repository_file("data/no-such-file.csv")


def test_repository_file_takes_only_paths_under_data():
    with pytest.raises(ValueError, match="under data/"):
        data.repository_file("README.md")
    with pytest.raises(ValueError, match="under data/"):
        data.repository_file("data/../pyproject.toml")


# --------------------------------------------------------------------------- make_epochs (training's stream)


def _epochs(ds, seeds, augment):
    batches = list(make_epochs(ds, batch_size=32, seeds=seeds, augment=augment))
    return np.concatenate([x.numpy() for x, _ in batches]), np.concatenate([y.numpy() for _, y in batches])


@pytest.mark.parametrize("augment", [False, True])
def test_an_epoch_depends_only_on_its_own_seed(small, augment):
    """What resuming relies on: epoch e is the same whether the stream starts at epoch 0 or at e."""
    x_two, y_two = _epochs(small, [5, 9], augment)
    tf.random.set_seed(123)  # TensorFlow's global seed plays no part
    x_second, y_second = _epochs(small, [np.int64(9)], augment)  # numpy seeds are fine
    n = len(small.y_train)
    np.testing.assert_array_equal(x_two[n:], x_second)
    np.testing.assert_array_equal(y_two[n:], y_second)
    assert sorted(y_second.tolist()) == sorted(small.y_train.tolist())  # a permutation of the split
    assert not np.array_equal(y_two[:n], y_two[n:])  # another seed, another order


def test_augmentation_moves_or_flips_nearly_every_image_and_keeps_labels(small):
    plain, labels = _epochs(small, [3], False)
    augmented, same_labels = _epochs(small, [3], True)
    np.testing.assert_array_equal(labels, same_labels)  # augmenting never reorders
    assert plain.shape == augmented.shape == (len(small.y_train), 32, 32, 3)
    changed = np.abs(augmented - plain).reshape(len(plain), -1).max(axis=1) > 1e-6
    assert 0.8 < changed.mean() <= 1.0  # a few images draw no shift and no flip


def test_make_epochs_refuses_bad_arguments(small):
    with pytest.raises(ValueError, match="one seed per epoch"):
        make_epochs(small, batch_size=32, seeds=[])
    with pytest.raises(ValueError, match=r"seeds\[1\] must be an integer in \[0, 4294967295\], got -2"):
        make_epochs(small, batch_size=32, seeds=[1, -2])
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        make_epochs(small, batch_size=32.0, seeds=[1])


def test_the_docstring_examples_run():
    from cdp_tutorial.data import datasets, pipeline

    results = {m.__name__: doctest.testmod(m) for m in (sources, readers, datasets, pipeline)}
    assert {name: r.failed for name, r in results.items() if r.failed} == {}
    assert sum(r.attempted for r in results.values()) > 5
