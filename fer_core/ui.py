"""The dashboard's shared Streamlit pieces: the sidebar, cached data and models, model pickers.

This is the only module of fer_core that imports streamlit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException

from fer_core.artifacts import (
    DEFAULT_MODEL,
    LoadedModel,
    ModelError,
    list_models,
    load_model,
    read_card,
    runs_dir,
)
from fer_core.data import DataError, Dataset, default_source, full_dataset_path, load_dataset
from fer_core.spark import resolve_master

DATA_CHOICE = "data_choice"
SAMPLE, FULL, UPLOAD, PATH = "Shipped sample", "Full FER2013", "Upload a CSV", "Path on the server"


@dataclass(frozen=True)
class DataChoice:
    """The data source chosen in the sidebar: a path (None until an upload arrives) and the master."""

    path: str | None
    label: str
    spark_master: str


def sidebar() -> DataChoice:
    """Data source and Spark master, shown on every page; the choice persists across pages."""
    with st.sidebar:
        st.subheader("Data")
        full = full_dataset_path()
        options = [SAMPLE] + ([FULL] if full else []) + [UPLOAD, PATH]
        choice = st.radio("Data source", options, key="data_source", label_visibility="collapsed")
        path: str | None = None
        if choice == SAMPLE:
            path = str(default_source())
        elif choice == FULL:
            path = str(full)
        elif choice == UPLOAD:
            upload = st.file_uploader("FER2013 CSV (.csv or .csv.gz)", type=["csv", "gz"], key="data_upload")
            if upload is not None:
                path = str(_save_upload(upload.name, upload.getvalue()))
        else:
            typed = st.text_input(
                "CSV, CSV.gz or image folder", key="data_path", placeholder="/data/fer2013.csv"
            )
            path = typed.strip() or None
        st.subheader("Spark")
        master = st.text_input(
            "Master URL",
            key="spark_master",
            placeholder=resolve_master(),
            help="local[*], spark://host:7077, yarn …",
        )
    label = Path(path).name if path else "none yet"
    return DataChoice(path=path, label=label, spark_master=master.strip() or resolve_master())


def data_choice() -> DataChoice:
    """The data picked in the shared sidebar, which the entry script draws before every page. The
    first request of a fresh server for a page's URL runs that page without the entry script
    (Streamlit's pages/ folder mode): the page then draws the sidebar itself."""
    if DATA_CHOICE not in st.session_state:
        st.session_state[DATA_CHOICE] = sidebar()
    return st.session_state[DATA_CHOICE]


def _save_upload(name: str, content: bytes) -> Path:
    digest = hashlib.sha256(content).hexdigest()[:16]
    suffix = ".csv.gz" if name.lower().endswith(".gz") else ".csv"
    target = runs_dir() / "uploads" / f"{digest}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return target


def _stamp(path: str | Path) -> float:
    path = Path(path)
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_resource(show_spinner="Reading the data with Spark …", max_entries=3)
def _dataset(path: str, spark_master: str, stamp: float) -> Dataset:
    return load_dataset(path, spark_master=spark_master)


def get_dataset(choice: DataChoice) -> Dataset | None:
    """The chosen data set (cached per server), or None with a message on the page if unusable."""
    if choice.path is None:
        st.info("Choose a data file in the sidebar.")
        return None
    try:
        return _dataset(choice.path, choice.spark_master, _stamp(choice.path))
    except DataError as error:
        st.error(f"This data source cannot be used: {error}")
    except (PySparkException, Py4JError) as error:
        st.error(
            f"Spark could not read the data (master {choice.spark_master}): {str(error).splitlines()[0]}"
        )
    return None


@st.cache_resource(show_spinner="Loading the model …", max_entries=6)
def _model(path: str, stamp: float) -> LoadedModel:
    return load_model(path)


def get_model(path: str | Path) -> LoadedModel | None:
    """A model folder, loaded once per server; None with a message on the page if it is refused."""
    try:
        return _model(str(path), _stamp(Path(path) / "model.keras"))
    except ModelError as error:
        st.error(f"This model cannot be used: {error}")
        return None


def model_label(path: Path) -> str:
    """'default · seed · 51.2% PrivateTest' style label for a model folder."""
    try:
        card = read_card(path)
    except ModelError:
        return f"{path} (damaged)"
    name = "default" if path == DEFAULT_MODEL else (path.parent.name if path.name == "model" else path.name)
    accuracy = card.get("metrics", {}).get("PrivateTest", {}).get("accuracy")
    score = f" · {accuracy:.1%} PrivateTest" if accuracy is not None else ""
    return f"{name} · {card.get('preset', '?')}{score}"


def model_picker(key: str) -> LoadedModel | None:
    """A select box over every saved model (shipped and trained here); the choice is shared by pages."""
    paths = list_models()
    if not paths:
        st.warning("No model found: train one on the Train page.")
        return None
    labels = {str(path): model_label(path) for path in paths}
    current = st.session_state.get("model_path")
    index = list(labels).index(current) if current in labels else 0
    chosen = st.selectbox("Model", list(labels), index=index, format_func=labels.get, key=key)
    st.session_state["model_path"] = chosen
    return get_model(chosen)


TTA_LABELS = {"none": "Off", "flip": "Mirror", "crops": "Mirror + shifts"}


def tta_picker(loaded: LoadedModel | None, key: str, container=st) -> str:
    """Test-time augmentation for the predictions of a page, starting at the model's own setting."""
    own = loaded.tta if loaded is not None else "none"
    return container.selectbox(
        "Test-time augmentation",
        list(TTA_LABELS),
        index=list(TTA_LABELS).index(own),
        format_func=TTA_LABELS.get,
        # One widget per model, so that picking another model starts from that model's setting.
        key=f"{key}_{loaded.path if loaded is not None else ''}",
        help="Average each face's probabilities over its mirror image (2 views) or also over faces "
        f"shifted by a few pixels (10 views). This model's card uses: {TTA_LABELS[own]}.",
    )
