"""The FER2013 label order, defined once for the whole project."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)
FACE_SIZE = 48  # FER2013 faces are 48 x 48 grayscale
SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
