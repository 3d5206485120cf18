"""Prediction on real photos: detection, crops, probabilities, EXIF, and broken uploads."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fer_core.artifacts import MODELS_DIR, LoadedModel, load_model
from fer_core.emotions import EMOTIONS
from fer_core.faces import detect_faces
from fer_core.models import build_ensemble
from fer_core.predict import (
    ImageError,
    analyze_image,
    analyze_images,
    feature_layers,
    layer_activations,
    predict_faces,
    read_image,
    tta_views,
)
from fer_core.preprocess import resize_faces


@pytest.fixture(scope="module")
def model():
    return load_model()  # the shipped default model


def test_each_face_gets_box_crop_and_probabilities(photos, model):
    result = analyze_image(photos / "multi_face.jpg", model)
    height, width = result.image.shape[:2]
    assert result.error is None and len(result.faces) == 5
    for face in result.faces:
        x, y, w, h = face.box
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert face.crop.shape == (48, 48) and face.crop.dtype == np.uint8
        assert face.probabilities.shape == (7,)
        assert face.probabilities.sum() == pytest.approx(1, abs=1e-5)
        assert face.emotion == EMOTIONS[int(face.probabilities.argmax())]


def test_the_alignment_is_the_callers_choice(photos, model):
    """Each alignment crops the faces its own way (fer_core.faces), the default by default."""
    from fer_core.faces import ALIGNMENTS, DEFAULT_ALIGNMENT, align_faces
    from fer_core.predict import to_gray

    image = read_image(photos / "multi_face.jpg")
    detections = detect_faces(image)
    crops = {}
    for method in ALIGNMENTS:
        (result,) = analyze_images([photos / "multi_face.jpg"], model, alignment=method)
        crops[method] = np.stack([face.crop for face in result.faces])
        assert np.array_equal(crops[method], align_faces(to_gray(image), detections, method=method))
    assert np.array_equal(
        analyze_image(photos / "multi_face.jpg", model).faces[0].crop, crops[DEFAULT_ALIGNMENT][0]
    )
    assert not np.array_equal(crops["levelled_box"], crops["box"])
    with pytest.raises(ValueError, match="unknown alignment"):
        analyze_image(photos / "multi_face.jpg", model, alignment="sideways")


def test_results_table_lists_every_face(photos, model):
    from fer_core.predict import results_table

    results = [
        analyze_image(photos / name, model) for name in ("single_face.jpg", "multi_face.jpg", "no_face.jpg")
    ]
    table = results_table(results)
    assert table.groupby("image").size().to_dict() == {
        str(photos / "single_face.jpg"): 1,
        str(photos / "multi_face.jpg"): 5,
    }
    assert set(table["emotion"]) <= set(EMOTIONS)


def test_no_face_says_so_and_can_use_the_whole_image(photos, model):
    result = analyze_image(photos / "no_face.jpg", model)
    assert result.error is None and result.faces == [] and not result.whole_image
    whole = analyze_image(photos / "no_face.jpg", model, whole_if_none=True)
    assert whole.whole_image and len(whole.faces) == 1


def test_exif_orientation_is_applied(photos, tmp_path):
    from PIL import Image

    upright = read_image(photos / "single_face.jpg")
    image = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # stored turned left ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the EXIF orientation that says: turn it right to view
    path = tmp_path / "sideways.jpg"
    image.save(path, exif=exif, quality=95)
    restored = read_image(path)
    assert restored.shape == upright.shape
    assert np.abs(restored.astype(int) - upright.astype(int)).mean() < 8
    assert len(detect_faces(restored)) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"hello, I am a text file", "not an image"),
        ("truncated", "truncated"),
    ],
)
def test_broken_uploads_are_refused_politely(photos, model, payload, message):
    if payload == "truncated":
        payload = (photos / "single_face.jpg").read_bytes()[:4000]
    result = analyze_image(payload, model, name="upload.jpg")
    assert result.faces == [] and message in result.error


def test_too_many_pixels_is_refused(model):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buffer, format="PNG")
    result = analyze_image(buffer.getvalue(), model)
    assert "megapixels" in result.error


def _png(image, exif=None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **({} if exif is None else {"exif": exif}))
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P"])
def test_the_png_fast_path_reads_the_pixels_pillow_reads(photos, mode):
    from PIL import Image

    from fer_core.predict import _decode_plain_png

    photo = Image.open(photos / "single_face.jpg").resize((96, 64))
    image = photo.quantize(32) if mode == "P" else photo.convert(mode)
    if mode in ("RGBA", "LA"):
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    data = _png(image)
    fast = _decode_plain_png(data)
    assert fast is not None, "an 8-bit PNG takes the fast path"
    with Image.open(io.BytesIO(data)) as reference:
        np.testing.assert_array_equal(fast, np.asarray(reference.convert("RGB")))
    np.testing.assert_array_equal(read_image(data), fast)


def test_pngs_the_fast_path_leaves_to_pillow(photos):
    from PIL import Image

    from fer_core.predict import _decode_plain_png

    photo = Image.open(photos / "single_face.jpg").convert("L").resize((96, 64))
    deep = Image.fromarray(np.asarray(photo, np.uint16) * 257)  # 16 bits a pixel
    exif = Image.Exif()
    exif[0x0112] = 6  # turn right to view
    for data in (_png(deep), _png(photo, exif)):
        assert _decode_plain_png(data) is None
    np.testing.assert_array_equal(read_image(_png(deep))[..., 0], np.asarray(photo))  # 65535 -> 255
    assert read_image(_png(photo, exif)).shape[:2] == (96, 64)  # turned upright by Pillow
    truncated = _png(photo)[:300]
    assert _decode_plain_png(truncated) is None
    with pytest.raises(ImageError, match="truncated"):
        read_image(truncated)


def test_predict_faces_from_arrays_with_and_without_tta(model, sample_lines):
    faces = np.stack(
        [np.array(line.split(",")[1].split(), np.uint8).reshape(48, 48) for line in sample_lines[:20]]
    )
    # At the model's own size no resize happens, so mirroring commutes exactly with preprocessing.
    faces = resize_faces(faces, model.input_size)
    # Uncalibrated: the views' probabilities are averaged before the temperature applies.
    plain = predict_faces(model, faces, tta="none", calibrated=False)
    flip = predict_faces(model, faces, tta="flip", calibrated=False)
    mirrored = predict_faces(model, faces[:, :, ::-1], tta="none", calibrated=False)
    assert plain.shape == (20, 7) and plain.dtype == np.float32
    assert np.allclose(flip, (plain + mirrored) / 2, atol=1e-5)
    crops = predict_faces(model, faces, tta="crops", calibrated=False)
    each = [predict_faces(model, view, tta="none", calibrated=False) for view in tta_views(faces, "crops")]
    assert np.allclose(crops, np.mean(each, axis=0), atol=1e-5)
    assert np.allclose(crops.sum(axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        predict_faces(model, np.zeros((1, 1, 48, 48)))
    with pytest.raises(ValueError, match="tta must be one of"):
        predict_faces(model, faces, tta="rotate")


def test_tta_views_are_mirrors_and_reflected_shifts():
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    assert len(tta_views(faces, "none")) == 1
    flip = tta_views(faces, "flip")
    assert len(flip) == 2 and np.array_equal(flip[1], faces[:, :, ::-1])
    views = tta_views(faces, "crops", shift=2)
    assert len(views) == 10 and all(view.shape == faces.shape for view in views)
    up, down, left, right = views[1:5]
    # Shifted by two pixels, the rest reflected from the edge as RandomTranslation does in training.
    assert np.array_equal(up[:, 2:], faces[:, :-2]) and np.array_equal(up[:, :2], faces[:, 2:0:-1])
    assert np.array_equal(down[:, :-2], faces[:, 2:])
    assert np.array_equal(left[:, :, 2:], faces[:, :, :-2])
    assert np.array_equal(right[:, :, :-2], faces[:, :, 2:])
    assert all(np.array_equal(views[5 + i], views[i][:, :, ::-1]) for i in range(5))
    # At 40 x 40 inputs the shift scales with the size (3 px at 48 is 2 px at 40).
    small = tta_views(faces[:, :40, :40], "crops", shift=3)
    assert np.array_equal(small[1][:, 2:], faces[:, :38, :40])


def test_predictions_default_to_the_models_own_tta(model, sample_lines):
    faces = np.stack(
        [np.array(line.split(",")[1].split(), np.uint8).reshape(48, 48) for line in sample_lines[:8]]
    )
    card = {**model.card, "preprocessing": {**model.card["preprocessing"], "tta": "flip"}}
    flipping = LoadedModel(model=model.model, card=card, path=model.path)
    assert flipping.tta == "flip"
    assert np.allclose(predict_faces(flipping, faces), predict_faces(model, faces, tta="flip"))
    assert not np.allclose(predict_faces(flipping, faces), predict_faces(model, faces, tta="none"))


def test_an_ensemble_averages_its_members_and_shows_the_first_ones_feature_maps(sample_lines):
    faces = np.stack(
        [np.array(line.split(",")[1].split(), np.uint8).reshape(48, 48) for line in sample_lines[:8]]
    )
    model = load_model(MODELS_DIR / "vgg2")  # one network (the default is an ensemble itself)
    twice = build_ensemble([model.model, model.model])
    ensemble = LoadedModel(model=twice, card=model.card, path=model.path)
    with pytest.raises(ValueError, match="itself an ensemble"):
        build_ensemble([twice, model.model])
    assert np.allclose(
        predict_faces(ensemble, faces, tta="none"), predict_faces(model, faces, tta="none"), atol=1e-5
    )
    assert feature_layers(ensemble) == feature_layers(model)
    maps, own = layer_activations(ensemble, faces[0]), layer_activations(model, faces[0])
    assert all(np.allclose(maps[name], own[name], atol=1e-5) for name in own)
