"""Shared fixtures: one local Spark session, the real data (full set or shipped sample), real photos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FER_SPARK_MASTER", "local[2]")  # every session of the tests is this one

from fer_core.data import SAMPLE_PATH, full_dataset_path  # noqa: E402

TESTS = Path(__file__).resolve().parent
PHOTOS = TESTS / "data" / "photos"


@pytest.fixture(scope="session", autouse=True)
def isolated_folders(tmp_path_factory):
    """Parquet caches and training runs go to fresh folders: tests exercise the Spark path and
    never see (or leave) runs of the developer's own."""
    os.environ["FER_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["FER_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def spark():
    from fer_core.spark import get_spark

    session = get_spark("local[2]", app_name="fer-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def full_csv() -> Path:
    """The real FER2013 CSV. CI has it beside the project; a newcomer's clone may not."""
    path = full_dataset_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs the full FER2013 at ../shared/data/fer2013.csv.gz or $FER2013_CSV")
        pytest.skip("full FER2013 not found: set FER2013_CSV to run this test")
    return path


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE_PATH


@pytest.fixture(scope="session")
def sample_lines(sample_csv) -> list[str]:
    """Real FER2013 rows (the shipped stratified sample), without the header."""
    import gzip

    with gzip.open(sample_csv, "rt") as stream:
        return stream.read().splitlines()[1:]


@pytest.fixture(scope="session")
def photos() -> Path:
    return PHOTOS
