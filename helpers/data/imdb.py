"""IMDB movie reviews (Maas et al. 2011): 25,000 train / 25,000 test, half positive.

Both sources (the canonical ``aclImdb_v1.tar.gz`` and the course's JSON-lines copy) hold the
reviews sorted by label, then review id; the loader puts them in the fixed order of
:func:`helpers.data.common.mixed_order`, the same whichever source was read.
"""

from __future__ import annotations

import gzip
import json
import re
import tarfile
from pathlib import Path

import numpy as np

from helpers.data.common import check_split, mixed_order, subset
from helpers.data.download import RemoteFile, cached_derivative, fetch, find_local

__all__ = ["load_imdb", "tokenize"]

_IMDB = RemoteFile(
    "aclImdb_v1.tar.gz",
    ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
    "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
)
# The course's offline format: one JSON object per review, sorted by label, then id.
_IMDB_JSONL = {
    "train": "212bff7422cfe67d6822189574c5835cfa4cba3492ad0bd142224b62dffba869",
    "test": "1928a7fb56a9e82852a9ce2632f8ac4c4815d76bf5ed1c5d485d7752e3366990",
}
_IMDB_NAME = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")


def _imdb_tar_to_jsonl(path: Path, out: Path) -> None:
    """Convert the canonical archive to the offline format (both splits in one file)."""
    rows = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            m = _IMDB_NAME.fullmatch(member.name)
            if m is None:  # skips unsup/, the vocabulary files and the README
                continue
            split, polarity, review, rating = m.groups()
            text = tar.extractfile(member).read().decode("utf-8")
            label = int(polarity == "pos")
            rid = f"{polarity}/{review}_{rating}"
            rows.append((split, label, int(review), rid, text))
    rows.sort()  # the offline copy's order: by label, then review id
    with gzip.open(out, "wt", encoding="utf-8") as f:
        for split, label, _, rid, text in rows:
            rec = {"split": split, "id": rid, "rating": int(rid.rsplit("_", 1)[1])}
            f.write(json.dumps({**rec, "label": label, "text": text}) + "\n")


def _read_jsonl(path: Path, split: str | None = None) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if split is None or row["split"] == split:
                texts.append(row["text"])
                labels.append(row["label"])
    return texts, np.asarray(labels, np.uint8)


def load_imdb(
    split: str = "train", *, limit: int | None = None, tokenized: bool = False
) -> tuple[list[str] | list[list[str]], np.ndarray]:
    """IMDB reviews: raw texts (or token lists) and labels ``uint8 (N,)``, 1 = positive.

    25,000 train / 25,000 test, half positive, in a fixed mixed order (see the module
    docstring); ``limit`` keeps a fixed random subset. Raises ``DataNotFoundError`` when the
    data cannot be found.
    """
    check_split(split)
    offline = find_local(f"imdb/imdb_{split}.jsonl.gz", _IMDB_JSONL[split])
    if offline is not None:
        texts, labels = _read_jsonl(offline)
    else:
        archive = fetch("imdb", _IMDB)
        texts, labels = cached_derivative(
            "imdb.jsonl.gz",
            _IMDB.sha256,
            lambda out: _imdb_tar_to_jsonl(archive, out),
            lambda p: _read_jsonl(p, split),
        )
    order = mixed_order(len(labels))  # the sources are sorted by label
    keep = order[subset(len(labels), limit)]
    texts = [texts[i] for i in keep]
    labels = labels[keep]
    return ([tokenize(t) for t in texts] if tokenized else texts), labels


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list[str]:
    """Lower-case tokens, IMDB's ``<br />`` tags dropped: ``[a-z0-9]+(?:'[a-z]+)?|[!?]``.

    Runs of ASCII letters and digits, each with an optional apostrophe part (``don't``), and
    ``!`` and ``?``. A letter outside a-z splits a word: ``Amélie`` gives ``am``, ``lie``.
    """
    return _TOKEN.findall(text.replace("<br />", " ").lower())
