"""Video: the faces of a recording or a live camera, tracked over time, with their emotions per frame.

A video is read with OpenCV (its FFmpeg build decodes H.264/HEVC in mp4/mov, VP8/VP9 in webm and
MPEG-4 Part 2, not AV1). Frames are sampled at a fixed rate by their timestamps, never by the
container's frame count or rate, which browser-recorded webm files get wrong. Each sampled frame
goes through the photo path (:mod:`fer_core.faces` detection and alignment, calibrated probabilities
from :func:`fer_core.predict.predict_faces`), the faces of several frames in one model call, and a
small IoU tracker gives each face an id that holds through a few missed frames.

The result is a table with one row per sampled frame and face (:data:`COLUMNS`), and one row with
empty face fields for a sampled frame without a face, so that time is never lost.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer_core.artifacts import LoadedModel, staged
from fer_core.emotions import EMOTIONS
from fer_core.faces import DEFAULT_DETECTOR, DETECTORS, align_faces, detect_faces
from fer_core.predict import Face, predict_faces, to_gray

PROBABILITY_COLUMNS = tuple(f"p_{name}" for name in EMOTIONS)
FACE_COLUMNS = ("track", "x", "y", "w", "h", "emotion", "confidence", *PROBABILITY_COLUMNS)
COLUMNS = ("t_sec", "frame", *FACE_COLUMNS)
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v")
MAX_VIDEO_BYTES = 400 * 2**20  # the dashboard's upload limit (server.maxUploadSize)
MAX_FRAME_PIXELS = 3840 * 2160  # 4K; larger frames are refused rather than risking memory
ANNOTATED_FOURCC = "VP80"  # VP8 in webm plays in every browser and encodes 3x faster than VP9 here
ANNOTATED_MAX_SIDE = 1280  # annotated copies of larger videos are scaled down to this


class VideoError(ValueError):
    """A file that cannot be read as a video; the message is meant for the person who sent it."""


@dataclass(frozen=True)
class VideoConfig:
    """How a video is read; drives the CLI (``python -m fer_core video``), the Video page and tests.

    ``fps`` frames per second are sampled by timestamp; ``detector`` is one of
    :data:`fer_core.faces.DETECTORS`; ``tta`` overrides the model's test-time augmentation (``none``
    is fastest). A face matches the track whose last box overlaps it by ``iou_threshold`` (IoU) or
    more; a track missing from frames for up to ``grace_s`` seconds keeps its id. Frames larger than
    ``detect_max_side`` are scaled down for detection only (crops come from the full frame).
    """

    fps: float = 5.0
    detector: str = DEFAULT_DETECTOR
    tta: str | None = None
    iou_threshold: float = 0.3
    grace_s: float = 1.0
    detect_max_side: int = 1280
    frames_per_batch: int = 8  # sampled frames whose faces share one model call
    max_duration_s: float = 3600.0  # reading stops there, keeping what was read

    def __post_init__(self) -> None:
        if not (0 < self.fps <= 60):
            raise ValueError(f"fps must be above 0 and at most 60, got {self.fps}")
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        if not (0 < self.iou_threshold <= 1):
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.grace_s < 0:
            raise ValueError(f"grace_s must not be negative, got {self.grace_s}")
        if self.frames_per_batch < 1:
            raise ValueError(f"frames_per_batch must be at least 1, got {self.frames_per_batch}")

    @property
    def interval_s(self) -> float:
        return 1.0 / self.fps


# --- tracking ---------------------------------------------------------------------------------


def box_iou(first: tuple[int, int, int, int], second: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes, in 0..1."""
    x0, y0 = max(first[0], second[0]), max(first[1], second[1])
    x1 = min(first[0] + first[2], second[0] + second[2])
    y1 = min(first[1] + first[3], second[1] + second[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = first[2] * first[3] + second[2] * second[3] - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Track ids for the faces of successive frames: each box takes the free track it overlaps most
    (IoU at least ``iou_threshold``, best pairs first); a track unseen for more than ``grace_s``
    seconds ends; a box without a match starts a new track. Ids count from 1 and are never reused."""

    def __init__(self, iou_threshold: float = 0.3, grace_s: float = 1.0):
        self.iou_threshold = iou_threshold
        self.grace_s = grace_s
        self._tracks: dict[int, tuple[tuple[int, int, int, int], float]] = {}  # id -> (box, last seen)
        self._next_id = 1

    def update(self, boxes: list[tuple[int, int, int, int]], t_sec: float) -> list[int]:
        """The track id of each box of the frame at ``t_sec``, in the order of ``boxes``."""
        alive = {
            track: state for track, state in self._tracks.items() if t_sec - state[1] <= self.grace_s + 1e-6
        }
        pairs = sorted(
            (
                (box_iou(box, last_box), track, index)
                for index, box in enumerate(boxes)
                for track, (last_box, _) in alive.items()
            ),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, track, index in pairs:
            if overlap < self.iou_threshold:
                break
            if ids[index] is None and track not in taken:
                ids[index] = track
                taken.add(track)
        for index, box in enumerate(boxes):
            if ids[index] is None:
                ids[index] = self._next_id
                self._next_id += 1
            alive[ids[index]] = (box, t_sec)
        self._tracks = alive
        return [int(track) for track in ids]


# --- reading faces from frames ----------------------------------------------------------------


@dataclass(frozen=True)
class FrameFaces:
    """The faces of one sampled frame: time in seconds from the first frame, the decoded frame's
    index, its faces (:class:`fer_core.predict.Face`) and their track ids."""

    t_sec: float
    frame: int
    faces: list[Face]
    tracks: list[int]

    def rows(self) -> list[dict]:
        """Table rows (:data:`COLUMNS`): one per face, or one with empty face fields."""
        if not self.faces:
            return [{"t_sec": self.t_sec, "frame": self.frame}]
        return [
            {
                "t_sec": self.t_sec,
                "frame": self.frame,
                "track": track,
                "x": face.box[0],
                "y": face.box[1],
                "w": face.box[2],
                "h": face.box[3],
                "emotion": face.emotion,
                "confidence": face.confidence,
                **{
                    column: float(p)
                    for column, p in zip(PROBABILITY_COLUMNS, face.probabilities, strict=True)
                },
            }
            for face, track in zip(self.faces, self.tracks, strict=True)
        ]


class FrameReader:
    """Detects, tracks and reads the faces of successive RGB frames (a video's, or a camera's).

    The frames of one :meth:`read` call share one model call; the tracker carries over between calls.
    """

    def __init__(self, loaded: LoadedModel, config: VideoConfig | None = None):
        self.loaded = loaded
        self.config = config or VideoConfig()
        self.tracker = FaceTracker(self.config.iou_threshold, self.config.grace_s)

    def read(self, frames: list[np.ndarray], times: list[float], indices: list[int]) -> list[FrameFaces]:
        """The faces of RGB uint8 (H, W, 3) ``frames`` taken at ``times`` (seconds, increasing)."""
        config = self.config
        found = []  # (detections, track ids, crops) per frame
        for rgb, t_sec in zip(frames, times, strict=True):
            scale = min(1.0, config.detect_max_side / max(rgb.shape[:2]))
            detections = detect_faces(rgb, config.detector, upscale=scale)
            tracks = self.tracker.update([detection.box for detection in detections], t_sec)
            found.append((detections, tracks, align_faces(to_gray(rgb), detections)))
        crops = [frame_crops for *_, frame_crops in found]
        probabilities = predict_faces(self.loaded, np.concatenate(crops), tta=config.tta)
        threshold = self.loaded.calibration.uncertain_below
        results, start = [], 0
        for (detections, tracks, frame_crops), t_sec, index in zip(found, times, indices, strict=True):
            chunk = probabilities[start : start + len(frame_crops)]
            start += len(frame_crops)
            faces = [
                Face(detection.box, crop, p, detection.landmarks, bool(p.max() < threshold))
                for detection, crop, p in zip(detections, frame_crops, chunk, strict=True)
            ]
            results.append(FrameFaces(round(float(t_sec), 3), int(index), faces, tracks))
        return results


def annotate(rgb: np.ndarray, frame: FrameFaces) -> np.ndarray:
    """A copy of an RGB frame with each face's box, landmarks, track id, emotion and confidence."""
    from fer_core.figures import draw_faces

    return draw_faces(rgb, frame.faces, numbers=frame.tracks)


def empty_table() -> pd.DataFrame:
    """A video table without rows, with :data:`COLUMNS` and their types."""
    return to_table([])


def to_table(rows: list[dict]) -> pd.DataFrame:
    """The rows of :meth:`FrameFaces.rows` as a table with :data:`COLUMNS`; the face fields of a
    frame without a face are empty (integers are pandas' nullable ``Int64``)."""
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    types = {"t_sec": "float64", "frame": "int64", "emotion": "object", "confidence": "float64"}
    types |= {column: "Int64" for column in ("track", "x", "y", "w", "h")}
    types |= dict.fromkeys(PROBABILITY_COLUMNS, "float64")
    return table.astype(types)


# --- reading a video file ---------------------------------------------------------------------


@dataclass(frozen=True)
class VideoProgress:
    """How far a video has been read: ``t_sec`` seconds of video, out of the container's stated
    ``duration_s`` (None when it does not say, as for browser-recorded webm)."""

    t_sec: float
    duration_s: float | None
    frames: int  # sampled frames read
    elapsed_s: float

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.t_sec / self.duration_s) if self.duration_s else None

    @property
    def speed(self) -> float:
        """Seconds of video per second of processing (1.0 is real time)."""
        return self.t_sec / self.elapsed_s if self.elapsed_s > 0 else 0.0


class VideoReader:
    """The frames of a video file sampled by timestamp. Open it with ``with``; after :meth:`sample`
    ran, ``duration_s`` is the length actually read and ``problem`` says why reading stopped early
    (None when the whole video was read)."""

    def __init__(self, path: str | os.PathLike, name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.name
        self.capture = None
        self.width = self.height = 0
        self.stated_fps = 0.0
        self.stated_duration_s: float | None = None
        self.duration_s = 0.0
        self.frames_decoded = 0
        self.problem: str | None = None

    def __enter__(self) -> VideoReader:
        # FFmpeg's own complaints about a bad file would go to stderr; VideoError says it once.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        import cv2

        if not self.path.is_file():
            raise VideoError(f"{self.name} does not exist or is not a file")
        size = self.path.stat().st_size
        if size == 0:
            raise VideoError(f"{self.name} is empty")
        if size > MAX_VIDEO_BYTES:
            raise VideoError(f"{self.name} is larger than {MAX_VIDEO_BYTES // 2**20} MB")
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not capture.isOpened():
            capture.release()
            raise VideoError(
                f"{self.name} cannot be read as a video: it is damaged, truncated, or not a video in a "
                "format we can read (mp4 or mov with H.264/HEVC, webm with VP8/VP9, avi with MPEG-4; not AV1)"
            )
        self.capture = capture
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self.width * self.height > MAX_FRAME_PIXELS:
            self.close()
            raise VideoError(
                f"{self.name} is {self.width} x {self.height} pixels; the limit is 3840 x 2160 (4K)"
            )
        self.stated_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = float(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        stated = count / self.stated_fps if self.stated_fps > 0 and count > 0 else 0.0
        # Only a plausible length is kept: webm files from browsers state none, or a wrong one.
        self.stated_duration_s = stated if 0 < stated < 48 * 3600 else None
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None

    def sample(self, fps: float, max_duration_s: float = math.inf) -> Iterator[tuple[int, float, np.ndarray]]:
        """(decoded frame index, seconds from the first frame, RGB uint8 frame) at ``fps`` frames a
        second: the first frame at or after each multiple of 1 / ``fps``. Frames in between are
        decoded but not converted."""
        import cv2

        if self.capture is None:
            raise RuntimeError("open the VideoReader with `with` first")
        capture = self.capture
        fallback_step = 1.0 / self.stated_fps if 0 < self.stated_fps <= 240 else 1 / 30
        first = previous = None
        step = fallback_step
        next_t = 0.0
        index = -1
        while True:
            try:
                if not capture.grab():
                    break
            except cv2.error as error:
                self.problem = f"decoding failed after {self.duration_s:.1f} s ({error.err})"
                break
            index += 1
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if first is None:
                first = stamp
            t_sec = stamp - first
            if previous is not None:
                # A frame without a usable timestamp (none, or not after the last) follows at one step.
                t_sec = t_sec if t_sec > previous else previous + step
                step = t_sec - previous
            if t_sec > max_duration_s:
                self.problem = f"only the first {max_duration_s:.0f} s were read (the limit)"
                break
            previous = t_sec
            self.frames_decoded = index + 1
            self.duration_s = t_sec + step
            if t_sec + 1e-3 < next_t:
                continue
            next_t = (math.floor(t_sec * fps + 1e-3) + 1) / fps
            ok, bgr = capture.retrieve()
            if not ok or bgr is None:
                self.problem = f"a frame at {t_sec:.1f} s could not be decoded"
                break
            yield index, t_sec, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.frames_decoded == 0:
            raise VideoError(
                f"no frame of {self.name} could be decoded: it is truncated or damaged, or its codec is "
                "one we cannot decode (AV1)"
            )
        stated = self.stated_duration_s
        if self.problem is None and stated and self.duration_s < 0.9 * stated - 0.5:
            self.problem = (
                f"the video stops being readable at {self.duration_s:.1f} s of its {stated:.1f} s; "
                "it may be truncated or damaged"
            )


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackSummary:
    """One face followed through a video: when it was seen, in how many sampled frames, the share
    of those frames per (raw) top emotion, and an RGB uint8 thumbnail from its largest sighting."""

    track: int
    first_t: float
    last_t: float
    frames: int
    emotion_share: dict[str, float]
    thumbnail: np.ndarray

    def to_dict(self) -> dict:
        return {
            "track": self.track,
            "first_t": self.first_t,
            "last_t": self.last_t,
            "frames": self.frames,
            "emotion_share": self.emotion_share,
        }


@dataclass(frozen=True)
class VideoResult:
    """What a video gave: its table (:data:`COLUMNS`), its tracks, the length read and sampled rate,
    why reading stopped early (``problem``, None if it did not), and the annotated copy if written."""

    video: str
    duration_s: float
    fps_sampled: float
    table: pd.DataFrame
    tracks: list[TrackSummary]
    frames_decoded: int
    seconds: float  # processing time
    problem: str | None = None
    annotated: Path | None = None

    @property
    def sampled_frames(self) -> int:
        return int(self.table["frame"].nunique())

    @property
    def speed(self) -> float:
        """Seconds of video per second of processing (1.0 is real time)."""
        return self.duration_s / self.seconds if self.seconds > 0 else 0.0

    def frames(self) -> list[dict]:
        """Each sampled frame with its faces, for JSON."""
        frames = []
        for (t_sec, frame), rows in self.table.groupby(["t_sec", "frame"], sort=True):
            faces = [
                {
                    "track": int(row.track),
                    "box": [int(row.x), int(row.y), int(row.w), int(row.h)],
                    "emotion": row.emotion,
                    "confidence": round(float(row.confidence), 4),
                    "probabilities": {
                        name: round(float(getattr(row, column)), 4)
                        for name, column in zip(EMOTIONS, PROBABILITY_COLUMNS, strict=True)
                    },
                }
                for row in rows.itertuples()
                if not pd.isna(row.track)
            ]
            frames.append({"t_sec": float(t_sec), "frame": int(frame), "faces": faces})
        return frames

    def to_dict(self) -> dict:
        return {
            "video": self.video,
            "duration_s": round(self.duration_s, 3),
            "fps_sampled": self.fps_sampled,
            "problem": self.problem,
            "tracks": [track.to_dict() for track in self.tracks],
            "frames": self.frames(),
        }


def summarize_tracks(table: pd.DataFrame, thumbnails: dict[int, np.ndarray]) -> list[TrackSummary]:
    """A :class:`TrackSummary` per track of a video table, in order of appearance."""
    faces = table.dropna(subset=["track"])
    summaries = []
    for track, rows in faces.groupby("track", sort=False):
        counts = rows["emotion"].value_counts()
        share = {name: round(float(counts.get(name, 0)) / len(rows), 4) for name in EMOTIONS}
        summaries.append(
            TrackSummary(
                track=int(track),
                first_t=float(rows["t_sec"].min()),
                last_t=float(rows["t_sec"].max()),
                frames=len(rows),
                emotion_share=share,
                thumbnail=thumbnails.get(int(track), np.zeros((1, 1, 3), np.uint8)),
            )
        )
    return sorted(summaries, key=lambda summary: (summary.first_t, summary.track))


def _thumbnail(rgb: np.ndarray, box: tuple[int, int, int, int], side: int = 112) -> np.ndarray:
    import cv2

    x, y, w, h = box
    margin = round(0.2 * max(w, h))
    x0, y0 = max(0, x - margin), max(0, y - margin)
    crop = rgb[y0 : y + h + margin, x0 : x + w + margin]
    scale = side / max(crop.shape[:2])
    return cv2.resize(
        crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )


class _AnnotatedWriter:
    """The annotated copy: VP8 webm at the sampled rate, each sampled frame held until the next one
    so that the copy lasts as long as the video."""

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.fps = fps
        self.writer = None
        self.size: tuple[int, int] | None = None
        self.written = 0
        self.last: np.ndarray | None = None

    def write(self, rgb: np.ndarray, t_sec: float) -> None:
        import cv2

        if self.writer is None:
            height, width = rgb.shape[:2]
            scale = min(1.0, ANNOTATED_MAX_SIDE / max(height, width))
            # VP8 wants even sides.
            self.size = (max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2))
            fourcc = cv2.VideoWriter_fourcc(*ANNOTATED_FOURCC)
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise VideoError(f"the annotated video {self.path.name} cannot be written (VP8 webm)")
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if bgr.shape[1::-1] != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        slot = round(t_sec * self.fps)
        while self.last is not None and self.written < slot:
            self.writer.write(self.last)
            self.written += 1
        self.writer.write(bgr)
        self.written += 1
        self.last = bgr

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


@contextlib.contextmanager
def _annotated_output(path: Path | None, fps: float) -> Iterator[_AnnotatedWriter | None]:
    """The writer of the annotated copy (None without a path); the file appears only once complete."""
    if path is None:
        yield None
        return
    with staged(path) as temporary:
        writer = _AnnotatedWriter(temporary, fps)
        try:
            yield writer
        finally:
            writer.close()


class _Collector:
    """What the batches of sampled frames add up to: table rows, sampled frames, and per track the
    thumbnail of its largest face."""

    def __init__(self, reader: FrameReader, writer: _AnnotatedWriter | None):
        self.reader = reader
        self.writer = writer
        self.rows: list[dict] = []
        self.frames = 0
        self.thumbnails: dict[int, tuple[int, np.ndarray]] = {}  # track -> (face area, thumbnail)

    def add(self, batch: list[tuple[int, float, np.ndarray]]) -> None:
        indices, times, images = (list(values) for values in zip(*batch, strict=True))
        for rgb, frame in zip(images, self.reader.read(images, times, indices), strict=True):
            self.rows.extend(frame.rows())
            self.frames += 1
            for face, track in zip(frame.faces, frame.tracks, strict=True):
                area = face.box[2] * face.box[3]
                if area > self.thumbnails.get(track, (0, None))[0]:
                    self.thumbnails[track] = (area, _thumbnail(rgb, face.box))
            if self.writer is not None:
                self.writer.write(annotate(rgb, frame), frame.t_sec)


def analyze_video(
    path: str | os.PathLike,
    loaded: LoadedModel,
    config: VideoConfig | None = None,
    *,
    name: str | None = None,
    annotated: str | os.PathLike | None = None,
    progress: Callable[[VideoProgress], None] | None = None,
) -> VideoResult:
    """Read a video file: the faces of its frames sampled at ``config.fps``, tracked and scored.

    ``annotated`` (a ``.webm`` path) also writes a VP8 copy at the sampled rate with each face's box,
    track id, emotion and confidence drawn. ``progress`` is called after each batch of frames.
    Raises :class:`VideoError` for a file that is not a readable video (empty, too large,
    undecodable, or truncated before its first frame); a video that goes bad part-way keeps what
    was read and says so in ``problem``. ``name`` is the video's name in messages and the summary.
    """
    config = config or VideoConfig()
    annotated_path = Path(annotated) if annotated else None
    if annotated_path is not None and annotated_path.suffix.lower() != ".webm":
        raise VideoError(f"the annotated video must be a .webm file (VP8), got {annotated_path.name}")
    start = time.perf_counter()
    with VideoReader(path, name) as video, _annotated_output(annotated_path, config.fps) as writer:
        collector = _Collector(FrameReader(loaded, config), writer)
        batch: list[tuple[int, float, np.ndarray]] = []
        for sampled in video.sample(config.fps, config.max_duration_s):
            batch.append(sampled)
            if len(batch) < config.frames_per_batch:
                continue
            collector.add(batch)
            if progress is not None:
                elapsed = time.perf_counter() - start
                progress(VideoProgress(batch[-1][1], video.stated_duration_s, collector.frames, elapsed))
            batch = []
        if batch:
            collector.add(batch)
    table = to_table(collector.rows)
    thumbnails = {track: thumbnail for track, (_, thumbnail) in collector.thumbnails.items()}
    return VideoResult(
        video=video.name,
        duration_s=round(video.duration_s, 3),
        fps_sampled=config.fps,
        table=table,
        tracks=summarize_tracks(table, thumbnails),
        frames_decoded=video.frames_decoded,
        seconds=time.perf_counter() - start,
        problem=video.problem,
        annotated=annotated_path,
    )


# --- smoothing and the live camera -----------------------------------------------------------


def smooth_probabilities(table: pd.DataFrame, seconds: float = 1.0) -> pd.DataFrame:
    """A copy of a video table whose probabilities are averaged over time, per track, with a
    Gaussian window of standard deviation ``seconds`` (centred: no lag); emotion and confidence
    follow the smoothed values. ``seconds`` = 0 gives an unchanged copy. Rows without a face stay."""
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds}")
    smoothed = table.copy()
    if seconds == 0 or smoothed.empty:
        return smoothed
    columns = list(PROBABILITY_COLUMNS)
    for _, rows in smoothed.dropna(subset=["track"]).groupby("track"):
        times = rows["t_sec"].to_numpy(float)
        values = rows[columns].to_numpy(float)
        averaged = np.empty_like(values)
        low = np.searchsorted(times, times - 3 * seconds, side="left")
        high = np.searchsorted(times, times + 3 * seconds, side="right")
        for row, (begin, end) in enumerate(zip(low, high, strict=True)):
            weights = np.exp(-0.5 * ((times[begin:end] - times[row]) / seconds) ** 2)
            averaged[row] = weights @ values[begin:end] / weights.sum()
        smoothed.loc[rows.index, columns] = averaged
        smoothed.loc[rows.index, "emotion"] = [EMOTIONS[i] for i in averaged.argmax(axis=1)]
        smoothed.loc[rows.index, "confidence"] = averaged.max(axis=1)
    return smoothed


class LiveTimeline:
    """The table rows of a live camera's last ``window_s`` seconds, oldest first."""

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self._rows: deque[dict] = deque()

    def add(self, frame: FrameFaces) -> None:
        self._rows.extend(frame.rows())
        while self._rows and self._rows[0]["t_sec"] < frame.t_sec - self.window_s:
            self._rows.popleft()

    def __len__(self) -> int:
        return len(self._rows)

    def table(self) -> pd.DataFrame:
        return to_table(list(self._rows))


# A live camera's settings: no test-time augmentation, detection at 320 pixels (a webcam's faces are
# large; RetinaFace is 4x faster there than at 640), and tracks that survive a slower second.
LIVE_CONFIG = VideoConfig(tta="none", grace_s=2.0, detect_max_side=320)


class LiveSession:
    """A live camera: frames read one at a time as they come, with the tracker, the rows of the last
    ``window_s`` seconds, and the rate of annotated frames over the last ``rate_frames`` frames.

    :meth:`process` may run in one thread (a video stream's worker) while :meth:`table` and
    :attr:`fps` are read from another.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        config: VideoConfig | None = None,
        window_s: float = 60.0,
        rate_frames: int = 20,
    ):
        self.reader = FrameReader(loaded, config or LIVE_CONFIG)
        self.timeline = LiveTimeline(window_s)
        self.frames = 0
        self._started: float | None = None
        self._times: deque[float] = deque(maxlen=rate_frames)
        self._lock = threading.Lock()

    @property
    def loaded(self) -> LoadedModel:
        return self.reader.loaded

    @property
    def config(self) -> VideoConfig:
        return self.reader.config

    def process(self, rgb: np.ndarray, now: float | None = None) -> tuple[np.ndarray, FrameFaces]:
        """The annotated copy of one RGB uint8 camera frame and its faces; ``now`` is a monotonic
        time in seconds (default: :func:`time.monotonic`)."""
        with self._lock:
            now = time.monotonic() if now is None else now
            if self._started is None:
                self._started = now
            (frame,) = self.reader.read([rgb], [now - self._started], [self.frames])
            self.frames += 1
            self.timeline.add(frame)
            self._times.append(now)
        return annotate(rgb, frame), frame

    def table(self) -> pd.DataFrame:
        """The rows of the last ``window_s`` seconds (:data:`COLUMNS`), ``t_sec`` from the first frame."""
        with self._lock:
            return self.timeline.table()

    @property
    def fps(self) -> float:
        """Annotated frames per second, over the last few frames."""
        with self._lock:
            times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])
