"""DeepFace's ``normalization`` choices for a recognizer's input, and DeepFace's embedding normalisations.

DeepFace hands its models a face in [0, 1] and, for ``normalization`` other than ``"base"``, rescales it to
[0, 255] first. Each choice is declared here as a mean and std on the [0, 255] BGR pixels (DeepFace applies the
VGGFace means to BGR channels), plus one per-face standardisation:

=============  =====================================================================================
name           input to the model
=============  =====================================================================================
``base``       the model's own pre-processing (its :class:`InputSpec`; DeepFace's ``base`` is x / 255,
               which only suits DeepFace's own Keras ports, so deepbatch keeps what each model was trained on)
``raw``        x, in [0, 255]
``Facenet``    (x - mean(face)) / std(face), per face over all its pixels and channels
``Facenet2018``  x / 127.5 - 1
``VGGFace``    x - (93.5940, 104.7624, 129.1863) in B, G, R
``VGGFace2``   x - (91.4953, 103.8827, 131.0912) in B, G, R
``ArcFace``    (x - 127.5) / 128
=============  =====================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from ..errors import UnsupportedNormalizationError as UnsupportedNormalizationError
from ..ops.letterbox import InputSpec, normalize

BGR = Tuple[float, float, float]


@dataclass(frozen=True)
class Normalization:
    """One of DeepFace's ``normalization`` choices: ``(x - mean) / std`` on [0, 255] pixels, ``mean`` and ``std``
    scalars or B, G, R triples (``None``: the model's own), then per-face standardisation with ``per_face``."""

    name: str
    mean: Optional[Union[float, BGR]] = None
    std: Optional[Union[float, BGR]] = None
    per_face: bool = False


NORMALIZATIONS: Dict[str, Normalization] = {n.name.lower(): n for n in (
    Normalization("base"),
    Normalization("raw", 0.0, 1.0),
    Normalization("Facenet", 0.0, 1.0, per_face=True),
    Normalization("Facenet2018", 127.5, 127.5),
    Normalization("VGGFace", (93.5940, 104.7624, 129.1863), 1.0),
    Normalization("VGGFace2", (91.4953, 103.8827, 131.0912), 1.0),
    Normalization("ArcFace", 127.5, 128.0),
)}


NORMALIZATION_NAMES: Tuple[str, ...] = tuple(n.name for n in NORMALIZATIONS.values())


@dataclass(frozen=True)
class StandardizedSpec(InputSpec):
    """An :class:`InputSpec` whose normalised faces are then standardised one by one (DeepFace's ``Facenet``)."""


def spec_for(spec: InputSpec, normalization: str) -> InputSpec:
    """``spec`` (a model's own) with DeepFace's ``normalization`` applied, in the model's channel order."""
    choice = NORMALIZATIONS.get(str(normalization).lower())
    if choice is None:
        raise UnsupportedNormalizationError(normalization, NORMALIZATION_NAMES)
    if choice.mean is None or choice.std is None:
        return spec
    mean, std = (_model_order(v, spec.rgb) for v in (choice.mean, choice.std))
    kind = StandardizedSpec if choice.per_face else InputSpec
    return kind(size=spec.size, mean=mean, std=std, rgb=spec.rgb, keep_ratio=spec.keep_ratio, center=spec.center,
                pad_value=spec.pad_value)


def _model_order(value: Union[float, BGR], rgb: bool) -> Union[float, BGR]:
    if isinstance(value, tuple) and rgb:
        return (value[2], value[1], value[0])
    return value


def normalize_faces(faces: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 BGR faces to the ``(N, 3, S, S)`` float32 blob ``spec`` declares."""
    blob = normalize(faces, spec)
    if isinstance(spec, StandardizedSpec):
        flat = blob.reshape(len(blob), -1)
        mean = flat.mean(axis=1, keepdims=True)
        std = flat.std(axis=1, keepdims=True)
        flat -= mean
        flat /= np.where(std > 0, std, 1.0)  # a flat grey face would divide by zero
    return blob


def minmax_normalize(embeddings: np.ndarray, low: float, high: float) -> np.ndarray:
    """DeepFace's ``minmax_normalize``: each value clipped to the model's ``[low, high]`` and scaled to [0, 1]."""
    if high <= low:
        return embeddings
    return ((np.clip(embeddings, low, high) - low) / (high - low)).astype(np.float32)


def l2_normalize(embeddings: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as DeepFace's ``l2_normalize``: computed in float64,
    returned as float32, the dtype of every embedding deepbatch returns (``dtype=np.float64`` keeps the precision
    for arithmetic on them, as the distances do)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return (embeddings / np.where(norms > 0, norms, 1.0)).astype(dtype, copy=False)
