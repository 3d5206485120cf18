"""The dashboard's shared Streamlit pieces: the sidebar, cached data and models, model pickers.

This is the only module of fer_core that imports streamlit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException

from fer_core.artifacts import (
    DEFAULT_MODEL,
    LoadedModel,
    ModelError,
    default_model_path,
    fast_model_path,
    list_models,
    load_model,
    read_card,
    verified_card,
)
from fer_core.data import DataError, Dataset, default_source, full_dataset_path, load_dataset
from fer_core.launch import start_spark_quietly
from fer_core.server import (
    AccessError,
    allowed_data_path,
    allowed_master,
    data_roots,
    public_message,
    save_upload,
)
from fer_core.spark import error_summary, resolve_master

DATA_CHOICE = "data_choice"
SAMPLE, FULL, UPLOAD, PATH = "Shipped sample", "Full FER2013", "Upload a CSV", "Path on the server"


@dataclass(frozen=True)
class DataChoice:
    """The data source chosen in the sidebar: a path (None until an upload arrives or while the
    visitor's choice is refused, ``problem`` then saying why), its name for people, and the master."""

    path: str | None
    label: str
    spark_master: str
    problem: str | None = None


def sidebar() -> DataChoice:
    """Data source and Spark master, shown on every page; the choice persists across pages."""
    with st.sidebar:
        st.subheader("Data")
        full = full_dataset_path()
        options = [SAMPLE] + ([FULL] if full else []) + [UPLOAD, PATH]
        choice = st.radio("Data source", options, key="data_source", label_visibility="collapsed")
        path: str | None = None
        label: str | None = None
        path_problem: str | None = None
        if choice == SAMPLE:
            path = str(default_source())
        elif choice == FULL:
            path = str(full)
        elif choice == UPLOAD:
            upload = st.file_uploader("FER2013 CSV (.csv or .csv.gz)", type=["csv", "gz"], key="data_upload")
            if upload is not None:
                path, label = _stored_upload(upload), upload.name
        else:
            roots = [str(root) for root in data_roots()]
            typed = st.text_input(
                "CSV, CSV.gz or image folder",
                key="data_path",
                placeholder=f"{roots[0]}/fer2013.csv",
                help="A path under one of the data folders this server allows: " + ", ".join(roots),
            )
            if typed.strip():
                try:
                    path = str(allowed_data_path(typed))
                except AccessError as error:
                    path_problem = str(error)
                    st.error(path_problem)
        st.subheader("Spark")
        typed_master = st.text_input(
            "Master URL",
            key="spark_master",
            placeholder=resolve_master(),
            help="The Spark masters this server allows (set by FER_SPARK_MASTERS); empty: its default",
        )
        try:
            master = allowed_master(typed_master)
        except AccessError as error:
            master = resolve_master()
            st.error(f"{error}; using {master}")
    label = label or (Path(path).name if path else "none yet")
    return DataChoice(path=path, label=label, spark_master=master, problem=path_problem)


def data_choice() -> DataChoice:
    """The data picked in the shared sidebar, which the entry script draws before every page; a page
    run without the entry script (AppTest runs each page alone) draws the sidebar itself."""
    if DATA_CHOICE not in st.session_state:
        st.session_state[DATA_CHOICE] = sidebar()
    return st.session_state[DATA_CHOICE]


def _stored_upload(upload) -> str:
    """The server's copy of an uploaded data file, streamed to disk once per upload (not per rerun)."""
    stored = st.session_state.setdefault("stored_uploads", {})  # file id -> path, small strings
    if upload.file_id not in stored or not Path(stored[upload.file_id]).exists():
        upload.seek(0)
        stored.clear()  # one upload at a time: older ones are left to the clean-up
        stored[upload.file_id] = str(save_upload(upload, upload.name))
    return stored[upload.file_id]


def _stamp(path: str | Path) -> float:
    path = Path(path)
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_resource(show_spinner="Reading the data with Spark …", max_entries=3)
def _dataset(path: str, spark_master: str, stamp: float) -> Dataset:
    return load_dataset(path, spark_master=spark_master)


def get_dataset(choice: DataChoice) -> Dataset | None:
    """The chosen data set (cached per server), or None with a message on the page if unusable."""
    if choice.path is None:
        if choice.problem:
            st.error(f"This data source cannot be used: {choice.problem}")
        else:
            st.info("Choose a data file in the sidebar.")
        return None
    # Messages name the visitor's file (an upload's own name) and hide other server paths.
    names = {choice.path: choice.label}
    try:
        return _dataset(choice.path, choice.spark_master, _stamp(choice.path))
    except DataError as error:
        st.error(public_message(f"{choice.label} cannot be used: {error}", names))
    except (PySparkException, Py4JError) as error:
        st.error(
            public_message(
                f"Spark (master {choice.spark_master}) could not read {choice.label}: {error_summary(error)}",
                names,
            )
        )
    return None


@st.cache_resource(show_spinner="Loading the model …", max_entries=6)
def _model(path: str, stamp: float) -> LoadedModel:
    return load_model(path)


@st.cache_data(show_spinner=False, max_entries=12)
def _card(path: str, stamp: float) -> dict:
    return verified_card(path)


def get_card(path: str | Path) -> dict | None:
    """A model folder's card, its weights checked against it, without loading TensorFlow (for pages
    that describe a model); None with a message on the page if the folder is refused."""
    try:
        return _card(str(path), _stamp(Path(path) / "model.keras"))
    except (ModelError, OSError) as error:
        st.error(f"This model cannot be used: {public_message(str(error))}. Pick another model.")
        return None


def get_model(path: str | Path) -> LoadedModel | None:
    """A model folder, loaded once per server; None with a message on the page if it is refused."""
    try:
        return _model(str(path), _stamp(Path(path) / "model.keras"))
    except (ModelError, OSError) as error:
        st.error(f"This model cannot be used: {public_message(str(error))}. Pick another model.")
        return None


def warm_up() -> None:
    """Start, once per server process and in a background thread, what the first page views need:
    the default model (TensorFlow's import is most of its cost), the default data set (its Parquet
    cache, or a Spark read on a miss) and then the SparkSession itself. A page asking for the same
    model or data meanwhile waits for that work instead of repeating it; a page that needs neither
    never waits for it, and a cached data set never waits for Spark."""
    _warm_up_thread(str(default_model_path()), str(default_source()), resolve_master())


@st.cache_resource(show_spinner=False)
def _warm_up_thread(model_path: str, data_path: str, spark_master: str) -> threading.Thread:
    thread = threading.Thread(
        target=_warm_up, args=(model_path, data_path, spark_master), name="fer-warm-up", daemon=True
    )
    thread.start()
    return thread


def _warm_up(model_path: str, data_path: str, spark_master: str) -> None:
    # Failures are left for the pages to report: they call the same cached functions, which raise
    # again there with a message for the visitor (a failed call is not cached). The data comes first:
    # Home needs it (and the model's card, not the model); on an empty cache it is a Spark read, which
    # TensorFlow's import would slow down on a small machine.
    with contextlib.suppress(DataError, PySparkException, Py4JError, OSError):
        _dataset(data_path, spark_master, _stamp(data_path))
    with contextlib.suppress(ModelError, OSError):
        _model(model_path, _stamp(Path(model_path) / "model.keras"))
    start_spark_quietly(spark_master)


def model_label(path: Path) -> str:
    """'default · seed · 51.2% PrivateTest' style label for a model folder ('NAME (damaged)' if its card
    cannot be read)."""
    name = "default" if path == DEFAULT_MODEL else (path.parent.name if path.name == "model" else path.name)
    try:
        card = read_card(path)
    except (ModelError, OSError):
        return f"{name} (damaged)"
    accuracy = card.get("metrics", {}).get("PrivateTest", {}).get("accuracy")
    score = f" · {accuracy:.1%} PrivateTest" if accuracy is not None else ""
    return f"{name} · {card.get('preset', '?')}{score}"


def model_picker(key: str, *, fast: bool = False) -> LoadedModel | None:
    """A select box over every saved model (shipped and trained here). The choice is shared by the
    pages; with ``fast`` (pages that read many faces: video, batch) it is shared among those pages
    only and starts at :func:`fast_model_path`, the one-network lite model."""
    paths = list_models()
    if not paths:
        st.warning("No model found: train one on the Train page.")
        return None
    labels = {str(path): model_label(path) for path in paths}
    state = "fast_model_path" if fast else "model_path"
    current = st.session_state.get(state, str(fast_model_path()) if fast else None)
    index = list(labels).index(current) if current in labels else 0
    chosen = st.selectbox("Model", list(labels), index=index, format_func=labels.get, key=key)
    st.session_state[state] = chosen
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


@st.cache_data(show_spinner="Reading the results …", max_entries=4)
def _batch_results(path: str, source: str | None, stamp: float):
    from fer_core.batch import read_results

    return read_results(path, relative_to=source)


def batch_results(run_dir: str | Path):
    """The results table of a finished batch job of the dashboard (see
    :func:`fer_core.batch.read_results`), its paths relative to the input folder, cached per server."""
    from fer_core.jobs import BATCH_RESULTS, batch_source

    path = Path(run_dir) / BATCH_RESULTS
    return _batch_results(str(path), batch_source(run_dir), _stamp(path / "_SUCCESS"))


def _import_webrtc():
    """``streamlit_webrtc``, imported so that it works whether TensorFlow is loaded already or not.

    Its SRTP library (``pylibsrtp``) carries its own OpenSSL; loaded after TensorFlow, whose
    libraries put crypto functions of the same names in the global symbol table, it would call those
    and crash the process at start-up. Loaded with ``RTLD_DEEPBIND`` (Linux), it uses its own.
    """
    import sys

    if "pylibsrtp" not in sys.modules and hasattr(os, "RTLD_DEEPBIND"):
        flags = sys.getdlopenflags()
        sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
        try:
            import pylibsrtp  # noqa: F401
        finally:
            sys.setdlopenflags(flags)
    import streamlit_webrtc

    return streamlit_webrtc


CAMERA_CONSTRAINTS = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False}


def live_camera(session, key: str = "live_camera"):
    """The live camera view: the browser streams its camera to the server over WebRTC, each frame goes
    through ``session`` (a :class:`fer_core.video.LiveSession`, in streamlit-webrtc's worker thread,
    the newest frame first when processing falls behind) and streams back with its faces drawn.
    Returns the streamer's context (``.state.playing``).

    The ICE server list is empty: no STUN or TURN server, so nothing is fetched from the internet and
    the browser and the server pair their host addresses. aioice skips loopback addresses, so the
    server needs a network interface besides ``lo`` (any LAN or container address will do).
    """
    import av

    webrtc = _import_webrtc()

    def annotate(frame: av.VideoFrame) -> av.VideoFrame:
        annotated, _ = session.process(frame.to_ndarray(format="rgb24"))
        return av.VideoFrame.from_ndarray(annotated, format="rgb24")

    return webrtc.webrtc_streamer(
        key=key,
        mode=webrtc.WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": []},
        media_stream_constraints=CAMERA_CONSTRAINTS,
        video_frame_callback=annotate,
        async_processing=True,
    )
