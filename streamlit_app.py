"""The dashboard's entry point: navigation, the shared sidebar, and the Home page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import streamlit as st

from fer_core import ui
from fer_core.artifacts import card_accuracy, card_tta, default_model_path
from fer_core.emotions import EMOTIONS


def home() -> None:
    st.title("Facial expression recognition")
    st.markdown(
        "Upload a face photo and see which of seven emotions it shows: "
        + ", ".join(f"**{name}**" for name in EMOTIONS)
        + ". Explore the FER2013 data set, train convolutional networks from sliders, and see exactly "
        "how good a model is. It grows from a 2017 project report (Spark preprocessing, a small "
        "TensorFlow CNN) whose network is the `seed` preset here."
    )
    choice = ui.data_choice()
    model_column, data_column = st.columns(2)
    with model_column:
        st.subheader("Model in use")
        # The card (its weights checked) says all Home shows: no wait for TensorFlow here.
        path = Path(st.session_state.get("model_path") or default_model_path())
        card = ui.get_card(path)
        if card:
            accuracy, tta = card_accuracy(card, "PrivateTest"), card_tta(card)
            created = dt.datetime.fromisoformat(card["created"]).strftime("%d %b %Y")
            st.metric(
                "PrivateTest accuracy",
                f"{accuracy:.1%}" if accuracy is not None else "n/a",
                help=f"Measured with this model's test-time augmentation: {ui.TTA_LABELS[tta]}",
            )
            members = card["training"].get("members")
            st.markdown(
                f"**{ui.model_label(path)}**  \npreset `{card['preset']}`, "
                f"{card['preprocessing']['input_size']} x {card['preprocessing']['input_size']} input, "
                f"trained {created} on `{card['data']['source']}` "
                f"({card['training']['steps']:,} steps, {card['training']['seconds']:.0f} s "
                f"on {card['training']['machine']})"
                + (f"; an ensemble of {len(members)} networks" if members else "")
                + f"; test-time augmentation: {ui.TTA_LABELS[tta].lower()}"
            )
    with data_column:
        st.subheader("Data in use")
        dataset = ui.get_dataset(choice)
        if dataset:
            counts = dataset.counts()
            st.metric("Faces", f"{int(counts.loc['total', 'total']):,}")
            st.markdown(
                f"`{choice.label}` on Spark `{choice.spark_master}`  \n"
                + ", ".join(f"{split}: {int(counts.loc['total', split]):,}" for split in counts.columns[:-1])
                + f"  \nrejected rows: {dataset.num_rejected}"
            )
    st.divider()
    st.markdown(
        "**Pages**: *Dataset* shows the faces and their statistics; *Train* trains a model in the "
        "background; *Evaluate* shows accuracy, the confusion matrix and feature maps; *Predict* reads the "
        "emotions of the faces in your photos; *Batch* scores every face of a folder of photos on Spark; "
        "*Video* follows every face through a video, or labels your live camera."
    )


st.set_page_config(page_title="FER dashboard", page_icon=":performing_arts:", layout="wide")
ui.warm_up()  # once per server: the default model, data and SparkSession, in the background
navigation = st.navigation(
    [
        st.Page(home, title="Home", icon=":material/home:", default=True),
        st.Page("app_pages/1_dataset.py", title="Dataset", icon=":material/grid_view:"),
        st.Page("app_pages/2_train.py", title="Train", icon=":material/model_training:"),
        st.Page("app_pages/3_evaluate.py", title="Evaluate", icon=":material/analytics:"),
        st.Page("app_pages/4_predict.py", title="Predict", icon=":material/mood:"),
        st.Page("app_pages/5_batch.py", title="Batch", icon=":material/photo_library:"),
        st.Page("app_pages/6_video.py", title="Video", icon=":material/videocam:"),
    ]
)
st.session_state[ui.DATA_CHOICE] = ui.sidebar()
navigation.run()
