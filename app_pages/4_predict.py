"""Predict: upload photos or take a snapshot; every face gets a box, its aligned crop, calibrated
probabilities and a Grad-CAM map of where the network looked."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from fer_core import figures, ui
from fer_core.emotions import EMOTIONS
from fer_core.explain import grad_cam, overlay
from fer_core.faces import DETECTORS
from fer_core.predict import MAX_IMAGE_BYTES, analyze_images, results_table

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]

st.title("Predict")
left, right = st.columns([3, 1])
with left:
    loaded = ui.model_picker("predict_model")
detector = right.selectbox(
    "Face detector",
    DETECTORS,
    key="predict_detector",
    help="RetinaFace (the default) is fast and gives the landmarks that level the eyes; MTCNN also has "
    "landmarks but is slower; Haar is the report-era OpenCV cascade, boxes only",
)
tta = ui.tta_picker(loaded, "predict_tta", right)
small_faces = right.toggle(
    "Small faces",
    key="predict_small",
    help="Enlarge the photo 2x first: finds faces of about 15 pixels, slower",
)
if loaded is None:
    st.stop()

source = st.segmented_control(
    "Source", ["Upload", "Camera"], default="Upload", required=True, key="predict_source"
)
if source == "Camera":
    snapshot = st.camera_input("Take a snapshot", key="camera")
    inputs = [("camera.jpg", snapshot.getvalue())] if snapshot else []
else:
    uploads = st.file_uploader(
        "Photos (jpg, png, webp, bmp, tiff)",
        type=IMAGE_TYPES,
        accept_multiple_files=True,
        key="photos",
        max_upload_size=MAX_IMAGE_BYTES // 2**20,  # photos keep their limit; data sets may be larger
    )
    inputs = [(upload.name, upload.getvalue()) for upload in uploads or []]
if not inputs:
    st.info("Upload one or more photos with faces, or take a snapshot.")
    st.stop()

options = dict(tta=tta, detector=detector, upscale=2.0 if small_faces else 1.0)
# The faces of every photo go through the network together; a photo whose "whole image" box is ticked
# is read again on its own.
results = analyze_images(
    [content for _, content in inputs], loaded, names=[name for name, _ in inputs], **options
)
for number, (name, content) in enumerate(inputs):
    if st.session_state.get(f"whole_{name}_{number}", False):
        (results[number],) = analyze_images([content], loaded, names=[name], whole_if_none=True, **options)

for number, result in enumerate(results):
    name = result.name
    st.divider()
    st.subheader(name)
    if result.error:
        st.error(f"{name} cannot be read: {result.error}. Try another file.")
        continue
    if not result.faces:
        st.warning("No face was found in this image.")
        st.checkbox("Read the whole image as one face", key=f"whole_{name}_{number}")
        st.image(result.image, width=360)
        continue
    if result.whole_image:
        st.caption("The whole image was read as one face.")
    left, right = st.columns([3, 2])
    left.image(figures.draw_faces(result.image, result.faces), width="stretch")
    with right:
        for face_number, face in enumerate(result.faces, start=1):
            crop_column, chart_column = st.columns([1, 3])
            crop_column.image(face.crop, caption=f"{face_number}: {face.emotion}", width=96)
            if face.uncertain:
                (first, p_first), (second, p_second) = face.top(2)
                crop_column.warning(f"Uncertain: {first} {p_first:.0%} or {second} {p_second:.0%}")
            chart_column.plotly_chart(
                figures.probability_bars(face.probabilities),
                width="stretch",
                key=f"probabilities_{number}_{face_number}",
            )
    with st.expander("Where the network looked (Grad-CAM)"):
        shown = st.selectbox(
            "Emotion to explain",
            ["predicted", *EMOTIONS],
            key=f"cam_emotion_{number}",
            help="Red: the parts of the aligned face that raised this emotion's score most",
        )
        crops = np.stack([face.crop for face in result.faces])
        emotions = None if shown == "predicted" else EMOTIONS.index(shown)
        maps = grad_cam(loaded, crops, emotions)
        columns = st.columns(min(6, len(result.faces)))
        for face_number, (face, heatmap) in enumerate(zip(result.faces, maps, strict=True), start=1):
            explained = face.emotion if emotions is None else shown
            columns[(face_number - 1) % len(columns)].image(
                overlay(face.crop, heatmap), caption=f"{face_number}: looked for {explained}", width="stretch"
            )

table = results_table(results)
if len(table):
    st.divider()
    left, right, _ = st.columns([1, 1, 3])
    left.download_button(
        "Results (CSV)", table.to_csv(index=False), "predictions.csv", "text/csv", key="dl_csv"
    )
    right.download_button(
        "Results (JSON)",
        json.dumps([r.to_dict() for r in results], indent=1),
        "predictions.json",
        "application/json",
        key="dl_json",
    )
