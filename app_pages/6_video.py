"""Video: a recording's faces followed over time (timelines, share of time per emotion, an annotated
copy), or the live camera with its faces labelled as they come."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import streamlit as st

from fer_core import figures, ui
from fer_core.faces import DEFAULT_DETECTOR, DETECTORS
from fer_core.video import (
    LIVE_CONFIG,
    LiveSession,
    VideoConfig,
    VideoError,
    VideoProgress,
    VideoResult,
    analyze_video,
    smooth_probabilities,
)

VIDEO_TYPES = ["mp4", "mov", "webm", "avi"]
RESULT, RESULT_KEY, FOLDER = "video_result", "video_result_key", "video_folder"

st.title("Video")
left, right = st.columns([3, 1])
with left:
    loaded = ui.model_picker("video_model", fast=True)
detector = right.selectbox(
    "Face detector", DETECTORS, index=DETECTORS.index(DEFAULT_DETECTOR), key="video_detector"
)
if loaded is None:
    st.stop()
source = st.segmented_control(
    "Source", ["Video file", "Live camera"], default="Video file", required=True, key="video_source"
)


def _analyze(upload, config: VideoConfig) -> VideoResult | str:
    """The upload read at ``config`` with a progress bar, or why it cannot be read; the annotated
    copy goes to this session's folder (the previous video's files are removed)."""
    old = st.session_state.pop(FOLDER, None)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix="fer-video-"))
    st.session_state[FOLDER] = str(folder)
    path = folder / f"upload{Path(upload.name).suffix.lower()}"
    path.write_bytes(upload.getbuffer())
    bar = st.progress(0.0, text=f"Reading {upload.name} …")

    def show(progress: VideoProgress) -> None:
        done = f"{progress.t_sec:.0f} s read, {progress.speed:.1f}x real time"
        bar.progress(progress.fraction or 0.0, text=f"Reading {upload.name}: {done}")

    try:
        return analyze_video(
            path, loaded, config, name=upload.name, annotated=folder / "annotated.webm", progress=show
        )
    except VideoError as error:
        return f"{error}. Try another file."
    finally:
        bar.empty()
        path.unlink(missing_ok=True)


def video_file() -> None:
    left, middle, right = st.columns(3)
    fps = left.slider("Frames read per second", 1, 15, 5, key="video_fps")
    tta = ui.tta_picker(loaded, "video_tta", middle)
    smoothing = right.slider(
        "Smoothing of the charts (s)", 0.0, 3.0, 1.0, 0.25, key="video_smoothing",
        help="A Gaussian average over time of each face's probabilities; the CSV keeps the raw values",
    )  # fmt: skip
    upload = st.file_uploader("A video (mp4, mov, webm, avi)", type=VIDEO_TYPES, key="video_upload")
    if upload is None:
        st.info("Upload a video with faces: every face is followed through it.")
        return
    config = VideoConfig(fps=fps, detector=detector, tta=tta)
    key = (upload.file_id, str(loaded.path), config)
    if st.session_state.get(RESULT_KEY) != key:
        st.session_state[RESULT] = _analyze(upload, config)
        st.session_state[RESULT_KEY] = key
    result: VideoResult | str = st.session_state[RESULT]
    if isinstance(result, str):
        st.error(result)
        return
    if result.problem:
        st.warning(f"{result.problem}. The results cover the part that was read.")
    columns = st.columns(4)
    columns[0].metric("Length read", f"{result.duration_s:.1f} s")
    columns[1].metric("Frames read", f"{result.sampled_frames:,}")
    columns[2].metric("Faces followed", len(result.tracks))
    columns[3].metric("Speed", f"{result.speed:.1f}x real time", help=f"{result.seconds:.1f} s of processing")
    video_column, download_column = st.columns([3, 1])
    if result.annotated and result.annotated.exists():
        video_column.video(str(result.annotated), format="video/webm")
    download_column.download_button(
        "Rows (CSV)",
        result.table.to_csv(index=False, float_format="%.4f"),
        f"{Path(result.video).stem}_emotions.csv",
        "text/csv",
        key="video_csv",
    )
    download_column.download_button(
        "Summary (JSON)",
        json.dumps(result.to_dict()),
        f"{Path(result.video).stem}_emotions.json",
        "application/json",
        key="video_json",
    )
    if not result.tracks:
        st.warning("No face was found in the frames read.")
    smoothed = smooth_probabilities(result.table, smoothing)
    for track in result.tracks:
        st.divider()
        st.subheader(f"Face {track.track}")
        st.caption(f"seen from {track.first_t:.1f} s to {track.last_t:.1f} s, in {track.frames} frames")
        picture, share, timeline = st.columns([1, 2, 5])
        picture.image(track.thumbnail, caption=f"face {track.track}", width=112)
        share.markdown("**Share of time**")
        share.plotly_chart(
            figures.emotion_share_bars(track.emotion_share), width="stretch", key=f"video_share_{track.track}"
        )
        timeline.plotly_chart(
            figures.emotion_timeline(smoothed[smoothed["track"] == track.track], 1 / result.fps_sampled),
            width="stretch",
            key=f"video_timeline_{track.track}",
        )


def live_camera() -> None:
    st.caption(
        "Press Start: your camera streams to the server (WebRTC, no outside server involved) and comes "
        "back with every face boxed and labelled. If the camera cannot be used here, take snapshots on "
        "the Predict page."
    )
    own = ui.TTA_LABELS[loaded.tta].lower()
    tta = None if st.toggle(f"Test-time augmentation ({own}; slower)", key="live_tta") else "none"
    config = dataclasses.replace(LIVE_CONFIG, detector=detector, tta=tta)
    session: LiveSession | None = st.session_state.get("live_session")
    if session is None or session.loaded is not loaded or session.config != config:
        session = st.session_state["live_session"] = LiveSession(loaded, config)
    camera_column, timeline_column = st.columns([1, 1])
    with camera_column:
        streamer = ui.live_camera(session)

    @st.fragment(run_every=3 if streamer is not None and streamer.state.playing else None)
    def timeline_panel() -> None:
        """The last minute, redrawn every three seconds while the camera runs."""
        table = session.table()
        if table.empty:
            st.caption("The timeline of the last minute appears here.")
            return
        st.markdown(f"**Last minute** · {session.fps:.1f} annotated frames/s · {session.frames:,} frames")
        st.download_button(  # the CSV is made when asked for, not at every redraw
            "Last minute (CSV)",
            lambda: session.table().to_csv(index=False, float_format="%.4f"),
            "camera_emotions.csv",
            "text/csv",
            key="live_csv",
        )
        faces = table.dropna(subset=["track"])
        if faces.empty:
            st.caption("No face in the last minute.")
            return
        track = faces["track"].value_counts().index[0]  # the face seen most
        st.caption(f"Face {track}, smoothed over half a second")
        smoothed = smooth_probabilities(table[table["track"] == track], 0.5)
        st.plotly_chart(figures.emotion_timeline(smoothed), width="stretch", key="live_timeline")

    with timeline_column:
        timeline_panel()


if source == "Live camera":
    live_camera()
else:
    video_file()
