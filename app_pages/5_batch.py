"""Batch: every face of a folder of photos (on the server, or a zip upload) scored on Spark, in the
background, with Spark's progress; then the table, the emotions counted, and downloads."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from fer_core import batch, figures, jobs, ui
from fer_core.faces import DEFAULT_DETECTOR, DETECTORS

st.title("Batch")
choice = ui.data_choice()
st.caption(
    "Score every face of many photos on Spark (the master of the sidebar). The job runs in the "
    "background: leave the page or reload it, it goes on. For a whole archive, use "
    "`python -m fer_core batch FOLDER --out results.parquet --spark-master URL`."
)

ZIP, FOLDER = "Zip of photos", "Folder on the server"
source_kind = st.radio("Photos", [ZIP, FOLDER], horizontal=True, key="batch_source")
if source_kind == ZIP:
    upload = st.file_uploader("A zip of photos (folders inside are searched)", type=["zip"], key="batch_zip")
else:
    folder = st.text_input("Folder of photos", key="batch_folder", help="inside the server's data folders")
left, middle, right = st.columns(3)
with left:
    loaded = ui.model_picker("batch_model", fast=True)
detect = middle.toggle("Detect faces", True, key="batch_detect", help="off: each photo is one cropped face")
detector = right.selectbox(
    "Detector", DETECTORS, index=DETECTORS.index(DEFAULT_DETECTOR), key="batch_detector", disabled=not detect
)
name = st.text_input("Job name", f"batch-{dt.datetime.now():%Y%m%d-%H%M%S}", key="batch_name")

if st.button("Start the batch", type="primary", icon=":material/play_arrow:", key="batch_start"):
    try:
        if source_kind == ZIP:
            if upload is None:
                raise ValueError("upload a zip of photos first")
            source = batch.unpack_upload(upload.getvalue())
        else:
            source = batch.check_server_folder(folder)
        config = batch.BatchConfig(
            model=str(loaded.path) if loaded else None, detect=detect, detector=detector if detect else None
        )
        job = jobs.start_batch(source, name.strip(), config, spark_master=choice.spark_master)
    except jobs.JobBusy as busy:
        st.warning(f"Batch **{busy.job.name}** is running; wait for it to finish first.")
    except ValueError as error:
        st.error(f"This batch cannot start: {error}")
    else:
        st.session_state["last_batch"] = job.run_dir
        st.toast(f"Started {job.name}")

running = jobs.active_batch()


@st.fragment(run_every=2 if running else None)
def batch_panel() -> None:
    """The running job's progress, or the results of the last one."""
    running = jobs.active_batch()
    run_dir = running.run_dir if running else st.session_state.get("last_batch")
    if run_dir is None:
        newest = next(iter(jobs.batch_runs()), None)
        run_dir = str(newest) if newest else None
    if run_dir is None:
        st.caption("No batch has run on this server yet.")
        return
    name = run_dir.rsplit("/", 1)[-1]
    state = jobs.job_state(run_dir, running=running is not None and running.run_dir == run_dir)
    if running and running.run_dir == run_dir:
        st.session_state["batch_was_running"] = True
        text = f"**{name}**: {state.step:,} of {state.total_steps:,} Spark tasks"
        st.progress(state.fraction, text=text if state.total_steps else f"**{name}**: starting Spark …")
        return
    if st.session_state.pop("batch_was_running", False):
        st.rerun()  # the whole page, so that this panel stops polling
    if state.status != "done":
        reason = jobs.last_error(run_dir, jobs.BATCH_LOG) or f"the log {run_dir}/{jobs.BATCH_LOG} says why"
        st.error(f"**{name}** failed: {reason}")
        return
    results = ui.batch_results(run_dir)
    summary = batch.summarize(results)
    counts = {
        "Photos": summary.images,
        "Faces": summary.faces,
        "No face": summary.no_face,
        "Errors": summary.errors,
    }
    for column, (label, value) in zip(st.columns(len(counts)), counts.items(), strict=True):
        column.metric(label, f"{value:,}")
    st.caption(f"**{name}** · {state.elapsed_s:.0f} s on Spark")
    st.plotly_chart(figures.emotion_counts_bar(summary.emotions), width="stretch", key="batch_emotions")
    st.dataframe(results.head(1000), hide_index=True, width="stretch", key="batch_table")
    if len(results) > 1000:
        st.caption(f"The first 1,000 of {len(results):,} rows: download them all.")
    left, right = st.columns(2)
    left.download_button(
        "Download CSV",
        lambda: results.to_csv(index=False),
        file_name=f"{name}.csv",
        mime="text/csv",
        key="batch_csv",
        icon=":material/download:",
    )
    right.download_button(
        "Download Parquet",
        lambda: batch.parquet_bytes(results),
        file_name=f"{name}.parquet",
        mime="application/vnd.apache.parquet",
        key="batch_parquet",
        icon=":material/download:",
    )


st.subheader("Progress and results")
batch_panel()
