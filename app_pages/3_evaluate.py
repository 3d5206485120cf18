"""Evaluate: accuracy, confusion matrix, the report's per-emotion chart, curves, feature maps, errors."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from fer_core import figures, ui
from fer_core.calibrate import reliability_table
from fer_core.emotions import EMOTIONS, SPLITS
from fer_core.evaluate import evaluate, predictions_table
from fer_core.explain import grad_cam, overlay
from fer_core.predict import feature_layers, layer_activations, predict_faces
from fer_core.train import read_curves

st.title("Evaluate")
choice = ui.data_choice()
left, right = st.columns([3, 1])
with left:
    loaded = ui.model_picker("evaluate_model")
split = right.selectbox("Split", SPLITS, index=SPLITS.index("PrivateTest"), key="evaluate_split")
tta = ui.tta_picker(loaded, "evaluate_tta", right)
dataset = ui.get_dataset(choice)
if loaded is None or dataset is None:
    st.stop()
faces = dataset.splits[split]
if len(faces) == 0:
    st.info(f"The {split} split of this data has no faces.")
    st.stop()


@st.cache_data(show_spinner="Predicting …", max_entries=8)
def probabilities_for(model_path: str, model_sha: str, data_key: str, split: str, tta: str) -> np.ndarray:
    return predict_faces(loaded, faces.images, tta=tta)


probabilities = probabilities_for(
    str(loaded.path), loaded.card["weights_sha256"], dataset.cache_key, split, tta
)
report = evaluate(faces.labels, probabilities)
predicted = probabilities.argmax(axis=1)

columns = st.columns(4)
columns[0].metric("Accuracy", f"{report.accuracy:.2%}")
columns[1].metric("Faces", f"{report.n:,}")
table = report.per_class()
hardest = table["recall"].idxmin()
columns[2].metric("Mean recall", f"{table['recall'].mean():.2%}")
columns[3].metric("Hardest emotion", f"{hardest} ({table.loc[hardest, 'recall']:.0%} recall)")

st.subheader("Confusion matrix")
normalized = st.toggle("Row-normalised (share of each true emotion)", key="confusion_normalized")
st.plotly_chart(figures.confusion_heatmap(report, normalized), width="stretch", key="confusion")

st.subheader("Per emotion")
left, right = st.columns(2)
left.caption("Actual, predicted and true positives (the report's chart)")
left.plotly_chart(figures.report_bars(report), width="stretch", key="report_bars")
right.caption("Precision, recall and F1")
right.plotly_chart(figures.metric_bars(report), width="stretch", key="metric_bars")
st.dataframe(table.style.format({"recall": "{:.3f}", "precision": "{:.3f}", "f1": "{:.3f}"}), width="stretch")

report_json = json.dumps(
    {"model": str(loaded.path), "split": split, "tta": tta, **report.to_dict()}, indent=1
)
report_csv = table.assign(accuracy=report.accuracy, split=split, model=str(loaded.path)).to_csv()
buttons = st.columns([1, 1, 1, 2])
buttons[0].download_button("Report (CSV)", report_csv, f"report-{split}.csv", "text/csv", key="dl_report_csv")
buttons[1].download_button(
    "Report (JSON)", report_json, f"report-{split}.json", "application/json", key="dl_report"
)
buttons[2].download_button(
    "Predictions (CSV)",
    predictions_table(faces.labels, probabilities).to_csv(index=False),
    f"predictions-{split}.csv",
    "text/csv",
    key="dl_predictions",
)

st.subheader("Calibration")
left, right = st.columns([2, 1])
left.plotly_chart(
    figures.reliability_diagram(reliability_table(probabilities, faces.labels)), key="reliability"
)
calibration = loaded.calibration
right.metric("Expected calibration error", f"{report.ece:.3f}", help="15 bins of the top-1 probability")
right.markdown(
    f"Probabilities are divided in log space by the temperature **{calibration.temperature:.3f}** fitted on "
    f"PublicTest; a face below **{calibration.uncertain_below:.0%}** confidence is more likely wrong than "
    "right and is marked uncertain on the Predict page."
    if loaded.card.get("calibration")
    else "This model's card has no calibration: its probabilities are shown as the network gives them."
)

st.subheader("Training curves")
curves = read_curves(loaded.path)
if curves is None:
    st.caption("This model folder has no curves.csv.")
else:
    st.plotly_chart(figures.curves_figure(curves), width="stretch", key="curves")

st.subheader("Feature maps")
left, right = st.columns([1, 3])
index = left.number_input("Face number", 0, len(faces) - 1, 0, key="feature_face")
face = faces.images[int(index)]
left.image(
    face,
    caption=f"true: {EMOTIONS[faces.labels[index]]} · predicted: {EMOTIONS[predicted[index]]}",
    width=144,
)
layers = feature_layers(loaded)
shown = right.multiselect("Layers", layers, default=layers[:4], key=f"feature_layers_{loaded.name}")
if shown:
    activations = layer_activations(loaded, face, shown)
    for name, activation in activations.items():
        right.image(
            figures.feature_map_montage(activation),
            caption=f"{name}: {activation.shape[0]} x {activation.shape[1]}, {activation.shape[2]} channels",
            width="stretch",
        )

st.subheader("Misclassified faces")
wrong = np.flatnonzero(predicted != faces.labels)
st.caption(f"{len(wrong):,} of {len(faces):,} faces are misclassified; a random draw of them:")
count = st.slider("How many", 8, 64, 24, 8, key="wrong_count")
draw = np.random.default_rng(0).choice(wrong, min(count, len(wrong)), replace=False) if len(wrong) else []
explain = st.toggle(
    "Show where the network looked (Grad-CAM of the predicted emotion)", key="wrong_cam", value=False
)
pictures = faces.images[draw] if len(draw) else faces.images[:0]
if explain and len(draw):
    pictures = [
        overlay(face, heatmap, size=96)
        for face, heatmap in zip(pictures, grad_cam(loaded, pictures), strict=True)
    ]
columns = st.columns(8)
for position, (face_index, picture) in enumerate(zip(draw, pictures, strict=True)):
    columns[position % 8].image(
        picture,
        caption=f"{EMOTIONS[faces.labels[face_index]]} → {EMOTIONS[predicted[face_index]]}",
        width="stretch",
    )
