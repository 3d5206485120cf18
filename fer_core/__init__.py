"""fer_core: facial expression recognition on FER2013, from Spark preprocessing to Keras models."""

from fer_core.emotions import EMOTIONS, FACE_SIZE, NUM_CLASSES, SPLITS

__all__ = ["EMOTIONS", "FACE_SIZE", "NUM_CLASSES", "SPLITS"]
__version__ = "0.1.0"
