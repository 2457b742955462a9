"""DeepFace's module, on deepbatch: ``from deepbatch import DeepFace`` in place of ``from deepface import DeepFace``.

The functions keep DeepFace's names, argument names, order and defaults (``model_name="VGG-Face"``,
``detector_backend="opencv"``), so code written for DeepFace runs with one changed import; DeepFace's recognition
models read DeepFace's own weight files (``~/.deepface/weights``) and give DeepFace's embeddings (see
:mod:`deepbatch.recognition.deepface_models`), run in batches. Each function also takes deepbatch's keyword-only
options (``batch_size``, ``on_error``, ...) and passes them on.

What DeepFace offers and deepbatch does not raises :class:`UnsupportedFeatureError` saying so: ``analyze`` (no
age, gender, emotion or race models) and ``stream`` (a webcam window; deepbatch runs headless OpenCV). The database
functions (``register``, ``search``, ``build_index``) are :mod:`deepbatch.database`'s, with DeepFace's defaults.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

from .errors import ArgumentError
from .errors import UnsupportedFeatureError as UnsupportedFeatureError

__all__ = ["build_model", "verify", "represent", "extract_faces", "find", "register", "search", "build_index",
           "analyze", "stream"]

DEFAULT_MODEL = "VGG-Face"
DEFAULT_DETECTOR = "opencv"


def _one_item(img_path: Any, result: Any) -> Any:
    """DeepFace's shape for a batch of one (a list of one image, or an (1, H, W, C) array): that image's faces."""
    if isinstance(img_path, list) and len(img_path) == 1:
        return result[0]
    if getattr(img_path, "ndim", 0) == 4 and len(img_path) == 1:
        return result[0]
    return result


def build_model(model_name: str, task: str = "facial_recognition") -> Any:
    """The model DeepFace's ``build_model`` names: a recognizer for ``task="facial_recognition"`` (DeepFace's model
    names, see :func:`deepbatch.list_recognizers`), a detector for ``"face_detector"``. Built once, then cached."""
    if task == "facial_recognition":
        from .recognition.base import build_recognizer

        return build_recognizer(model_name)
    if task == "face_detector":
        from .detectors.base import build_detector

        return build_detector(model_name)
    if task in ("facial_attribute", "spoofing"):
        raise UnsupportedFeatureError(f"deepbatch has no {task} models ({model_name!r}); it finds, aligns and embeds "
                                      "faces: tasks 'facial_recognition' and 'face_detector'")
    raise ArgumentError(f"unimplemented task - {task}; use 'facial_recognition' or 'face_detector'")


def verify(
    img1_path: Any,
    img2_path: Any,
    model_name: str = DEFAULT_MODEL,
    detector_backend: str = DEFAULT_DETECTOR,
    distance_metric: str = "cosine",
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: int = 0,
    normalization: str = "base",
    silent: bool = False,
    threshold: Optional[float] = None,
    anti_spoofing: bool = False,
) -> Dict[str, Any]:
    """DeepFace's ``verify``: :func:`deepbatch.verify` with DeepFace's defaults."""
    from .api.verify import verify as run

    return run(img1_path, img2_path, model_name, detector_backend, distance_metric, enforce_detection, align,
               expand_percentage, normalization, silent, threshold, anti_spoofing)


def represent(
    img_path: Any,
    model_name: str = DEFAULT_MODEL,
    enforce_detection: bool = True,
    detector_backend: str = DEFAULT_DETECTOR,
    align: bool = True,
    expand_percentage: int = 0,
    normalization: str = "base",
    anti_spoofing: bool = False,
    max_faces: Optional[int] = None,
    l2_normalize: bool = False,
    minmax_normalize: bool = False,
    return_face: bool = False,
    **options: Any,
) -> Union[List[Dict[str, Any]], List[List[Dict[str, Any]]]]:
    """DeepFace's ``represent``: :func:`deepbatch.represent` with DeepFace's defaults; a list of images is embedded
    in batches and gives one list of faces per image (a list of one image gives its faces), as DeepFace."""
    from .api.represent import represent as run

    return _one_item(img_path, run(img_path, model_name, enforce_detection, detector_backend, align,
                                   expand_percentage, normalization, anti_spoofing, max_faces, l2_normalize,
                                   minmax_normalize, return_face, **options))


def extract_faces(
    img_path: Any,
    detector_backend: str = DEFAULT_DETECTOR,
    enforce_detection: bool = True,
    align: bool = True,
    expand_percentage: int = 0,
    grayscale: bool = False,
    color_face: str = "rgb",
    normalize_face: bool = True,
    anti_spoofing: bool = False,
    **options: Any,
) -> Union[List[Dict[str, Any]], List[List[Dict[str, Any]]]]:
    """DeepFace's ``extract_faces``: :func:`deepbatch.extract_faces` with DeepFace's defaults. The ``face`` crops are
    deepbatch's (warped onto the five-point template); ``facial_area`` and ``confidence`` are as DeepFace's."""
    from .api.extract import extract_faces as run

    return _one_item(img_path, run(img_path, detector_backend, enforce_detection, align, expand_percentage, grayscale,
                                   color_face, normalize_face, anti_spoofing, **options))


def find(
    img_path: Any,
    db_path: str,
    model_name: str = DEFAULT_MODEL,
    distance_metric: str = "cosine",
    enforce_detection: bool = True,
    detector_backend: str = DEFAULT_DETECTOR,
    align: bool = True,
    similarity_search: bool = False,
    k: Optional[int] = None,
    expand_percentage: int = 0,
    threshold: Optional[float] = None,
    normalization: str = "base",
    silent: bool = False,
    refresh_database: bool = True,
    anti_spoofing: bool = False,
    datastore_format: str = "npz",
    return_type: Optional[str] = None,
    **options: Any,
) -> List[Any]:
    """DeepFace's ``find``: :func:`deepbatch.find` with DeepFace's defaults (the database folder is embedded in
    batches)."""
    from .api.find import find as run

    return run(img_path, db_path, model_name, distance_metric, enforce_detection, detector_backend, align,
               similarity_search, k, expand_percentage, threshold, normalization, silent, refresh_database,
               anti_spoofing, datastore_format, return_type, **options)


def register(
    img: Any,
    img_name: Optional[Union[str, List[str]]] = None,
    model_name: str = DEFAULT_MODEL,
    detector_backend: str = DEFAULT_DETECTOR,
    enforce_detection: bool = True,
    align: bool = True,
    l2_normalize: bool = False,
    expand_percentage: int = 0,
    normalization: str = "base",
    anti_spoofing: bool = False,
    database_type: str = "postgres",
    connection_details: Optional[Union[Dict[str, Any], str]] = None,
    connection: Any = None,
    **options: Any,
) -> Dict[str, Any]:
    """DeepFace's ``register``: :func:`deepbatch.register` with DeepFace's defaults (faces embedded in batches)."""
    from .database import register as run

    return run(img, img_name, model_name, detector_backend, enforce_detection, align, l2_normalize, expand_percentage,
               normalization, anti_spoofing, database_type, connection_details, connection, **options)


def search(
    img: Any,
    model_name: str = DEFAULT_MODEL,
    detector_backend: str = DEFAULT_DETECTOR,
    distance_metric: str = "cosine",
    enforce_detection: bool = True,
    align: bool = True,
    l2_normalize: bool = False,
    expand_percentage: int = 0,
    normalization: str = "base",
    anti_spoofing: bool = False,
    similarity_search: bool = False,
    k: Optional[int] = None,
    database_type: str = "postgres",
    connection_details: Optional[Union[Dict[str, Any], str]] = None,
    connection: Any = None,
    search_method: str = "exact",
    return_type: Optional[str] = None,
    **options: Any,
) -> List[Any]:
    """DeepFace's ``search``: :func:`deepbatch.search` with DeepFace's defaults."""
    from .database import search as run

    return run(img, model_name, detector_backend, distance_metric, enforce_detection, align, l2_normalize,
               expand_percentage, normalization, anti_spoofing, similarity_search, k, database_type,
               connection_details, connection, search_method, return_type, **options)


def build_index(
    model_name: str = DEFAULT_MODEL,
    detector_backend: str = DEFAULT_DETECTOR,
    align: bool = True,
    l2_normalize: bool = False,
    database_type: str = "postgres",
    connection: Any = None,
    connection_details: Optional[Union[Dict[str, Any], str]] = None,
    max_neighbors_per_node: int = 32,
    **options: Any,
) -> None:
    """DeepFace's ``build_index``: :func:`deepbatch.build_index` with DeepFace's defaults."""
    from .database import build_index as run

    run(model_name, detector_backend, align, l2_normalize, database_type, connection, connection_details,
        max_neighbors_per_node, **options)


def analyze(
    img_path: Any,
    actions: Union[Tuple[str, ...], List[str]] = ("emotion", "age", "gender", "race"),
    enforce_detection: bool = True,
    detector_backend: str = DEFAULT_DETECTOR,
    align: bool = True,
    expand_percentage: int = 0,
    silent: bool = False,
    anti_spoofing: bool = False,
) -> List[Dict[str, Any]]:
    """Not offered: deepbatch has no emotion, age, gender or race models."""
    raise UnsupportedFeatureError(f"analyze ({', '.join(actions)}) is not offered: deepbatch has no facial attribute "
                                  "models; keep deepface's DeepFace.analyze for it")


def stream(
    db_path: str = "",
    model_name: str = DEFAULT_MODEL,
    detector_backend: str = DEFAULT_DETECTOR,
    distance_metric: str = "cosine",
    enable_face_analysis: bool = True,
    source: Any = 0,
    time_threshold: int = 5,
    frame_threshold: int = 5,
    anti_spoofing: bool = False,
    output_path: Optional[str] = None,
    debug: bool = False,
) -> None:
    """Not offered: DeepFace's ``stream`` shows a webcam window, and deepbatch runs headless OpenCV."""
    raise UnsupportedFeatureError("stream (a live webcam window) is not offered: deepbatch runs headless OpenCV; embed "
                                  "video frames with deepbatch.iter_extract_faces or `deepbatch represent VIDEO`")
