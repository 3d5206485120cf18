"""Photo latency in a warm process: detector, alignment, model, total, per photo and over many photos.

    python -m bench.latency [--model models/default] [--repeat 10] [--photos tests/data/photos]

Each photo is read once; the timings are medians over ``--repeat`` runs after a warm-up, with the
model's own test-time augmentation. The last rows time ``analyze_images`` over 20 photos at once (what
the CLI and the dashboard do with several files: every face in one model call) against 20 separate
calls, as a ratio in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from fer_core.artifacts import load_model
from fer_core.faces import DETECTORS, align_faces, detect_faces
from fer_core.predict import analyze_image, analyze_images, predict_faces, read_image, to_gray

PHOTOS = ("single_face.jpg", "multi_face.jpg")


def median_ms(action, repeat: int) -> float:
    action()  # warm-up: first calls build graphs and sessions
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--photos", type=Path, default=Path(__file__).resolve().parent.parent / "tests/data/photos"
    )
    args = parser.parse_args()
    loaded = load_model(args.model)
    print(f"\n{loaded.name}, TTA {loaded.tta}; medians of {args.repeat} runs in a warm process (ms)\n")
    print(f"{'photo':<18}{'detector':<12}{'faces':>6}{'detect':>9}{'align':>8}{'model':>8}{'total':>8}")
    for name in PHOTOS:
        data = (args.photos / name).read_bytes()
        image = read_image(data)
        gray = to_gray(image)
        for detector in DETECTORS:
            detections = detect_faces(image, detector)
            crops = align_faces(gray, detections)
            detect = median_ms(lambda: detect_faces(image, detector), args.repeat)  # noqa: B023
            align = median_ms(lambda: align_faces(gray, detections), args.repeat)  # noqa: B023
            model = median_ms(lambda: predict_faces(loaded, crops), args.repeat)  # noqa: B023
            total = median_ms(lambda: analyze_image(data, loaded, detector=detector), args.repeat)  # noqa: B023
            print(
                f"{name:<18}{detector:<12}{len(detections):>6}{detect:>9.1f}{align:>8.1f}{model:>8.1f}{total:>8.1f}"
            )

    many = [(args.photos / PHOTOS[index % 2]).read_bytes() for index in range(20)]
    together = median_ms(lambda: analyze_images(many, loaded), max(3, args.repeat // 3))
    apart = median_ms(lambda: [analyze_image(data, loaded) for data in many], max(3, args.repeat // 3))
    faces = sum(len(result.faces) for result in analyze_images(many, loaded))
    print(f"\n20 photos ({faces} faces) in one call: {together:.0f} ms ({together / 20:.1f} ms a photo)")
    print(f"20 photos one call each:  {apart:.0f} ms ({apart / 20:.1f} ms a photo)")
    print(f"batching every face into one model call: {apart / together:.2f}x faster")


if __name__ == "__main__":
    main()
