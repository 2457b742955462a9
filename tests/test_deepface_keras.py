"""DeepFace's Keras recognition models through deepbatch equal DeepFace's own code on the same weights.

No real DeepFace weight file is kept here, so each model is built by DeepFace's own architecture code with random
weights, saved in DeepFace's format under DeepFace's file name in a temporary DeepFace home
(:func:`generated_deepface_models.deepface_keras_weights`); DeepFace and deepbatch then both load that file. The
photos go in whole (``detector_backend="skip"``, a detector both libraries share), so both see the same pixels.
TensorFlow runs here: the file is in the ``heavy`` tier.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

if "tensorflow" not in sys.modules:  # DeepFace's Keras 2 models: TensorFlow reads this once, when imported
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
pytest.importorskip("tf_keras")
pytest.importorskip("deepface")

from generated_deepface_models import deepface_keras_weights  # noqa: E402

from deepbatch.recognition import RECOGNIZERS  # noqa: E402
from deepbatch.recognition.base import Recognizer  # noqa: E402

KERAS_MODELS = ["Facenet", "Facenet512", "OpenFace", "DeepID", "GhostFaceNet", "ArcFace", "VGG-Face"]
PHOTOS = ["img1.jpg", "couple.jpg"]  # a portrait and a landscape photo: both ways of fitting into the input
# deepbatch runs the faces of a chunk in one call, DeepFace one at a time: kernels block the sums differently, which
# moves float32 outputs by a few units of the last place. Measured: 0 to 3e-7 of the largest value; allowed 1e-5.
EMBEDDING_RTOL = 1e-5
# DeepFace rounds distances to 6 decimals; cosine distances of embeddings equal to EMBEDDING_RTOL differ by less.
DISTANCE_ATOL = 1e-5


@pytest.fixture(scope="module")
def deepface_module(deepface_home: Path) -> Any:
    from deepface import DeepFace
    from deepface.modules import modeling

    for models in getattr(modeling, "cached_models", {}).values():
        models.clear()  # models DeepFace built from another home folder
    return DeepFace


@pytest.fixture(scope="module")
def built(deepface_home: Path, deepface_module: Any) -> Dict[str, Recognizer]:
    """deepbatch's recognizer per model name, built lazily after its weight file is generated."""
    return {}


def recognizer_for(name: str, built: Dict[str, Recognizer], home: Path) -> Recognizer:
    if name not in built:
        deepface_keras_weights(home, name)
        built[name] = RECOGNIZERS.create(name)
    return built[name]


def embeddings(results: List[List[Dict[str, Any]]]) -> List[np.ndarray]:
    return [np.asarray(faces[0]["embedding"], np.float64) for faces in results]


def assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= EMBEDDING_RTOL * np.abs(theirs).max()


@pytest.mark.parametrize("name", KERAS_MODELS)
def test_embedding_equals_deepfaces(name: str, built: Dict[str, Recognizer], deepface_module: Any,
                                    deepface_home: Path, dataset_dir: Path) -> None:
    import deepbatch

    recognizer = recognizer_for(name, built, deepface_home)
    paths = [str(dataset_dir / photo) for photo in PHOTOS]
    ours = embeddings(deepbatch.represent(paths, model_name=recognizer, detector_backend="skip"))
    for path, mine in zip(paths, ours):
        theirs = deepface_module.represent(path, model_name=name, detector_backend="skip")[0]["embedding"]
        assert_same(mine, np.asarray(theirs, np.float64))
    assert not np.allclose(ours[0], ours[1], rtol=EMBEDDING_RTOL)  # the photos are told apart


@pytest.mark.parametrize("normalization", ["raw", "Facenet", "Facenet2018", "VGGFace", "VGGFace2", "ArcFace"])
def test_normalizations_equal_deepfaces(normalization: str, built: Dict[str, Recognizer], deepface_module: Any,
                                        deepface_home: Path, dataset_dir: Path) -> None:
    import deepbatch

    recognizer = recognizer_for("DeepID", built, deepface_home)
    path = str(dataset_dir / PHOTOS[0])
    ours = deepbatch.represent(path, model_name=recognizer, detector_backend="skip", normalization=normalization)
    theirs = deepface_module.represent(path, model_name="DeepID", detector_backend="skip",
                                       normalization=normalization)
    assert_same(np.asarray(ours[0]["embedding"]), np.asarray(theirs[0]["embedding"]))


def test_l2_and_minmax_normalize_equal_deepfaces(built: Dict[str, Recognizer], deepface_module: Any,
                                                 deepface_home: Path, dataset_dir: Path) -> None:
    import deepbatch

    recognizer = recognizer_for("DeepID", built, deepface_home)
    path = str(dataset_dir / PHOTOS[1])
    options = dict(detector_backend="skip", l2_normalize=True, minmax_normalize=True)
    ours = deepbatch.represent(path, model_name=recognizer, **options)
    theirs = deepface_module.represent(path, model_name="DeepID", **options)
    assert_same(np.asarray(ours[0]["embedding"]), np.asarray(theirs[0]["embedding"]))


def test_verify_answers_as_deepface(built: Dict[str, Recognizer], deepface_module: Any, deepface_home: Path,
                                    dataset_dir: Path) -> None:
    """``from deepbatch import DeepFace``: the same call, the same distance, threshold, verdict and confidence."""
    from deepbatch import DeepFace

    recognizer_for("DeepID", built, deepface_home)
    RECOGNIZERS.clear_cache()  # the name below builds from this home folder
    pair = (str(dataset_dir / PHOTOS[0]), str(dataset_dir / PHOTOS[1]))
    ours = DeepFace.verify(*pair, model_name="DeepID", detector_backend="skip")
    theirs = deepface_module.verify(*pair, model_name="DeepID", detector_backend="skip")
    assert ours["threshold"] == theirs["threshold"] and ours["verified"] == theirs["verified"]
    assert ours["distance"] == pytest.approx(theirs["distance"], abs=DISTANCE_ATOL)
    assert ours["confidence"] == pytest.approx(theirs["confidence"], abs=0.01)
    assert ours["model"] == theirs["model"] == "DeepID"


def test_one_model_call_per_chunk_of_faces(built: Dict[str, Recognizer], deepface_home: Path) -> None:
    recognizer = recognizer_for("DeepID", built, deepface_home)
    model = recognizer.model  # type: ignore[attr-defined]
    sizes: List[int] = []

    def counted(batch: np.ndarray, training: bool = False) -> Any:
        sizes.append(len(batch))
        return model(batch, training=training)

    recognizer.model = counted  # type: ignore[attr-defined]
    try:
        faces = np.random.default_rng(0).integers(0, 256, (10, 80, 70, 3), dtype=np.uint8)
        out = recognizer.embed(faces, batch_size=4)
    finally:
        recognizer.model = model  # type: ignore[attr-defined]
    assert sizes == [4, 4, 2] and out.shape == (10, 160)
