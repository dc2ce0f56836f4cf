"""Where data files come from, and proof that they are the right ones.

This module owns the data directory, the table of downloadable archives with their SHA-256, the
verification that refuses a file whose bytes do not match, the (only) download code, and
:func:`repository_file` for the repository's ``data/``, read from a checkout or from the copy a wheel
carries inside the package (no download). It decodes
nothing: turning verified bytes into arrays is :mod:`cdp_tutorial.data.readers`' job.

Security: CIFAR archives are Python pickles, and unpickling runs code. An archive is therefore
checked against its published SHA-256 *before* anything in it is unpickled (:func:`verify_archive`),
and a download that does not match never reaches its target name.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from cdp_tutorial.files import write_atomically

__all__ = ["ARCHIVES", "REPO_ROOT", "ArchiveSpec", "ChecksumError", "DatasetNotFoundError", "data_dir",
           "download", "repository_file", "sha256_of", "verify_archive"]

#: The checkout this package lives in (the folder holding ``cdp_tutorial/`` and ``data/``).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where a wheel carries the repository's ``data/`` inside the package (``setup.py`` maps it there).
PACKAGED_DATA = "repository_data"


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


class ChecksumError(RuntimeError):
    """A file's SHA-256 is not the one recorded for it (corrupted, truncated or modified)."""


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not on this machine and could not be fetched."""


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
    if os.environ.get("CDP_DATA_DIR"):
        return Path(os.environ["CDP_DATA_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative paths in XDG_CACHE_HOME are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "cdp_tutorial"


# --------------------------------------------------------------------------- checksums


def sha256_of(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"abc"); f.flush()
    ...     sha256_of(f.name)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_archive(path, spec: ArchiveSpec, what: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` is exactly the archive ``spec`` describes.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to check.
    spec : ArchiveSpec
        Its expected SHA-256 and size.
    what : str, optional
        How the message names the file (default: its path, with advice to delete and re-download).

    Raises
    ------
    ChecksumError
        The hash differs; the message says whether the file looks truncated (an interrupted
        download) or corrupted, and gives both hashes.
    """
    path = Path(path)
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


# --------------------------------------------------------------------------- downloads


def download(spec: ArchiveSpec, target) -> None:
    """Download ``spec.url`` to ``target`` with a progress bar; it lands there only once verified.

    Raises
    ------
    ChecksumError
        The downloaded bytes do not have ``spec.sha256`` (nothing is left at ``target``).
    DatasetNotFoundError
        The network or the server failed; the message says what to download by hand and where to
        put it.
    """
    from tqdm.auto import tqdm  # imported here: only a download needs it

    def fetch(tmp):
        with urllib.request.urlopen(spec.url, timeout=60) as response, open(tmp, "wb") as handle:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=spec.filename) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    handle.write(chunk)
                    bar.update(len(chunk))
        # A bad download never reaches ``target``.
        verify_archive(tmp, spec, what=f"The download from {spec.url}")

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


def repository_file(relative: str) -> Path:
    """A file (or folder) of this repository's ``data/``: from the checkout, else from the installed package.

    A clone or an editable install reads ``data/`` next to the package. A wheel (``pip install``
    from git, as Colab's install cell does, or from a checkout) carries the same folder as
    ``cdp_tutorial/repository_data/`` (see ``setup.py``), so nothing is downloaded. Callers that need
    integrity check the file's SHA-256 themselves (the fixture does).

    Parameters
    ----------
    relative : str
        Path inside the repository, under ``data/``, e.g. ``"data/reference/paper_results.csv"``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If ``relative`` is not under ``data/`` (only that folder ships with the package).
    DatasetNotFoundError
        If neither the checkout nor the installed package has it; the message names both places.

    Examples
    --------
    >>> repository_file("data/reference/paper_results.csv").name
    'paper_results.csv'
    """
    parts = PurePosixPath(relative).parts
    if len(parts) < 2 or parts[0] != "data" or ".." in parts:
        raise ValueError(f"repository_file takes a path under data/ (the folder that ships with the package), "
                         f"got {relative!r}")
    local = REPO_ROOT / relative
    if local.exists():
        return local
    packaged = Path(str(resources.files("cdp_tutorial"))) / PACKAGED_DATA / Path(*parts[1:])
    if packaged.exists():
        return packaged
    raise DatasetNotFoundError(
        f"{relative} is neither in a checkout ({local}) nor in the installed package ({packaged}). "
        "The package carries data/ as it was when it was built: reinstall it from a checkout or from "
        "the repository that has this file, or clone the repository."
    )
