"""Data loaders: the formats on tiny files built here, then the real data sets.

The real-data tests read $BOOK_DATA_DIR (CI: ../shared/data) or download into the cache; a
missing data set fails them, as it should.
"""

import contextlib
import gzip
import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import data
from helpers.data import cifar10, common, imdb, mnist
from helpers.data.download import DataNotFoundError, RemoteFile, fetch, find_local


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def offline(data_dirs):
    """The private offline copy; registry URLs in these tests point nowhere and fail."""
    return data_dirs[0]


# --- MNIST ------------------------------------------------------------------------------------
def write_mnist(root: Path, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    (root / "mnist").mkdir()
    for name, array in (("img.gz", images), ("lbl.gz", labels)):
        (root / "mnist" / name).write_bytes(gzip.compress(idx_bytes(array)))
    return images, labels


def test_mnist_format(offline, monkeypatch):
    images, labels = write_mnist(offline)
    files = tuple(
        RemoteFile(n, ("http://127.0.0.1:9/x",), sha(offline / "mnist" / n))
        for n in ("img.gz", "lbl.gz")
    )
    monkeypatch.setitem(mnist._MNIST, "train", files)
    x, y = data.load_mnist("train")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    assert x.flags.writeable
    x5, y5 = data.load_mnist("train", limit=5)
    assert x5.shape == (5, 28, 28) and y5.shape == (5,)
    keep = [np.flatnonzero((images == row).all(axis=(1, 2)))[0] for row in x5]
    assert keep == sorted(keep)  # a subset, in the original order


def test_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x09\x01" + b"\x00" * 8))
    with pytest.raises(ValueError, match="bad magic number"):
        mnist.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(np.zeros((4, 2), np.uint8))[:-3])
    with pytest.raises(ValueError, match=r"header says \(4, 2\)"):
        mnist.read_idx(short)


def test_missing_mnist_says_how_to_get_it(offline):
    with pytest.raises(DataNotFoundError, match="How to get it") as info:
        data.load_mnist("test")
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert "also needs: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in str(
        info.value
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_mnist("validation")
    with pytest.raises(ValueError, match="positive"):
        common.subset(10, 0)
    with pytest.raises(TypeError, match="uint8"):
        data.images_to_vectors(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="explicit rng"):
        list(data.batch_indices(10, 3, shuffle=True))


# --- CIFAR-10 ---------------------------------------------------------------------------------
def add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def test_cifar10_python_format(offline, monkeypatch):
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    (offline / "cifar10").mkdir()
    archive = offline / "cifar10" / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": chw.reshape(2, -1), b"labels": [3, 7]}
            add_bytes(tar, f"cifar-10-batches-py/{name}", pickle.dumps(batch))
    monkeypatch.setattr(
        cifar10, "_CIFAR10", RemoteFile(archive.name, ("http://x/",), sha(archive))
    )
    x, y = data.load_cifar10("train")
    assert x.shape == (10, 32, 32, 3) and list(y[:2]) == [3, 7]
    np.testing.assert_array_equal(x[1, 4, 5], chw[1, :, 4, 5])  # HWC pixel = CHW column
    x, y = data.load_cifar10("test")
    assert x.shape == (2, 32, 32, 3)


def test_cifar10_jpeg_format(offline, monkeypatch):
    (offline / "cifar10-jpeg").mkdir()
    archive = offline / "cifar10-jpeg" / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split, cls, value in (
            ("train", "cat", 40),
            ("train", "ship", 200),
            ("test", "dog", 90),
        ):
            buf = io.BytesIO()
            Image.new("RGB", (32, 32), (value, value, value)).save(buf, format="JPEG")
            add_bytes(tar, f"{split}/{cls}/0000.jpg", buf.getvalue())
    monkeypatch.setattr(
        cifar10, "_CIFAR10_JPEG", ("cifar10-jpeg/c.tar.gz", sha(archive))
    )
    with pytest.warns(UserWarning, match="JPEG"):
        x, y = data.load_cifar10("train")
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.uint8
    assert sorted(data.CIFAR10_CLASSES[i] for i in y) == ["cat", "ship"]
    ship = x[list(y).index(data.CIFAR10_CLASSES.index("ship"))]
    # JPEG is lossy, but not by much on a flat image; the image stays with its label.
    assert abs(int(ship.mean()) - 200) <= 2
    with pytest.warns(UserWarning):
        _, y_test = data.load_cifar10("test")  # second call: from the cached decode
    assert [data.CIFAR10_CLASSES[i] for i in y_test] == ["dog"]


def test_cifar10_sample_as_jpeg_picks_each_class_by_rank(offline, monkeypatch):
    # A JPEG copy of two classes, each image a flat grey that names it: cats 10, 20, 30 (ranks
    # 0-2), ships 100, 110. The sample's labels give the ranks: ship, cat, cat, ship, cat.
    (offline / "cifar10-jpeg").mkdir()
    archive = offline / "cifar10-jpeg" / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for cls, values in (("cat", (10, 20, 30)), ("ship", (100, 110))):
            for rank, value in enumerate(values):
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), (value,) * 3).save(buf, format="JPEG")
                add_bytes(tar, f"train/{cls}/{rank:04d}.jpg", buf.getvalue())
    monkeypatch.setattr(
        cifar10, "_CIFAR10_JPEG", ("cifar10-jpeg/c.tar.gz", sha(archive))
    )
    cat, ship = (data.CIFAR10_CLASSES.index(c) for c in ("cat", "ship"))
    labels = np.array([ship, cat, cat, ship, cat], np.uint8)
    monkeypatch.setattr(cifar10, "_load_cifar10_sample", lambda split: (None, labels))
    with pytest.warns(UserWarning, match="JPEG"):
        x, y = data.load_cifar10("train", sample=True, jpeg=True)
    assert (y == labels).all()
    assert np.abs(x.mean(axis=(1, 2, 3)) - [100, 10, 20, 110, 30]).max() <= 2
    # a sample with more cats than the copy holds: an error, not the next class's images
    more = np.array([cat] * 4, np.uint8)
    monkeypatch.setattr(cifar10, "_load_cifar10_sample", lambda split: (None, more))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="4 of class 3"):
        data.load_cifar10("train", sample=True, jpeg=True)


# --- IMDB ----------------------------------------------------------------------------------------
def test_imdb_archive_format(offline, monkeypatch):
    reviews = {
        "aclImdb/train/pos/10_9.txt": "Great film!<br /><br />Loved it.",
        "aclImdb/train/neg/2_1.txt": "Awful. Didn't like it?",
        "aclImdb/train/unsup/0_0.txt": "unlabelled: must be skipped",
        "aclImdb/test/pos/0_8.txt": "Fine.",
        "aclImdb/imdb.vocab": "the\nand",
    }
    (offline / "imdb").mkdir()
    archive = offline / "imdb" / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in reviews.items():
            add_bytes(tar, name, text.encode())
    monkeypatch.setattr(
        imdb, "_IMDB", RemoteFile(archive.name, ("http://x/",), sha(archive))
    )
    # No offline jsonl: use the tar.
    monkeypatch.setitem(imdb._IMDB_JSONL, "train", "0" * 64)
    texts, labels = data.load_imdb("train")
    assert dict(zip(texts, labels.tolist(), strict=True)) == {
        "Awful. Didn't like it?": 0,
        "Great film!<br /><br />Loved it.": 1,
    }
    tokens, _ = data.load_imdb("train", tokenized=True)
    assert sorted(tokens) == [
        ["awful", "didn't", "like", "it", "?"],
        ["great", "film", "!", "loved", "it"],
    ]


def test_imdb_jsonl_format(offline, monkeypatch):
    (offline / "imdb").mkdir()
    path = offline / "imdb" / "imdb_test.jsonl.gz"
    rows = [
        {"id": "neg/0_2", "rating": 2, "label": 0, "text": "bad"},
        {"id": "pos/0_9", "rating": 9, "label": 1, "text": "good"},
    ]
    path.write_bytes(
        gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    )
    monkeypatch.setitem(imdb._IMDB_JSONL, "test", sha(path))
    texts, labels = data.load_imdb("test")
    assert dict(zip(texts, labels.tolist(), strict=True)) == {"bad": 0, "good": 1}


# --- batching -----------------------------------------------------------------------------------
def test_batch_indices_cover_everything_once():
    rng = np.random.default_rng(0)
    batches = list(data.batch_indices(10, 4, shuffle=True, rng=rng))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [len(b) for b in data.batch_indices(10, 4, drop_last=True)] == [4, 4]


# --- the real data sets ------------------------------------------------------------------------
def test_real_mnist():
    x, y = data.load_mnist("train")
    assert x.shape == (60_000, 28, 28) and x.dtype == np.uint8 and y.shape == (60_000,)
    # The md5 of the uncompressed canonical train-images file, header included.
    assert hashlib.md5(idx_bytes(x)).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"
    assert 0 < x.mean() < 255 and set(np.unique(y)) == set(range(10))
    x_test, y_test = data.load_mnist("test")
    assert x_test.shape == (10_000, 28, 28) and np.bincount(y_test).min() > 800


def test_real_cifar10_sample():
    x, y = data.load_cifar10("train", sample=True)
    assert x.shape == (4_000, 32, 32, 3) and y.shape == (4_000,)
    x, y = data.load_cifar10("test", sample=True)
    assert x.shape == (1_000, 32, 32, 3) and set(np.unique(y)) == set(range(10))


def test_real_cifar10_sample_as_jpeg_is_the_same_pictures():
    if find_local(*cifar10._CIFAR10_JPEG) is None:
        pytest.skip(
            "the course's JPEG copy of CIFAR-10 is not here (it is not downloadable)"
        )
    for split, n in (("train", 4_000), ("test", 1_000)):
        x, y = data.load_cifar10(split, sample=True)
        with pytest.warns(UserWarning, match="JPEG"):
            xj, yj = data.load_cifar10(split, sample=True, jpeg=True)
        assert xj.shape == (n, 32, 32, 3) and xj.dtype == np.uint8 and (yj == y).all()
        # The same pictures, re-encoded: each image a few levels off (the README's ~6/255);
        # a picture matched to another image of its class differs by ~70 levels.
        error = np.abs(xj.astype(int) - x).mean(axis=(1, 2, 3))
        assert 3 < error.mean() < 9 and error.max() < 20
    # jpeg=True without sample: the whole copy, in the loader's fixed mixed order
    with pytest.warns(UserWarning, match="JPEG"):
        x, y = data.load_cifar10("test", jpeg=True)
    assert x.shape == (10_000, 32, 32, 3) and np.bincount(y).tolist() == [1_000] * 10
    assert len(set(y[:10].tolist())) > 3  # mixed, not class by class


def test_cifar10_jpeg_without_the_copy_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r"JPEG copy.*BOOK_DATA_DIR"):
        data.load_cifar10("test", sample=True, jpeg=True)


def test_real_cifar10_full():
    jpeg_only = fetch("cifar10", cifar10._CIFAR10, download=False) is None
    with (
        pytest.warns(UserWarning, match="JPEG")
        if jpeg_only
        else contextlib.nullcontext()
    ):
        x, y = data.load_cifar10("test")
    assert x.shape == (10_000, 32, 32, 3) and np.bincount(y).tolist() == [1_000] * 10


def test_real_imdb():
    texts, labels = data.load_imdb("train")
    assert len(texts) == 25_000 and labels.sum() == 12_500
    texts, labels = data.load_imdb("test", limit=1_000)
    assert len(texts) == 1_000 and 400 < labels.sum() < 600


def test_batch_sampler_counts_and_reshuffles():
    sampler = data.BatchSampler(10, 4, shuffle=True, seed=0)
    assert len(sampler) == 3 and len(data.BatchSampler(10, 4, drop_last=True)) == 2
    first, second = (np.concatenate(list(sampler.indices())) for _ in range(2))
    assert (
        sorted(first.tolist()) == list(range(10)) and first.tolist() != second.tolist()
    )
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.BatchSampler(10, 0)


# --- order: every loader returns a well-mixed, fixed order ---------------------------------------
def test_mixed_order_is_the_same_on_every_machine():
    # numpy's PCG64 stream for seed 0: a change here reorders every class-sorted data set.
    assert common.mixed_order(10).tolist() == MIXED_10
    assert sorted(common.mixed_order(1000).tolist()) == list(range(1000))


MIXED_10 = [4, 6, 2, 7, 3, 5, 9, 0, 8, 1]


def tenths_hold_every_class(labels: np.ndarray, classes: int) -> list[int]:
    """The tenths (contiguous slices) of ``labels`` that miss a class."""
    return [
        i
        for i, part in enumerate(np.array_split(labels, 10))
        if len(np.unique(part)) < classes
    ]


@pytest.mark.parametrize(
    ("name", "load", "classes"),
    [
        ("mnist", data.load_mnist, 10),
        ("cifar10", data.load_cifar10, 10),
        ("cifar10-sample", lambda s: data.load_cifar10(s, sample=True), 10),
        ("imdb", data.load_imdb, 2),
    ],
)
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.filterwarnings("ignore:CIFAR-10 from the JPEG")
def test_real_data_is_well_mixed(name, load, classes, split):
    _, labels = load(split)
    assert tenths_hold_every_class(labels, classes) == [], f"{name} {split}"


def test_imdb_order_is_the_same_from_either_source(offline, monkeypatch):
    rows = [("neg", i, f"bad {i}") for i in range(6)] + [
        ("pos", i, f"good {i}") for i in range(6)
    ]
    (offline / "imdb").mkdir()
    jsonl = offline / "imdb" / "imdb_train.jsonl.gz"
    lines = [
        json.dumps({"id": f"{p}/{i}_1", "label": int(p == "pos"), "text": t})
        for p, i, t in rows
    ]
    jsonl.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    monkeypatch.setitem(imdb._IMDB_JSONL, "train", sha(jsonl))
    from_jsonl = data.load_imdb("train")

    archive = offline / "imdb" / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for p, i, t in rows:
            add_bytes(tar, f"aclImdb/train/{p}/{i}_1.txt", t.encode())
    jsonl.unlink()
    monkeypatch.setattr(
        imdb, "_IMDB", RemoteFile(archive.name, ("http://x/",), sha(archive))
    )
    from_tar = data.load_imdb("train")
    assert from_tar[0] == from_jsonl[0]
    assert from_tar[1].tolist() == from_jsonl[1].tolist()
    assert from_tar[0] != [t for _, _, t in rows]  # mixed, not the sorted file order
