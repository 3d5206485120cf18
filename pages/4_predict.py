"""Predict: upload photos or take a snapshot; every face gets a box, its crop and its probabilities."""

from __future__ import annotations

import json

import streamlit as st

from fer_core import figures, ui
from fer_core.predict import DETECTORS, analyze_image, results_table

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]

st.title("Predict")
left, right = st.columns([3, 1])
with left:
    loaded = ui.model_picker("predict_model")
detector = right.selectbox(
    "Face detector",
    DETECTORS,
    key="predict_detector",
    help="MTCNN finds more faces; Haar is the report-era OpenCV cascade",
)
tta = ui.tta_picker(loaded, "predict_tta", right)
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
        "Photos (jpg, png, webp, bmp, tiff)", type=IMAGE_TYPES, accept_multiple_files=True, key="photos"
    )
    inputs = [(upload.name, upload.getvalue()) for upload in uploads or []]
if not inputs:
    st.info("Upload one or more photos with faces, or take a snapshot.")
    st.stop()

results = []
for number, (name, content) in enumerate(inputs):
    whole = st.session_state.get(f"whole_{name}_{number}", False)
    result = analyze_image(content, loaded, name=name, whole_if_none=whole, tta=tta, detector=detector)
    results.append(result)
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
            chart_column.plotly_chart(
                figures.probability_bars(face.probabilities),
                width="stretch",
                key=f"probabilities_{number}_{face_number}",
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
