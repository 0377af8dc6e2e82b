"""The download/cache/offline machinery, against a file server on 127.0.0.1."""

import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from helpers.data import download as dl

PAYLOAD = b"course data " * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www over HTTP on a free loopback port; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "file.bin").write_bytes(PAYLOAD)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args):
            super().__init__(*args, directory=str(www))

        def log_message(self, *args):  # no request log on stderr
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:  # bind, then close: nothing listens there afterwards
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def files_in(folder: Path) -> list[str]:
    return (
        sorted(p.name for p in folder.rglob("*") if p.is_file())
        if folder.exists()
        else []
    )


def test_download_once_then_cache(data_dirs, server):
    _, cache = data_dirs
    url, www = server
    remote = dl.RemoteFile("file.bin", (url + "file.bin",), SHA)
    path = dl.fetch("toy", remote)
    assert path == cache / "toy" / "file.bin" and path.read_bytes() == PAYLOAD
    (www / "file.bin").unlink()  # the second call must not need the server
    assert dl.fetch("toy", remote) == path


def test_mirror_used_when_first_url_fails(data_dirs, server):
    url, _ = server
    remote = dl.RemoteFile("file.bin", (closed_port_url(), url + "file.bin"), SHA)
    assert dl.fetch("toy", remote).read_bytes() == PAYLOAD


def test_offline_copy_wins_and_is_verified(data_dirs):
    data, cache = data_dirs
    (data / "toy").mkdir()
    (data / "toy" / "file.bin").write_bytes(PAYLOAD)
    remote = dl.RemoteFile("file.bin", (closed_port_url(),), SHA)
    assert dl.fetch("toy", remote) == data / "toy" / "file.bin"
    assert files_in(cache) == []  # nothing downloaded, nothing copied


def test_offline_copy_with_another_accepted_hash(data_dirs):
    data, _ = data_dirs
    (data / "toy").mkdir()
    (data / "toy" / "file.bin").write_bytes(b"re-packaged")
    other = hashlib.sha256(b"re-packaged").hexdigest()
    remote = dl.RemoteFile("file.bin", (closed_port_url(),), SHA, also_accept=(other,))
    assert dl.fetch("toy", remote).read_bytes() == b"re-packaged"


def test_corrupt_offline_copy_is_an_error_not_a_fallback(data_dirs):
    data, _ = data_dirs
    (data / "toy").mkdir()
    (data / "toy" / "file.bin").write_bytes(b"truncated")
    remote = dl.RemoteFile("file.bin", (closed_port_url(),), SHA)
    with pytest.raises(
        dl.ChecksumError, match="file.bin has sha256 .* expected " + SHA
    ):
        dl.fetch("toy", remote)


def test_corrupt_cache_is_replaced(data_dirs, server):
    _, cache = data_dirs
    url, _ = server
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "file.bin").write_bytes(b"half a file")
    remote = dl.RemoteFile("file.bin", (url + "file.bin",), SHA)
    assert dl.fetch("toy", remote).read_bytes() == PAYLOAD


def test_wrong_download_leaves_nothing(data_dirs, server):
    _, cache = data_dirs
    url, _ = server
    remote = dl.RemoteFile("file.bin", (url + "file.bin",), "0" * 64)
    with pytest.raises(dl.DataNotFoundError, match=r"(?i)hash"):
        dl.fetch("toy", remote)
    assert files_in(cache) == []


def test_no_network_fails_fast_with_instructions(data_dirs):
    data, cache = data_dirs
    remote = dl.RemoteFile("file.bin", (closed_port_url(),), SHA)
    start = time.perf_counter()
    with pytest.raises(dl.DataNotFoundError) as info:
        dl.fetch("toy", remote)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "data not found: toy/file.bin" in message
    assert f"{data}" in message and "How to get it" in message and SHA in message
    assert files_in(cache) == []


def test_stalled_server_times_out(data_dirs, monkeypatch):
    """A server that accepts the connection and never answers: fail at the read timeout."""
    _, cache = data_dirs
    monkeypatch.setenv("BOOK_DOWNLOAD_TIMEOUT", "1")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel accepts the connection; nobody ever replies
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/file.bin"
        start = time.perf_counter()
        with pytest.raises(dl.DataNotFoundError, match=r"(?i)timed out"):
            dl.fetch("toy", dl.RemoteFile("file.bin", (url,), SHA))
        assert time.perf_counter() - start < 10
    assert files_in(cache) == []


def test_bad_timeout_setting(data_dirs, monkeypatch):
    monkeypatch.setenv("BOOK_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="BOOK_DOWNLOAD_TIMEOUT='soon'"):
        dl.fetch("toy", dl.RemoteFile("file.bin", (closed_port_url(),), SHA))


def test_fetch_without_download_returns_none(data_dirs):
    assert (
        dl.fetch("toy", dl.RemoteFile("f", (closed_port_url(),), SHA), download=False)
        is None
    )


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), dl.atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert files_in(tmp_path) == []
    with dl.atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert files_in(tmp_path) == ["out.bin"] and target.read_bytes() == b"whole"


def test_cached_derivative_builds_once_and_rebuilds_when_corrupt(data_dirs):
    _, cache = data_dirs
    builds = []

    def build(out: Path) -> None:
        builds.append(out)
        out.write_text("42")

    def load(path: Path) -> int:
        return int(path.read_text())

    assert dl.cached_derivative("x.txt", SHA, build, load) == 42
    assert dl.cached_derivative("x.txt", SHA, build, load) == 42
    assert len(builds) == 1
    (target,) = (cache / "derived").iterdir()
    target.write_text("garbage")
    assert dl.cached_derivative("x.txt", SHA, build, load) == 42
    assert len(builds) == 2


def test_download_in_a_notebook_prints_one_clean_line(data_dirs, server, capfd):
    """No progress bar stuck at 0 %, no TqdmWarning, no pooch log: one line on stdout."""
    url, _ = server
    remote = dl.RemoteFile("file.bin", (url + "file.bin",), SHA)
    # Pytest's captured stderr is not a terminal, like a kernel's.
    dl.fetch("toy", remote)
    out, err = capfd.readouterr()
    assert out == f"Downloading toy/file.bin from {url}file.bin ...\n"
    assert err == ""


def test_corrupt_cache_without_network_is_removed_with_a_clear_error(data_dirs):
    _, cache = data_dirs
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "file.bin").write_bytes(b"half a file")
    remote = dl.RemoteFile("file.bin", (closed_port_url(),), SHA)
    with pytest.raises(dl.DataNotFoundError, match="How to get it"):
        dl.fetch("toy", remote)
    assert files_in(cache) == []  # the corrupt file is gone, nothing else was left


def test_where_files_live_when_nothing_is_set(monkeypatch, tmp_path):
    for name in ("BOOK_DATA_DIR", "BOOK_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dl.data_dir() is None  # no offline copy unless one is named
    assert dl.cache_dir() == tmp_path.resolve() / ".cache" / "pytorch-jax-course"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.cache_dir() == (tmp_path / "xdg").resolve() / "pytorch-jax-course"
    monkeypatch.setenv("BOOK_CACHE_DIR", " ~/mine ")  # blanks trimmed, ~ expanded
    assert dl.cache_dir() == tmp_path.resolve() / "mine"
    monkeypatch.setenv("BOOK_DATA_DIR", "~/offline")
    assert dl.data_dir() == tmp_path.resolve() / "offline"
