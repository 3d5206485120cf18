"""Short videos and fake-camera files built at test time from the real photos in tests/data/photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = (640, 480)  # width, height: a webcam's


def canvas(image: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """An RGB photo scaled to fit ``size`` (width, height), centred on a dark gray frame."""
    import cv2

    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 40, np.uint8)
    top, left = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    return frame


def photo(photos: Path, name: str) -> np.ndarray:
    """One of the real photos as a 640 x 480 frame."""
    from fer_core.predict import read_image

    return canvas(read_image(photos / name))


def unsmiling_face(photos: Path) -> np.ndarray:
    """A 640 x 480 frame of one face of the 1927 Solvay photo (no one smiles there): the face the
    detector is surest of, with a margin, enlarged like a face in front of a webcam."""
    from fer_core.faces import detect_faces
    from fer_core.predict import read_image

    image = read_image(photos / "group_solvay_1927.jpg")
    best = max(detect_faces(image), key=lambda detection: detection.score)
    x, y, w, h = best.box
    margin = max(w, h) // 4
    return canvas(image[max(0, y - margin) : y + h + margin, max(0, x - margin) : x + w + margin])


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 10, fourcc: str = "mp4v") -> Path:
    """RGB frames to a video file with OpenCV (``mp4v`` mp4, ``VP80`` webm, ``MJPG`` avi)."""
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path.name}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """RGB frames to a YUV4MPEG2 file (4:2:0), the format Chromium's fake camera plays in a loop."""
    import cv2

    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path
