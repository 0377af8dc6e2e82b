"""Find a data file: an offline copy, the cache, or a verified download; never a partial file.

Where a file is looked for, in order:

1. ``$BOOK_DATA_DIR/<dataset>/<name>``: an offline copy (a course machine, a USB stick).
2. ``$BOOK_CACHE_DIR/<dataset>/<name>`` (default ``~/.cache/pytorch-jax-course``): an earlier
   download.
3. The canonical URL, then its mirrors, downloaded once into the cache.

Every file is checked against its sha256 before it is used. Downloads go through ``pooch``,
which writes to a temporary file and renames it only once the hash matches, so an interrupted
or corrupt download never leaves a file behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = [
    "ChecksumError",
    "DataNotFoundError",
    "RemoteFile",
    "atomic_path",
    "cache_dir",
    "cached_derivative",
    "data_dir",
    "fetch",
    "find_local",
    "sha256sum",
]

T = TypeVar("T")

# Seconds per connection attempt and per read; BOOK_DOWNLOAD_TIMEOUT overrides.
DEFAULT_TIMEOUT_S = 30.0


class DataNotFoundError(FileNotFoundError):
    """A data file is in neither the offline copy nor the cache, and could not be downloaded."""


class ChecksumError(ValueError):
    """A data file exists but its sha256 is not the one expected."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set, as published."""

    name: str  # file name, the same in the cache and in $BOOK_DATA_DIR/<dataset>/
    urls: tuple[str, ...]  # canonical location first, then mirrors
    sha256: str  # of the file as published
    # Byte-exact re-packagings that hold the same data (e.g. re-gzipped copies); accepted offline.
    also_accept: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.sha256, *self.also_accept)


def data_dir() -> Path | None:
    """The offline copy named by ``$BOOK_DATA_DIR``, or None when unset."""
    value = os.environ.get("BOOK_DATA_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """Where downloads and derived files live: ``$BOOK_CACHE_DIR`` or the user cache."""
    value = os.environ.get("BOOK_CACHE_DIR", "").strip()
    if value:
        return Path(value).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(base).expanduser().resolve() / "pytorch-jax-course"


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def find_local(relpath: str, accepted: str | tuple[str, ...]) -> Path | None:
    """The verified file ``$BOOK_DATA_DIR/relpath``; None if no such file (or no data dir).

    A file that is there but has the wrong hash is an error, not a miss: an offline copy is
    put there on purpose, and silently falling back to a download would hide the problem.
    """
    root = data_dir()
    if root is None or not (root / relpath).is_file():
        return None
    path = root / relpath
    accepted = (accepted,) if isinstance(accepted, str) else accepted
    actual = sha256sum(path)
    if actual not in accepted:
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {' or '.join(accepted)}. "
            "The file is corrupt or not the expected version: replace it with a fresh copy."
        )
    return path


def _timeout() -> float:
    value = os.environ.get("BOOK_DOWNLOAD_TIMEOUT", "").strip()
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(
            f"BOOK_DOWNLOAD_TIMEOUT={value!r} is not a number of seconds"
        ) from None


def fetch(
    dataset: str,
    remote: RemoteFile,
    *,
    download: bool = True,
    companions: tuple[str, ...] = (),
) -> Path | None:
    """A verified local path to ``remote``: offline copy, then cache, then download.

    With ``download=False``, returns None instead of downloading (so a caller can try an
    alternative offline format first). Raises :class:`DataNotFoundError` when every place
    fails, with a message that says how to get the file (and its ``companions``: the other
    files of the data set, which belong in the same folder).
    """
    local = find_local(f"{dataset}/{remote.name}", remote.accepted)
    if local is not None:
        return local

    cached = cache_dir() / dataset / remote.name
    if cached.is_file():
        if sha256sum(cached) == remote.sha256:
            return cached
        cached.unlink()  # corrupt or truncated by hand: remove it, then fetch a fresh copy
    if not download:
        return None

    import pooch  # deferred: costs ~0.3 s and is only needed for downloads
    import requests

    # A live progress bar only in a terminal. In a notebook (and so on the built pages) a bar
    # cannot redraw cleanly and pooch's own log line adds noise: print one line instead.
    interactive = sys.stderr.isatty()
    pooch.get_logger().setLevel(logging.INFO if interactive else logging.WARNING)
    downloader = pooch.HTTPDownloader(progressbar=interactive, timeout=_timeout())
    errors = []
    for url in remote.urls:
        if not interactive:
            print(f"Downloading {dataset}/{remote.name} from {url} ...", flush=True)
        try:
            pooch.retrieve(
                url,
                known_hash=f"sha256:{remote.sha256}",
                fname=remote.name,
                path=cached.parent,
                downloader=downloader,
            )
            return cached
        except (requests.RequestException, OSError, ValueError) as e:
            errors.append(f"{url}: {type(e).__name__}: {e}")
    raise DataNotFoundError(not_found_message(dataset, remote, errors, companions))


def not_found_message(
    dataset: str,
    remote: RemoteFile,
    errors: list[str],
    companions: tuple[str, ...] = (),
) -> str:
    root = data_dir()
    if root is None:
        offline = "$BOOK_DATA_DIR (not set)"
    else:
        missing = "" if root.is_dir() else ", a folder that does not exist"
        offline = (
            f"$BOOK_DATA_DIR/{dataset}/{remote.name} (BOOK_DATA_DIR={root}{missing})"
        )
    tried = "\n".join(f"    {e}" for e in errors)
    return (
        f"data not found: {dataset}/{remote.name}\n"
        f"  looked in: {offline}\n"
        f"             {cache_dir() / dataset / remote.name} (download cache)\n"
        f"  download failed:\n{tried}\n"
        "How to get it:\n"
        "  * with internet access, run again: the file is downloaded once and cached;\n"
        f"  * offline: download {remote.urls[0]} elsewhere, copy it to <dir>/{dataset}/"
        f"{remote.name}\n    and set BOOK_DATA_DIR=<dir> (expected sha256 {remote.sha256})."
        + (
            f"\n    The same folder also needs: {', '.join(companions)}."
            if companions
            else ""
        )
    )


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it to ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_derivative(
    name: str, key: str, build: Callable[[Path], None], load: Callable[[Path], T]
) -> T:
    """A file derived from verified sources (e.g. decoded images), built once and cached.

    ``key`` (e.g. the source's sha256) is part of the file name, so a new source never reuses
    an old derivative. ``build(tmp_path)`` writes the file, which lands only if it succeeds;
    a cached file that ``load`` cannot read is treated as corrupt and rebuilt.
    """
    target = cache_dir() / "derived" / f"{key[:16]}-{name}"
    if target.is_file():
        try:
            return load(target)
        # Any unreadable cache file is rebuilt, whatever the reader raised.
        except Exception:
            target.unlink()
    with atomic_path(target) as tmp:
        build(tmp)
    return load(target)
