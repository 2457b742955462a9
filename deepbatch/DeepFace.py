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
    names, see :func:`deepbatch.list_recognizers`), a detector for ``"face_detector"``. Built once, then cached.

    Args:
        model_name: A DeepFace model or detector name (``VGG-Face``, ``ArcFace``, ``opencv``, ...).
        task: ``"facial_recognition"`` or ``"face_detector"``.

    Returns:
        A ``Recognizer`` or a ``Detector``.

    Raises:
        UnsupportedFeatureError: A DeepFace task deepbatch does not offer (attributes, anti-spoofing).
        ArgumentError: An unknown task.
    """
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
    """DeepFace's ``verify``: :func:`deepbatch.verify` with DeepFace's defaults.

    Args:
        img1_path: An image, or a precomputed embedding.
        img2_path: The other image or embedding.
        model_name: A DeepFace model name (default ``VGG-Face``) or any registered recognizer.
        detector_backend: A detector name (default ``opencv``).
        distance_metric: ``"cosine"``, ``"euclidean"``, ``"euclidean_l2"`` or ``"angular"``.
        enforce_detection: As in ``deepbatch.verify``.
        align: As in ``deepbatch.verify``.
        expand_percentage: As in ``deepbatch.verify``.
        normalization: As in ``deepbatch.verify``.
        silent: As in ``deepbatch.verify``.
        threshold: As in ``deepbatch.verify``.
        anti_spoofing: As in ``deepbatch.verify``.

    Returns:
        DeepFace's result dict, as ``deepbatch.verify``.
    """
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
    in batches and gives one list of faces per image (a list of one image gives its faces), as DeepFace.

    Args:
        img_path: An image, or a list of images.
        model_name: A DeepFace model name (default ``VGG-Face``) or any registered recognizer.
        enforce_detection: As in ``deepbatch.represent``.
        detector_backend: A detector name (default ``opencv``).
        align: As in ``deepbatch.represent``.
        expand_percentage: As in ``deepbatch.represent``.
        normalization: As in ``deepbatch.represent``.
        anti_spoofing: As in ``deepbatch.represent``.
        max_faces: As in ``deepbatch.represent``.
        l2_normalize: As in ``deepbatch.represent``.
        minmax_normalize: As in ``deepbatch.represent``.
        return_face: As in ``deepbatch.represent``.
        **options: deepbatch's own keyword options (``batch_size``, ``on_error``, ...).

    Returns:
        One dict per face; for a list of several images, one list of dicts per image.
    """
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
    deepbatch's (warped onto the five-point template); ``facial_area`` and ``confidence`` are as DeepFace's.

    Args:
        img_path: An image, or a list of images.
        detector_backend: A detector name (default ``opencv``).
        enforce_detection: As in ``deepbatch.extract_faces``.
        align: As in ``deepbatch.extract_faces``.
        expand_percentage: As in ``deepbatch.extract_faces``.
        grayscale: As in ``deepbatch.extract_faces``.
        color_face: As in ``deepbatch.extract_faces``.
        normalize_face: As in ``deepbatch.extract_faces``.
        anti_spoofing: As in ``deepbatch.extract_faces``.
        **options: deepbatch's own keyword options (``batch_size``, ``on_error``, ...).

    Returns:
        One dict per face; for a list of several images, one list of dicts per image.
    """
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
    batches).

    Args:
        img_path: One query image, or a list of images.
        db_path: The folder of face photos.
        model_name: A DeepFace model name (default ``VGG-Face``) or any registered recognizer.
        distance_metric: As in ``deepbatch.find``.
        enforce_detection: As in ``deepbatch.find``.
        detector_backend: A detector name (default ``opencv``).
        align: As in ``deepbatch.find``.
        similarity_search: As in ``deepbatch.find``.
        k: As in ``deepbatch.find``.
        expand_percentage: As in ``deepbatch.find``.
        threshold: As in ``deepbatch.find``.
        normalization: As in ``deepbatch.find``.
        silent: As in ``deepbatch.find``.
        refresh_database: As in ``deepbatch.find``.
        anti_spoofing: As in ``deepbatch.find``.
        datastore_format: As in ``deepbatch.find``.
        return_type: As in ``deepbatch.find``.
        **options: deepbatch's own keyword options (``batch_size``, ``on_error``, ...).

    Returns:
        One table per query face, as ``deepbatch.find``.
    """
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
    """DeepFace's ``register``: :func:`deepbatch.register` with DeepFace's defaults (faces embedded in batches).

    Args:
        img: Images, or a folder of them.
        img_name: The name stored with each image (default: its path).
        model_name: A DeepFace model name (default ``VGG-Face``) or any registered recognizer.
        detector_backend: A detector name (default ``opencv``).
        enforce_detection: As in ``deepbatch.register``.
        align: As in ``deepbatch.register``.
        l2_normalize: As in ``deepbatch.register``.
        expand_percentage: As in ``deepbatch.register``.
        normalization: As in ``deepbatch.register``.
        anti_spoofing: As in ``deepbatch.register``.
        database_type: ``"postgres"`` (DeepFace's default), ``"pgvector"`` or ``"embedded"``.
        connection_details: A connection string, a dict of settings, or the embedded store's file.
        connection: An open connection to use instead.
        **options: deepbatch's own keyword options (``batch_size``, ``on_error``, ...).

    Returns:
        DeepFace's ``{"inserted": faces written}``, with ``images``, ``skipped`` and ``errors`` as
        ``deepbatch.register`` gives them.
    """
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
    """DeepFace's ``search``: :func:`deepbatch.search` with DeepFace's defaults.

    Args:
        img: One query image, or a list of images.
        model_name: A DeepFace model name (default ``VGG-Face``) or any registered recognizer.
        detector_backend: A detector name (default ``opencv``).
        distance_metric: As in ``deepbatch.search``.
        enforce_detection: As in ``deepbatch.search``.
        align: As in ``deepbatch.search``.
        l2_normalize: As in ``deepbatch.search``.
        expand_percentage: As in ``deepbatch.search``.
        normalization: As in ``deepbatch.search``.
        anti_spoofing: As in ``deepbatch.search``.
        similarity_search: As in ``deepbatch.search``.
        k: As in ``deepbatch.search``.
        database_type: As in ``register``.
        connection_details: As in ``register``.
        connection: As in ``register``.
        search_method: ``"exact"`` or ``"ann"`` (the approximate index).
        return_type: As in ``deepbatch.search``.
        **options: deepbatch's own keyword options (``batch_size``, ``on_error``, ...).

    Returns:
        One table per query face, as ``deepbatch.search``.
    """
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
    """DeepFace's ``build_index``: :func:`deepbatch.build_index` with DeepFace's defaults.

    Args:
        model_name: A DeepFace model name (default ``VGG-Face``) or any registered recognizer.
        detector_backend: A detector name (default ``opencv``).
        align: As in ``register``.
        l2_normalize: As in ``register``.
        database_type: As in ``register``.
        connection: As in ``register``.
        connection_details: As in ``register``.
        max_neighbors_per_node: The HNSW graph's links per node.
        **options: deepbatch's own keyword options (``batch_size``, ``on_error``, ...).
    """
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
    """Not offered: deepbatch has no emotion, age, gender or race models.

    Raises:
        UnsupportedFeatureError: Always, naming what deepbatch offers instead.
    """
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
    """Not offered: DeepFace's ``stream`` shows a webcam window, and deepbatch runs headless OpenCV.

    Raises:
        UnsupportedFeatureError: Always, naming what deepbatch offers instead.
    """
    raise UnsupportedFeatureError("stream (a live webcam window) is not offered: deepbatch runs headless OpenCV; embed "
                                  "video frames with deepbatch.iter_extract_faces or `deepbatch represent VIDEO`")
