"""Train: every setting as a widget; the run goes on in the background with live progress and curves."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import streamlit as st

from fer_core import figures, jobs, ui
from fer_core.artifacts import DEFAULT_MODEL, list_models
from fer_core.config import AUGMENTATIONS, CLASS_WEIGHTS, OPTIMIZERS, SCHEDULES, VALIDATION_SOURCES
from fer_core.models import PRESETS, preset_config
from fer_core.train import read_curves

st.title("Train")
choice = ui.data_choice()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    return str(dt.timedelta(seconds=round(seconds)))


@st.fragment(run_every=2)
def live_panel() -> None:
    """Progress, curves and Stop for the running job, or the outcome of the last one."""
    running = jobs.active_job()
    run_dir = running.run_dir if running else st.session_state.get("last_run")
    if run_dir is None:  # a new browser session: the newest run of the server
        newest = next(iter(jobs.training_runs()), None)
        run_dir = newest.run_dir if newest else None
    if run_dir is None:
        st.caption("No training has run on this server yet.")
        return
    state = jobs.job_state(run_dir, running=running is not None)
    name = running.name if running else run_dir.rsplit("/", 1)[-1]
    if running:
        st.session_state["last_run"] = running.run_dir
        text = (
            f"**{name}**: step {state.step:,} of {state.total_steps:,} · {_duration(state.elapsed_s)} elapsed"
        )
        text += f" · about {_duration(state.eta_s)} left" if state.step else " · preparing the data on Spark"
        st.progress(state.fraction, text=text)
        if st.button(
            "Stop", key="stop_job", icon=":material/stop_circle:", help="ends after the current step"
        ):
            jobs.stop_job(running.run_dir)
            st.toast("Stopping: the run keeps its last checkpoint and can be resumed.")
    elif state.status == "done":
        st.success(f"**{name}** finished after {state.step:,} steps: choose it on Evaluate and Predict.")
    elif state.status == "stopped":
        st.info(
            f"**{name}** was stopped at step {state.step:,}. Start it again with the same name to resume."
        )
    else:
        log = f"{run_dir}/{jobs.LOG_FILE}"
        st.error(f"**{name}** failed: {jobs.last_error(run_dir) or 'the log ' + log + ' says why'}")
    curves = read_curves(run_dir)
    if curves is not None and len(curves):
        st.plotly_chart(figures.curves_figure(curves), width="stretch", key="live_curves")


running = jobs.active_job()
if running:
    st.info(f"Run **{running.name}** is training now; one run at a time per server.")

preset_name = st.selectbox(
    "Preset",
    list(PRESETS),
    key="train_preset",
    format_func=lambda name: f"{name}: {PRESETS[name].description}",
)
defaults = preset_config(preset_name)
key = f"{preset_name}_"  # widgets restart from the preset's values when the preset changes

with st.form("train_form"):
    st.markdown("**Model**")
    c1, c2, c3, c4 = st.columns(4)
    input_size = c1.select_slider(
        "Input size", [24, 28, 32, 40, 48, 56, 64], defaults.input_size, key=key + "size"
    )
    filters_text = c2.text_input(
        "Filters per conv layer", ",".join(map(str, defaults.filters)), key=key + "filters", help="e.g. 16,16"
    )
    kernel_size = c3.select_slider("Kernel size", [3, 5, 7], defaults.kernel_size, key=key + "kernel")
    hidden_units = c4.select_slider(
        "Hidden units", [16, 32, 64, 128, 256, 512, 1024], defaults.hidden_units, key=key + "hidden"
    )
    c1, c2, c3, c4 = st.columns(4)
    dropout = c1.slider("Dropout", 0.0, 0.8, defaults.dropout, 0.05, key=key + "dropout")
    augment = c2.selectbox(
        "On-the-fly augmentation",
        AUGMENTATIONS,
        AUGMENTATIONS.index(defaults.augment),
        key=key + "augment",
        help="inside the model, training only: light = flips and shifts; full adds rotation and zoom; "
        "strong adds random erasing",
    )
    flip = c3.toggle("Flip copies", defaults.flip, key=key + "flip", help="the report's mirrored copies")
    rotation = c4.slider("Rotation copies (degrees)", 0.0, 30.0, defaults.rotation, 1.0, key=key + "rotation")
    c1, c2, c3, _ = st.columns(4)
    photo_crops = c1.number_input(
        "Faces framed as in photos",
        0,
        100_000,
        defaults.photo_crops,
        1000,
        key=key + "photo_crops",
        help="Training faces also placed in synthetic photos, found by the detector and aligned, as the "
        "Predict page frames faces (0 = off; about 50 ms of detection a face, done once and cached)",
    )
    mixup = c2.slider("Mixup", 0.0, 1.0, defaults.mixup, 0.1, key=key + "mixup", help="Beta(a, a); 0 = off")
    ema = c3.select_slider(
        "Weight average (EMA)",
        sorted({0.0, 0.99, 0.995, 0.998, 0.999, defaults.ema}),
        defaults.ema,
        key=key + "ema",
        help="momentum of a moving average of the weights, written into them before each validation; 0 = off",
    )

    st.markdown("**Optimisation**")
    c1, c2, c3, c4 = st.columns(4)
    steps = c1.number_input("Steps", 10, 200_000, defaults.steps, 100, key=key + "steps")
    batch_size = c2.select_slider(
        "Batch size", [16, 32, 64, 128, 256], defaults.batch_size, key=key + "batch"
    )
    rates = [1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 2e-2, 5e-2, 1e-1]
    learning_rate = c3.select_slider(
        "Learning rate", sorted(set(rates) | {defaults.learning_rate}), defaults.learning_rate, key=key + "lr"
    )
    optimizer = c4.selectbox("Optimiser", OPTIMIZERS, OPTIMIZERS.index(defaults.optimizer), key=key + "opt")
    c1, c2, c3, c4 = st.columns(4)
    schedule = c1.selectbox("Schedule", SCHEDULES, SCHEDULES.index(defaults.schedule), key=key + "schedule")
    label_smoothing = c2.slider(
        "Label smoothing", 0.0, 0.3, defaults.label_smoothing, 0.05, key=key + "smooth"
    )
    eval_every = c3.number_input(
        "Validate every (steps)", 10, 10_000, defaults.eval_every, 10, key=key + "eval"
    )
    seed = c4.number_input("Seed", 0, 1_000_000, defaults.seed, key=key + "seed")

    st.markdown("**Classes and validation**")
    c1, c2, c3, c4 = st.columns(4)
    oversample = c1.slider("Disgust copies", 1, 8, defaults.oversample_disgust, key=key + "oversample")
    class_weight = c2.selectbox(
        "Class weights", CLASS_WEIGHTS, CLASS_WEIGHTS.index(defaults.class_weight), key=key + "weights"
    )
    validation = c3.selectbox(
        "Validation source",
        VALIDATION_SOURCES,
        VALIDATION_SOURCES.index(defaults.validation),
        key=key + "val",
        help="PublicTest, or 10% held out of the Training rows",
    )
    max_faces = c4.number_input(
        "Training faces (0 = all)", 0, 1_000_000, defaults.max_train_faces, 100, key=key + "max_faces"
    )

    st.markdown("**Warm start and distillation**")
    saved = ["", *(str(path) for path in list_models())]

    def saved_label(path: str) -> str:
        return ui.model_label(Path(path)) if path else "none"

    # A lite network is meant to learn from the shipped ensemble; the others start without a teacher.
    teacher_default = str(DEFAULT_MODEL) if preset_name == "lite" and str(DEFAULT_MODEL) in saved else ""
    c1, c2, c3, c4 = st.columns(4)
    init_from = c1.selectbox(
        "Start from",
        saved,
        format_func=saved_label,
        key=key + "init_from",
        help="a saved model of the same architecture whose weights the run starts from (a warm restart)",
    )
    teacher = c2.selectbox(
        "Teacher",
        saved,
        index=saved.index(teacher_default),
        format_func=saved_label,
        key=key + "teacher",
        help="a model (an ensemble, with its test-time augmentation) whose softened probabilities the "
        "run learns besides the labels: knowledge distillation",
    )
    distill_temperature = c3.slider(
        "Distillation temperature", 1.0, 10.0, defaults.distill_temperature, 0.5, key=key + "temperature"
    )
    distill_weight = c4.slider(
        "Teacher's weight", 0.0, 1.0, defaults.distill_weight, 0.05, key=key + "distill_weight",
        help="the share of the loss that is the teacher's term; the rest is the labels' cross-entropy",
    )  # fmt: skip
    name = st.text_input(
        "Run name",
        f"{preset_name}-{dt.datetime.now():%Y%m%d-%H%M}",
        key=key + "name",
        help="an existing stopped run of this name resumes",
    )
    submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")

if submitted:
    try:
        filters = tuple(int(part) for part in filters_text.replace(" ", "").split(",") if part)
        config = preset_config(
            preset_name,
            input_size=input_size,
            filters=filters,
            kernel_size=kernel_size,
            hidden_units=hidden_units,
            dropout=dropout,
            augment=augment,
            flip=flip,
            rotation=rotation,
            steps=int(steps),
            batch_size=batch_size,
            learning_rate=learning_rate,
            optimizer=optimizer,
            schedule=schedule,
            label_smoothing=label_smoothing,
            eval_every=int(eval_every),
            seed=int(seed),
            oversample_disgust=oversample,
            class_weight=class_weight,
            validation=validation,
            max_train_faces=int(max_faces),
            photo_crops=int(photo_crops),
            mixup=mixup,
            ema=ema,
            init_from=init_from,
            teacher=teacher,
            distill_temperature=distill_temperature,
            distill_weight=distill_weight,
        )
        if choice.path is None:
            raise ValueError("choose a data source in the sidebar first")
        job = jobs.start_job(config, name.strip(), data=choice.path, spark_master=choice.spark_master)
    except jobs.JobBusy as busy:
        state = jobs.job_state(busy.job.run_dir, running=True)
        st.warning(
            f"Run **{busy.job.name}** is already training (step {state.step:,} of {state.total_steps:,}); "
            "wait for it or stop it first."
        )
    except ValueError as error:
        st.error(f"These settings cannot be used: {error}")
    else:
        st.session_state["last_run"] = job.run_dir
        st.toast(f"Started {job.name}")
        time.sleep(0.5)

st.subheader("Progress")
live_panel()

st.subheader("Runs on this server")
runs = jobs.training_runs()
if not runs:
    st.caption("None yet: the runs started here or with `python -m fer_core train` appear here.")
else:
    st.dataframe(
        jobs.runs_table(runs),
        hide_index=True,
        width="stretch",
        column_config={
            "PublicTest accuracy": st.column_config.NumberColumn(format="percent"),
            "date": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm"),
        },
        key="runs_table",
    )
    names = [run.name for run in runs]
    compared = st.multiselect("Compare the curves of", names, default=names[:2], key="compare_runs")
    curves = jobs.run_curves(runs, compared)
    if curves:
        st.plotly_chart(figures.curves_comparison(curves), width="stretch", key="compare_curves")
    elif compared:
        st.caption("These runs have no curves yet.")
