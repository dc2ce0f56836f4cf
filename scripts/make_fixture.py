"""Make the offline fixture: a small, class-balanced Fashion-MNIST subset committed to the repository.

The fixture lets the ``quick`` profile, CI and Binder run every notebook without a network. It holds
200 training and 50 test images per class (2,000/500), chosen at random with a fixed seed from the
Fashion-MNIST files of Debian's ``dataset-fashion-mnist`` package, stored as 28x28 uint8 in one
compressed ``.npz``; :func:`cdp_tutorial.data.load_dataset` pads them to 32x32x3.

The file is written reproducibly (fixed zip timestamps, sorted members), so remaking it from the same
source gives the same bytes and the SHA-256 recorded in ``cdp_tutorial/data/readers.py`` stays valid.

Usage::

    python scripts/make_fixture.py            # write data/fixture/fashion_mnist_fixture.npz
    python scripts/make_fixture.py --check    # remake in memory, compare with the recorded SHA-256
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from cdp_tutorial.data import (  # noqa: E402
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    FIXTURE_FILENAME,
    FIXTURE_SHA256,
    read_idx,
    stratified_indices,
)

DEFAULT_OUT = REPO / "data" / "fixture" / FIXTURE_FILENAME
NUM_CLASSES = 10
# zip stores a modification time per member; a fixed one makes the bytes reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def select_fixture(source: Path, train_per_class: int, test_per_class: int, seed: int) -> dict:
    """Class-balanced, seeded subsets of Fashion-MNIST's training and test splits.

    Returns
    -------
    dict of numpy.ndarray
        ``x_train``/``x_test`` (N, 28, 28) uint8, ``y_train``/``y_test`` (N,) uint8, and
        ``train_indices``/``test_indices``: where each image sits in the original files (provenance).
    """
    arrays = {key: read_idx(source / name) for key, name in FASHION_MNIST_FILES.items()}
    fixture = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = arrays[f"y_{split}"]
        index = stratified_indices(labels, per_class * NUM_CLASSES, seed=seed)
        fixture[f"x_{split}"] = arrays[f"x_{split}"][index]
        fixture[f"y_{split}"] = labels[index]
        fixture[f"{split}_indices"] = index.astype(np.int32)
    return fixture


def reproducible_npz_bytes(arrays: dict) -> bytes:
    """An ``np.load``-compatible compressed ``.npz``, byte-identical for identical arrays."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEBIAN_FASHION_MNIST_DIR,
                        help="folder with the four Fashion-MNIST *-ubyte.gz files (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default: %(default)s)")
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 unless the remade file matches FIXTURE_SHA256")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    fixture = select_fixture(args.source, args.train_per_class, args.test_per_class, args.seed)
    payload = reproducible_npz_bytes(fixture)
    digest = hashlib.sha256(payload).hexdigest()
    counts = np.bincount(fixture["y_train"], minlength=NUM_CLASSES).tolist()
    print(f"train {fixture['x_train'].shape}, test {fixture['x_test'].shape}, per class (train) {counts}")
    print(f"{len(payload):,} bytes, SHA-256 {digest}")
    if args.check:
        ok = digest == FIXTURE_SHA256
        print("matches FIXTURE_SHA256" if ok else f"DIFFERS from FIXTURE_SHA256 = {FIXTURE_SHA256}")
        return 0 if ok else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(payload)
    print(f"wrote {args.out}")
    if digest != FIXTURE_SHA256:
        print("Update FIXTURE_SHA256 in cdp_tutorial/data/readers.py to the SHA-256 above.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
