"""Video speed: seconds of video read per second of processing, and the live camera's frame rate.

    python -m bench.video [--model models/lite] [--seconds 20] [--fps 5] [--no-browser]

A clip of ``--seconds`` at 30 frames/s, 640 x 480, one face (the smiling face of
tests/data/photos/single_face.jpg for the first half, an unsmiling face of the 1927 Solvay photo for the
second), is read by :func:`fer_core.video.analyze_video` at ``--fps`` sampled frames per second: with
the model's own test-time augmentation and with none, with and without the annotated VP8 copy. A
ratio of 1.0 or more is real time.

The live frame rate is measured twice: the camera path alone (:class:`fer_core.video.LiveSession` on
640 x 480 frames, as fast as it goes, for 20 s), and end to end: ``streamlit run`` and Chromium with a
fake camera playing the same face at 30 frames/s, the Video page's live camera over WebRTC for 30 s
(``--no-browser`` skips it). Annotated frames per second, counted by the session on the server.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from fer_core.artifacts import fast_model_path, load_model
from fer_core.launch import local_server
from fer_core.video import LiveSession, VideoConfig, analyze_video
from tests.clips import photo, unsmiling_face, write_clip, write_y4m

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "photos"


def faces() -> tuple[np.ndarray, np.ndarray]:
    """A smiling face and an unsmiling one, each a 640 x 480 frame: the test clips' frames."""
    return photo(PHOTOS, "single_face.jpg"), unsmiling_face(PHOTOS)


def live_in_process(loaded, frame: np.ndarray, seconds: float = 20.0) -> float:
    """Annotated frames per second of the live camera's path alone (no transport)."""
    session = LiveSession(loaded)
    session.process(frame)  # warm-up
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        session.process(frame)
        count += 1
    return count / (time.perf_counter() - started)


def live_in_browser(camera: Path, seconds: float = 30.0) -> tuple[float, int]:
    """(annotated frames per second, frames) of the Video page's live camera, end to end."""
    from playwright.sync_api import sync_playwright

    runs = Path(tempfile.mkdtemp(prefix="bench-video-runs-"))
    env = {**os.environ, "FER_RUNS_DIR": str(runs)}
    with local_server(runs / "streamlit.log", bare=True, env=env) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-background-networking", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(url + "/video")
        page.get_by_role("heading", name="Video", level=1).wait_for(timeout=180_000)
        page.get_by_text("Live camera", exact=True).click()
        start = re.compile("start", re.IGNORECASE)
        page.frame_locator('iframe[title*="webrtc"]').first.get_by_role("button", name=start).click()
        status = page.get_by_text(re.compile("annotated frames/s"))
        status.wait_for(timeout=120_000)
        time.sleep(5)  # past the first frames

        def frames() -> int:
            return int(re.search(r"([\d,]+) frames$", status.inner_text()).group(1).replace(",", ""))

        first, started = frames(), time.monotonic()
        time.sleep(seconds)
        last = frames()
        elapsed = time.monotonic() - started
        browser.close()
    return (last - first) / elapsed, last - first


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seconds", type=int, default=20, help="length of the clip (20)")
    parser.add_argument("--fps", type=float, default=5.0, help="frames sampled per second of video (5)")
    parser.add_argument("--no-browser", action="store_true", help="skip the end-to-end live measurement")
    args = parser.parse_args()
    loaded = load_model(args.model or fast_model_path())
    smiling, unsmiling = faces()
    half = args.seconds * 30 // 2
    folder = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clip = write_clip(folder / "face.mp4", [smiling] * half + [unsmiling] * half, fps=30)
    analyze_video(clip, loaded, VideoConfig(fps=args.fps, tta="none", max_duration_s=1))  # warm-up
    print(
        f"\n{loaded.name}; a {args.seconds} s clip, 640 x 480 at 30 frames/s, one face, "
        f"sampled at {args.fps:g} frames/s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
    )
    print(f"{'TTA':<22}{'annotated':<11}{'seconds':>9}{'x real time':>13}")
    for tta in (None, "none"):
        for annotated in (None, folder / "annotated.webm"):
            result = analyze_video(clip, loaded, VideoConfig(fps=args.fps, tta=tta), annotated=annotated)
            label = f"{loaded.tta} (model's own)" if tta is None else tta
            print(f"{label:<22}{'yes' if annotated else 'no':<11}{result.seconds:>9.1f}{result.speed:>13.2f}")
    rate = live_in_process(loaded, smiling)
    print(f"\nlive camera, processing alone (LiveSession, TTA none): {rate:.1f} annotated frames/s")
    if not args.no_browser:
        camera = write_y4m(folder / "camera.y4m", [smiling] * 30, fps=30)
        rate, count = live_in_browser(camera)
        path = "Chromium -> WebRTC -> server -> WebRTC"
        print(f"live camera, {path}: {rate:.1f} annotated frames/s ({count} frames)")


if __name__ == "__main__":
    main()
