"""Shared fixtures: one local Spark session, the real data (full set or shipped sample), real photos,
Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("FER_SPARK_MASTER", "local[2]")  # every session of the tests is this one

from browsers import chromium, tab  # noqa: E402

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


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory, photos) -> Path:
    """A folder of photos to score in a batch, built from the real photos: nested folders, a copy of
    one photo, a truncated JPEG, a text file named .png, and a file that is no image at all."""
    import shutil

    root = tmp_path_factory.mktemp("batch-photos")
    (root / "people" / "more").mkdir(parents=True)
    for name in ("single_face.jpg", "multi_face.jpg", "group_solvay_1927.jpg"):
        shutil.copy(photos / name, root / "people" / name)
    shutil.copy(photos / "no_face.jpg", root / "no_face.jpg")
    shutil.copy(photos / "single_face.jpg", root / "people" / "more" / "copy.JPG")
    (root / "people" / "more" / "truncated.jpg").write_bytes((photos / "multi_face.jpg").read_bytes()[:4000])
    (root / "holiday.png").write_bytes(b"this is not a picture at all")
    (root / "notes.txt").write_text("not a photo: skipped")
    return root


@pytest.fixture(scope="session")
def rows_match():
    """A check of a batch's rows for one photo against the ImageResult that the photo path of
    fer_core.predict gave for it, run directly."""
    import numpy as np

    from fer_core.batch import PROBABILITY_COLUMNS

    atol = 1e-4  # one TensorFlow thread per Spark task against the driver's pool: rounding only

    def check(rows, result) -> None:
        if result.error:
            assert len(rows) == 1 and rows["error"].iloc[0] == result.error
            assert rows["face"].isna().all()
            return
        if not result.faces:
            assert len(rows) == 1 and rows["face"].isna().all() and rows["error"].isna().all()
            return
        assert rows["error"].isna().all()
        assert rows["face"].tolist() == list(range(1, len(result.faces) + 1))
        boxes = [tuple(box) for box in rows[["x", "y", "w", "h"]].to_numpy()]
        assert boxes == [face.box for face in result.faces]
        assert rows["emotion"].tolist() == [face.emotion for face in result.faces]
        expected = np.stack([face.probabilities for face in result.faces])
        np.testing.assert_allclose(rows[list(PROBABILITY_COLUMNS)].to_numpy(np.float32), expected, atol=atol)
        np.testing.assert_allclose(rows["confidence"], expected.max(axis=1), atol=atol)

    return check


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, one per test module (a module may start it with other flags)."""
    with chromium() as browser:
        yield browser


@pytest.fixture()
def page(browser):
    """A fresh tab of its own (cookies, storage), downloads allowed."""
    with tab(browser, accept_downloads=True) as page:
        yield page
