"""Video files and the live camera's session: clips built at test time from the real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clips import photo, unsmiling_face, write_clip
from streamlit.testing.v1 import AppTest

from fer_core import video
from fer_core.artifacts import fast_model_path, load_model
from fer_core.cli import main
from fer_core.emotions import EMOTIONS
from fer_core.video import (
    COLUMNS,
    FaceTracker,
    LiveSession,
    VideoConfig,
    VideoError,
    VideoReader,
    analyze_video,
    smooth_probabilities,
)

FAST = VideoConfig(fps=5, tta="none")


@pytest.fixture(scope="module")
def model():
    return load_model(fast_model_path())  # the model of video and the live camera (models/lite)


@pytest.fixture(scope="module")
def crowd_clip(tmp_path_factory, photos):
    """2.4 s at 10 frames/s: five faces for 1 s, a frame without a face for 0.4 s, the five again."""
    crowd, nobody = photo(photos, "multi_face.jpg"), photo(photos, "no_face.jpg")
    frames = [crowd] * 10 + [nobody] * 4 + [crowd] * 10
    return write_clip(tmp_path_factory.mktemp("clips") / "crowd.mp4", frames)


@pytest.fixture(scope="module")
def change_clip(tmp_path_factory, photos):
    """4 s of VP8 webm at 10 frames/s: a smiling face for 2 s, then an unsmiling one in its place."""
    frames = [photo(photos, "single_face.jpg")] * 20 + [unsmiling_face(photos)] * 20
    return write_clip(tmp_path_factory.mktemp("clips") / "change.webm", frames, fourcc="VP80")


@pytest.fixture(scope="module")
def crowd(crowd_clip, model):
    progress = []
    result = analyze_video(crowd_clip, model, FAST, progress=progress.append)
    return result, progress


def test_one_row_per_sampled_frame_and_face_with_timestamps(crowd):
    result, progress = crowd
    table = result.table
    assert list(table.columns) == list(COLUMNS)
    # 24 frames at 10/s sampled at 5/s: every other frame, stamped by the frames' own timestamps.
    frames = table.drop_duplicates("frame")
    assert frames["frame"].tolist() == list(range(0, 24, 2))
    np.testing.assert_allclose(frames["t_sec"], np.arange(12) * 0.2, atol=1e-3)
    assert result.duration_s == pytest.approx(2.4, abs=0.01)
    assert result.sampled_frames == 12 and result.frames_decoded == 24 and result.problem is None
    rows_per_frame = table.groupby("frame").size()
    assert rows_per_frame.loc[[10, 12]].tolist() == [1, 1]  # the frames without a face keep their row
    assert (rows_per_frame.drop([10, 12]) == 5).all()
    empty = table[table["frame"].isin([10, 12])]
    assert empty[["track", "x", "y", "w", "h", "emotion", "confidence"]].isna().all().all()
    probabilities = table.dropna(subset=["track"])[[f"p_{name}" for name in EMOTIONS]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    # A progress report per batch of 8 sampled frames, with the container's stated length.
    assert [report.frames for report in progress] == [8]
    assert progress[0].fraction == pytest.approx(1.4 / 2.4, abs=0.01)


def test_track_ids_hold_through_frames_without_the_faces(crowd):
    result, _ = crowd
    faces = result.table.dropna(subset=["track"])
    before, after = faces[faces["t_sec"] < 1.0], faces[faces["t_sec"] > 1.3]
    assert sorted(before["track"].unique()) == [1, 2, 3, 4, 5]
    # The same person (the same place) keeps the same id after 0.4 s without faces.
    place = {int(row.track): (row.x, row.y) for row in before.itertuples()}
    for row in after.itertuples():
        x, y = place[int(row.track)]
        assert abs(row.x - x) <= 3 and abs(row.y - y) <= 3
    assert [track.track for track in result.tracks] == [1, 2, 3, 4, 5]
    for track in result.tracks:
        assert (track.first_t, track.last_t, track.frames) == (0.0, pytest.approx(2.2), 10)
        assert track.emotion_share["happy"] >= 0.5  # five people smiling at the seaside
        assert sum(track.emotion_share.values()) == pytest.approx(1.0, abs=1e-3)
        assert track.thumbnail.ndim == 3 and max(track.thumbnail.shape[:2]) == 112


def test_json_summary_and_frames(crowd):
    result, _ = crowd
    summary = json.loads(json.dumps(result.to_dict()))
    assert {"video", "duration_s", "fps_sampled", "tracks", "frames"} <= set(summary)
    assert summary["video"] == "crowd.mp4" and summary["fps_sampled"] == 5
    assert [len(frame["faces"]) for frame in summary["frames"]] == [5] * 5 + [0, 0] + [5] * 5
    face = summary["frames"][0]["faces"][0]
    assert set(face) == {"track", "box", "emotion", "confidence", "probabilities"}
    assert set(summary["tracks"][0]) == {"track", "first_t", "last_t", "frames", "emotion_share"}
    assert set(summary["tracks"][0]["emotion_share"]) == set(EMOTIONS)


def test_an_expression_change_is_seen_and_the_annotated_copy_plays(change_clip, model, tmp_path):
    import cv2

    out = tmp_path / "annotated.webm"
    result = analyze_video(change_clip, model, FAST, annotated=out)
    faces = result.table.dropna(subset=["track"])
    assert faces["track"].nunique() == 1  # the second face takes the first one's place and id
    early, late = faces[faces["t_sec"] < 1.9], faces[faces["t_sec"] > 2.1]
    assert len(early) >= 9 and len(late) >= 9
    assert (early["emotion"] == "happy").mean() >= 0.8
    assert (late["emotion"] != "happy").mean() >= 0.8
    share = result.tracks[0].emotion_share
    assert 0.3 <= share["happy"] <= 0.7
    # Smoothing (for the charts) blurs the change and keeps the ends.
    smoothed = smooth_probabilities(faces, 0.5)
    assert smoothed["emotion"].iloc[0] == "happy" and smoothed["emotion"].iloc[-1] != "happy"
    assert np.abs(np.diff(smoothed["p_happy"])).max() < np.abs(np.diff(faces["p_happy"])).max()
    # The annotated copy: VP8 webm at the sampled rate, as long as the video.
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"VP80"
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    assert count == 20  # 4 s at 5 frames/s


def test_the_tracker_keeps_ids_for_its_grace_period_only():
    tracker = FaceTracker(iou_threshold=0.3, grace_s=0.5)
    left, right = (10, 10, 50, 50), (200, 10, 50, 50)
    assert tracker.update([left, right], 0.0) == [1, 2]
    assert tracker.update([(205, 12, 50, 50), (12, 10, 50, 50)], 0.2) == [2, 1]  # by overlap, not order
    assert tracker.update([], 0.4) == []
    assert tracker.update([left], 0.6) == [1]  # missed one frame: 0.4 s, within the grace period
    assert tracker.update([left, right], 0.9) == [1, 3]  # track 2 was gone for 0.7 s: a new id
    assert tracker.update([(400, 300, 20, 20)], 1.0) == [4]


def test_smoothing_is_centred_and_optional():
    times = np.arange(21) * 0.2
    happy = (times < 2.0).astype(float)
    table = pd.DataFrame({"t_sec": times, "frame": np.arange(21), "track": 1})
    for name in EMOTIONS:
        table[f"p_{name}"] = happy if name == "happy" else (1 - happy if name == "sad" else 0.0)
    table["emotion"] = np.where(happy > 0, "happy", "sad")
    table["confidence"] = 1.0
    assert smooth_probabilities(table, 0).equals(table)
    smoothed = smooth_probabilities(table, 0.4)
    # Centred: the crossing stays at the change (between 1.8 s and 2.0 s), no lag.
    assert smoothed.loc[smoothed["t_sec"] < 1.85, "emotion"].eq("happy").all()
    assert smoothed.loc[smoothed["t_sec"] > 1.95, "emotion"].eq("sad").all()
    np.testing.assert_allclose(smoothed[[f"p_{n}" for n in EMOTIONS]].sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="negative"):
        smooth_probabilities(table, -1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda data: b"", "is empty"),
        (lambda data: data[: len(data) // 2], "cannot be read as a video"),  # mp4 cut: no moov atom
        (lambda data: bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8)), "cannot be read"),
        (lambda data: b"this is not a video at all", "cannot be read as a video"),
    ],
    ids=["empty", "truncated", "random", "text"],
)
def test_unreadable_videos_get_one_clear_message(crowd_clip, model, tmp_path, make, message):
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(make(crowd_clip.read_bytes()))
    with pytest.raises(VideoError, match=message) as caught:
        analyze_video(bad, model, FAST)
    assert "holiday.mp4" in str(caught.value)


def test_a_video_cut_halfway_keeps_and_reports_what_was_read(change_clip, model, tmp_path):
    data = change_clip.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    result = analyze_video(cut, model, FAST)
    assert result.problem is not None and "truncated or damaged" in result.problem
    assert 0.5 < result.duration_s < 3.9
    assert result.sampled_frames == pytest.approx(result.duration_s * 5, abs=1)
    assert len(result.table.dropna(subset=["track"])) >= 2


def test_too_large_and_too_many_pixels_are_refused(crowd_clip, model, monkeypatch):
    monkeypatch.setattr(video, "MAX_VIDEO_BYTES", 1000)
    with pytest.raises(VideoError, match="larger than"):
        analyze_video(crowd_clip, model, FAST)
    monkeypatch.undo()
    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 320 * 240)
    with pytest.raises(VideoError, match="640 x 480 pixels"), VideoReader(crowd_clip):
        pass


def test_cli_writes_csv_and_json_and_exits_2_on_a_bad_video(crowd_clip, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert main(["video", str(crowd_clip), "--fps", "5", "--tta", "none", "--csv", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["frames"]) == 12 and len(summary["tracks"]) == 5
    rows = pd.read_csv(out)
    assert list(rows.columns) == list(COLUMNS) and len(rows) == 5 * 10 + 2
    assert rows["track"].isna().sum() == 2
    bad = tmp_path / "bad.webm"
    bad.write_bytes(b"not a video")
    assert main(["video", str(bad)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: bad.webm cannot be read")
    assert main(["video", str(crowd_clip), "--annotated", str(tmp_path / "out.mp4")]) == 2


def test_live_session_keeps_the_last_window_and_counts_frames_per_second(model, photos):
    session = LiveSession(model, window_s=1.0)
    frame = photo(photos, "single_face.jpg")
    for step in range(16):
        annotated, faces = session.process(frame, now=100.0 + step * 0.25)
        assert annotated.shape == frame.shape and not np.array_equal(annotated, frame)  # a box is drawn
        assert faces.tracks == [1]
    table = session.table()
    assert table["t_sec"].min() >= 3.75 - 1.0 - 1e-9 and table["t_sec"].max() == pytest.approx(3.75)
    assert (table["emotion"] == "happy").all()
    assert session.fps == pytest.approx(4.0)
    assert session.frames == 16


def test_video_page_runs_under_apptest():
    page = Path(__file__).resolve().parent.parent / "app_pages" / "6_video.py"
    at = AppTest.from_file(str(page), default_timeout=240).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Video"
    assert at.segmented_control(key="video_source").value == "Video file"
    assert at.slider(key="video_fps").value == 5
    assert "Upload a video" in at.info[0].value
