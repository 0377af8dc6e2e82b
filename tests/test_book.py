"""The book extension's settings: the execution cache key and the parallel executor's size."""

import pytest

from helpers.book import cache_key, execute_workers


def test_cache_key_names_the_scale_and_changes_with_it():
    assert cache_key("smoke").startswith("smoke-")
    assert cache_key("smoke")[6:] == cache_key("cpu")[4:]  # same helpers, same hash
    assert len(cache_key("cpu")) == len("cpu-") + 12


@pytest.mark.parametrize(("raw", "expected"), [(None, 1), ("1", 1), ("3", 3)])
def test_execute_workers_reads_the_environment(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("BOOK_EXECUTE_WORKERS", raising=False)
    else:
        monkeypatch.setenv("BOOK_EXECUTE_WORKERS", raw)
    assert execute_workers() == expected


@pytest.mark.parametrize("raw", ["0", "-2", "two", ""])
def test_execute_workers_rejects_anything_but_a_positive_integer(monkeypatch, raw):
    monkeypatch.setenv("BOOK_EXECUTE_WORKERS", raw)
    with pytest.raises(ValueError, match="positive integer"):
        execute_workers()
