"""Figures for the dashboard: Plotly charts and numpy image montages, computed from plain data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_core.emotions import EMOTIONS, SPLITS
from fer_core.evaluate import Evaluation

# One colour per emotion, used by every chart so that an emotion looks the same everywhere.
EMOTION_COLORS = dict(
    zip(EMOTIONS, ("#d62728", "#8c564b", "#9467bd", "#ffbf00", "#1f77b4", "#2ca02c", "#7f7f7f"), strict=True)
)


def counts_bar(counts: pd.DataFrame):
    """Grouped bars of rows per emotion (x) and split (colour), from :meth:`Dataset.counts`."""
    import plotly.express as px

    table = counts.loc[list(EMOTIONS), list(SPLITS)].reset_index(names="emotion")
    long = table.melt(id_vars="emotion", var_name="split", value_name="rows")
    figure = px.bar(long, x="emotion", y="rows", color="split", barmode="group", text_auto=True)
    figure.update_layout(legend_title_text="", margin=dict(t=30, b=10))
    return figure


def montage(faces: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
    """Tile uint8 faces (N, H, W) into one uint8 image, ``columns`` per row, white gaps."""
    if faces.ndim != 3:
        raise ValueError(f"expected faces of shape (N, H, W), got {faces.shape}")
    count, height, width = faces.shape
    rows = max(1, -(-count // columns))
    canvas = np.full((rows * (height + pad) - pad, columns * (width + pad) - pad), 255, np.uint8)
    for index, face in enumerate(faces):
        row, column = divmod(index, columns)
        top, left = row * (height + pad), column * (width + pad)
        canvas[top : top + height, left : left + width] = face
    return canvas


def sample_faces(
    images: np.ndarray, labels: np.ndarray, per_emotion: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Up to ``per_emotion`` random faces of each emotion, as montages of one row."""
    rng = np.random.default_rng(seed)
    grids = {}
    for index, name in enumerate(EMOTIONS):
        members = np.flatnonzero(labels == index)
        if len(members):
            chosen = rng.choice(members, min(per_emotion, len(members)), replace=False)
            grids[name] = montage(images[chosen], columns=per_emotion)
    return grids


def mean_faces(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The pixel-wise mean face of each emotion present, uint8 (H, W)."""
    return {
        name: images[labels == index].mean(axis=0).round().astype(np.uint8)
        for index, name in enumerate(EMOTIONS)
        if np.any(labels == index)
    }


def intensity_stats(images: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation of all pixel values (the report printed both)."""
    values = images.astype(np.float64)
    return {"mean": float(values.mean()), "std": float(values.std())}


def intensity_histogram(images: np.ndarray):
    """Histogram of the 256 gray levels over all faces."""
    import plotly.graph_objects as go

    counts = np.bincount(images.ravel(), minlength=256)
    figure = go.Figure(go.Bar(x=np.arange(256), y=counts, marker_color="#4c78a8", marker_line_width=0))
    figure.update_layout(
        xaxis_title="pixel value", yaxis_title="pixels", bargap=0, margin=dict(t=30, b=10), height=300
    )
    return figure


def confusion_heatmap(evaluation: Evaluation, normalized: bool = False):
    """Confusion matrix heatmap, rows true, columns predicted; counts or row-normalised rates."""
    import plotly.express as px

    values = evaluation.normalized_confusion() if normalized else evaluation.confusion
    figure = px.imshow(
        values,
        x=list(EMOTIONS),
        y=list(EMOTIONS),
        color_continuous_scale="Blues",
        text_auto=".2f" if normalized else True,
        labels=dict(x="predicted", y="true", color="share" if normalized else "faces"),
        aspect="equal",
    )
    figure.update_layout(margin=dict(t=30, b=10))
    return figure


def report_bars(evaluation: Evaluation):
    """The report's chart: actual, predicted and true-positive counts per emotion."""
    import plotly.express as px

    table = evaluation.per_class()[["support", "predicted", "true_positives"]]
    table = table.rename(columns={"support": "actual", "true_positives": "true positives"})
    long = table.reset_index().melt(id_vars="emotion", var_name="count", value_name="faces")
    figure = px.bar(long, x="emotion", y="faces", color="count", barmode="group", text_auto=True)
    figure.update_layout(legend_title_text="", margin=dict(t=30, b=10))
    return figure


def metric_bars(evaluation: Evaluation):
    """Precision, recall and F1 per emotion."""
    import plotly.express as px

    table = evaluation.per_class()[["precision", "recall", "f1"]]
    long = table.reset_index().melt(id_vars="emotion", var_name="metric", value_name="value")
    figure = px.bar(long, x="emotion", y="value", color="metric", barmode="group", range_y=(0, 1))
    figure.update_layout(legend_title_text="", margin=dict(t=30, b=10))
    return figure


def curves_figure(curves: pd.DataFrame):
    """The report's curves against steps: minibatch and validation accuracy, and the losses."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    series = [
        ("minibatch_accuracy", "minibatch accuracy", 1, "#9ecae1"),
        ("val_accuracy", "validation accuracy", 1, "#08519c"),
        ("minibatch_loss", "minibatch loss", 2, "#fdae6b"),
        ("val_loss", "validation loss", 2, "#a63603"),
    ]
    for column, name, col, color in series:
        points = curves.dropna(subset=[column])
        mode = "lines+markers" if column.startswith("val") else "lines"
        figure.add_trace(
            go.Scatter(x=points["step"], y=points[column], name=name, mode=mode, line_color=color),
            row=1,
            col=col,
        )
    figure.update_xaxes(title_text="step")
    figure.update_layout(margin=dict(t=40, b=10), legend=dict(orientation="h", y=-0.25), height=380)
    return figure


def probability_bars(probabilities: np.ndarray):
    """Horizontal bars of the seven probabilities of one face."""
    import plotly.graph_objects as go

    figure = go.Figure(
        go.Bar(
            x=np.asarray(probabilities, float),
            y=list(EMOTIONS),
            orientation="h",
            marker_color=[EMOTION_COLORS[name] for name in EMOTIONS],
            text=[f"{p:.0%}" for p in probabilities],
            textposition="auto",
        )
    )
    figure.update_layout(
        xaxis=dict(range=(0, 1), tickformat=".0%"),
        yaxis=dict(autorange="reversed"),
        margin=dict(t=10, b=10, l=10, r=10),
        height=240,
    )
    return figure


def draw_faces(image: np.ndarray, faces, numbers: list[int] | None = None) -> np.ndarray:
    """A copy of an RGB image with each face's box, landmarks and top emotion drawn on it; an
    uncertain face's label ends in a question mark. Faces are numbered from 1, or by ``numbers``
    (a video's track ids)."""
    import cv2

    canvas = image.copy()
    scale = max(canvas.shape[:2]) / 800
    thickness = max(2, round(2 * scale))
    numbers = range(1, len(faces) + 1) if numbers is None else numbers
    for number, face in zip(numbers, faces, strict=True):
        x, y, w, h = face.box
        color = tuple(int(EMOTION_COLORS[face.emotion].lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, thickness)
        for point in face.landmarks if face.landmarks is not None else []:
            cv2.circle(canvas, (round(point[0]), round(point[1])), thickness + 1, color, -1)
        label = f"{number}: {face.emotion} {face.confidence:.0%}" + ("?" if face.uncertain else "")
        font_scale = max(0.5, 0.7 * scale)
        (text_w, text_h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = max(0, y - text_h - base - 4)
        cv2.rectangle(canvas, (x, top), (x + text_w + 4, top + text_h + base + 4), color, -1)
        cv2.putText(
            canvas,
            label,
            (x + 2, top + text_h + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            thickness,
        )
    return canvas


def reliability_diagram(table: pd.DataFrame):
    """Accuracy against confidence per bin (``fer_core.calibrate.reliability_table``), with the
    diagonal a calibrated model would follow and the share of faces per bin."""
    import plotly.graph_objects as go

    filled = table[table.faces > 0]
    centers = (filled.low + filled.high) / 2
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated", line=dict(dash="dash", color="gray"))
    )
    figure.add_trace(
        go.Bar(
            x=centers,
            y=filled.accuracy,
            width=(filled.high - filled.low) * 0.9,
            name="accuracy",
            customdata=np.stack([filled.faces, filled.confidence], axis=1),
            hovertemplate="confidence %{customdata[1]:.2f}<br>accuracy %{y:.2f}<br>%{customdata[0]} faces",
        )
    )
    figure.add_trace(
        go.Scatter(x=filled.confidence, y=filled.accuracy, mode="markers", name="mean confidence")
    )
    figure.update_layout(
        xaxis=dict(title="confidence (top probability)", range=(0, 1)),
        yaxis=dict(title="accuracy", range=(0, 1)),
        margin=dict(t=10, b=10, l=10, r=10),
        height=360,
    )
    return figure


def feature_map_montage(activations: np.ndarray, max_channels: int = 32) -> np.ndarray:
    """Channels of one layer's activation (H, W, C) scaled to 0..255 and tiled, uint8."""
    channels = np.moveaxis(activations[..., :max_channels], -1, 0).astype(np.float64)
    low = channels.min(axis=(1, 2), keepdims=True)
    span = np.ptp(channels, axis=(1, 2), keepdims=True)
    scaled = np.divide(channels - low, span, out=np.zeros_like(channels), where=span > 0)
    return montage((scaled * 255).round().astype(np.uint8), columns=min(8, len(channels)))


def curves_comparison(curves: dict[str, pd.DataFrame]):
    """The curves of several runs over each other: validation accuracy (solid, with markers) and
    minibatch accuracy (dotted) on the left, the same losses on the right; one colour per run."""
    import plotly.express as px
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    palette = px.colors.qualitative.Plotly
    for index, (name, table) in enumerate(curves.items()):
        color = palette[index % len(palette)]
        for column, col, dash in (
            ("val_accuracy", 1, "solid"),
            ("minibatch_accuracy", 1, "dot"),
            ("val_loss", 2, "solid"),
            ("minibatch_loss", 2, "dot"),
        ):
            points = table.dropna(subset=[column]) if column in table else table.iloc[:0]
            validation = column.startswith("val")
            figure.add_trace(
                go.Scatter(
                    x=points["step"],
                    y=points[column],
                    name=name if column == "val_accuracy" else f"{name} · {column.replace('_', ' ')}",
                    legendgroup=name,
                    showlegend=column == "val_accuracy",
                    mode="lines+markers" if validation else "lines",
                    line=dict(color=color, dash=dash, width=2 if validation else 1),
                    opacity=1.0 if validation else 0.5,
                ),
                row=1,
                col=col,
            )
    figure.update_xaxes(title_text="step")
    figure.update_layout(margin=dict(t=40, b=10), legend=dict(orientation="h", y=-0.25), height=420)
    return figure


def emotion_counts_bar(counts: dict[str, int]):
    """Bars of faces per emotion, in the label order, each in its emotion's colour."""
    import plotly.graph_objects as go

    names = list(EMOTIONS)
    values = [int(counts.get(name, 0)) for name in names]
    figure = go.Figure(
        go.Bar(x=names, y=values, marker_color=[EMOTION_COLORS[name] for name in names], text=values)
    )
    figure.update_layout(yaxis_title="faces", margin=dict(t=30, b=10), height=320)
    return figure


def emotion_timeline(table: pd.DataFrame, interval_s: float | None = None):
    """The probabilities of one face over time (the rows of one track of a video table, smoothed or
    not: ``fer_core.video.smooth_probabilities``), one line per emotion, with a band below whose
    colour is the top emotion at each time. Lines break where the face was not seen for more than
    1.5 ``interval_s`` (default: the table's most common step)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = table.dropna(subset=["track"]).sort_values("t_sec")
    times = rows["t_sec"].to_numpy(float)
    steps = np.diff(times)
    if interval_s is None:
        interval_s = float(np.median(steps)) if len(steps) else 1.0
    # A missing stretch becomes a gap in the lines: a row of NaN just after its start.
    gaps = times[:-1][steps > 1.5 * interval_s] + interval_s
    columns = [f"p_{name}" for name in EMOTIONS]
    lines = pd.concat([rows[["t_sec", *columns]], pd.DataFrame({"t_sec": gaps})]).sort_values("t_sec")
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.86, 0.14], vertical_spacing=0.04)
    top = rows[columns].to_numpy(float).argmax(axis=1) if len(rows) else np.empty(0, int)
    for index, name in enumerate(EMOTIONS):
        figure.add_trace(
            go.Scatter(
                x=lines["t_sec"],
                y=lines[f"p_{name}"],
                name=name,
                legendgroup=name,
                mode="lines",
                line=dict(color=EMOTION_COLORS[name], width=2),
                hovertemplate=f"{name} %{{y:.0%}} at %{{x:.1f}} s<extra></extra>",
            ),
            row=1,
            col=1,
        )
        on_top = top == index
        figure.add_trace(
            go.Bar(
                x=times[on_top],
                y=np.ones(int(on_top.sum())),
                width=interval_s,
                name=name,
                legendgroup=name,
                showlegend=False,
                marker=dict(color=EMOTION_COLORS[name], line_width=0),
                hovertemplate=f"top: {name} at %{{x:.1f}} s<extra></extra>",
            ),
            row=2,
            col=1,
        )
    figure.update_yaxes(range=(0, 1), tickformat=".0%", title_text="probability", row=1, col=1)
    figure.update_yaxes(visible=False, row=2, col=1)
    figure.update_xaxes(title_text="time (s)", row=2, col=1)
    figure.update_layout(
        bargap=0,
        barmode="overlay",
        height=320,
        margin=dict(t=10, b=10, l=10, r=10),
        legend=dict(orientation="h"),
    )
    return figure


def emotion_share_bars(share: dict[str, float]):
    """Horizontal bars of the share of time a face spent in each emotion (label order)."""
    return probability_bars(np.array([share.get(name, 0.0) for name in EMOTIONS], float))
