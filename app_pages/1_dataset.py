"""Dataset: rows per emotion and split, sample and mean faces, pixel statistics, rejected rows."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fer_core import figures, ui
from fer_core.emotions import EMOTIONS, SPLITS

st.title("Dataset")
choice = ui.data_choice()
dataset = ui.get_dataset(choice)
if dataset is None:
    st.stop()

counts = dataset.counts()
st.caption(f"`{choice.label}` · fingerprint `{dataset.fingerprint[:12]}` · Spark `{choice.spark_master}`")
total, rejected = int(counts.loc["total", "total"]), dataset.num_rejected
columns = st.columns(len(SPLITS) + 2)
columns[0].metric("Faces", f"{total:,}")
for column, split in zip(columns[1:], SPLITS, strict=False):
    column.metric(split, f"{int(counts.loc['total', split]):,}")
columns[-1].metric("Rejected rows", f"{rejected:,}")

st.subheader("Rows per emotion and split")
st.plotly_chart(figures.counts_bar(counts), width="stretch", key="counts_chart")
with st.expander("Table"):
    st.dataframe(counts, width="stretch")

split = st.segmented_control("Split", SPLITS, default="Training", key="dataset_split") or "Training"
faces = dataset.splits[split]
if len(faces) == 0:
    st.info(f"The {split} split has no faces.")
    st.stop()

st.subheader("Sample faces")
left, right = st.columns([3, 1])
per_emotion = right.slider("Faces per emotion", 4, 16, 10, key="faces_per_emotion")
seed = right.number_input("Shuffle", 0, 10_000, 0, key="faces_seed", help="another random draw")
with left:
    for name, grid in figures.sample_faces(faces.images, faces.labels, per_emotion, seed=int(seed)).items():
        st.image(grid, caption=f"{name} ({int((faces.labels == EMOTIONS.index(name)).sum()):,})", clamp=True)

st.subheader("Mean face of each emotion")
means = figures.mean_faces(faces.images, faces.labels)
for column, (name, face) in zip(st.columns(len(means)), means.items(), strict=True):
    column.image(face, caption=name, width="stretch")

st.subheader("Pixel intensities")
stats = figures.intensity_stats(faces.images)
left, right = st.columns([3, 1])
left.plotly_chart(figures.intensity_histogram(faces.images), width="stretch", key="histogram")
right.metric("Mean", f"{stats['mean']:.2f}")
right.metric("Standard deviation", f"{stats['std']:.2f}")
right.caption("over every pixel of the split, 0..255")

st.subheader("Rejected rows")
if dataset.rejects:
    table = pd.DataFrame(sorted(dataset.rejects.items()), columns=["reason", "rows"])
    st.dataframe(table, hide_index=True, width="content")
    st.caption("`python -m fer_core stats --data PATH --rejects rejects.csv` writes each rejected line.")
else:
    st.success("Every row of this source was read: none was rejected.")
