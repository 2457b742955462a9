"""Property tests: random shapes, dtypes, value ranges and bytes never crash deepbatch with anything but its own
documented exceptions, and a batch always gives one result per input.

Every registered backend is exercised (the ``detector`` fixture is parametrised over the registry). Arrays are drawn
as parameters (sides, channels, dtype, value range, seed) and built with numpy, so examples stay cheap and shrink to
readable parameters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepbatch
from deepbatch.detectors import Detector
from deepbatch.errors import ImageDecodeError, ImageError, ImageFormatError
from deepbatch.io.images import load_image, to_bgr

BACKEND_EXAMPLES = settings(max_examples=6, deadline=None, database=None,
                            suppress_health_check=[HealthCheck.too_slow])
CHEAP_EXAMPLES = settings(max_examples=80, deadline=None, database=None)

DTYPES = ["uint8", "uint16", "int8", "int16", "int32", "int64", "uint32", "float16", "float32", "float64", "bool"]
RANGES = ["unit", "byte", "wide", "nan"]  # values in [0, 1], in [0, 255], beyond [0, 255], or with a NaN
CHANNELS = [None, 1, 2, 3, 4, 5]  # None: a 2-D array
USABLE_CHANNELS = {None, 1, 3, 4}
SIDES = st.one_of(st.integers(1, 64), st.sampled_from([1, 2, 3, 400, 1500]))  # tiny, thin, large


@dataclass(frozen=True)
class ArraySpec:
    """How to build one random image array, and whether deepbatch must accept it."""

    height: int
    width: int
    channels: Optional[int]
    dtype: str
    value_range: str
    seed: int

    @property
    def usable(self) -> bool:
        if self.channels not in USABLE_CHANNELS:
            return False
        if self.dtype in ("uint8", "uint16", "bool"):
            return True  # every value of these types has a meaning
        return self.value_range in ("unit", "byte")  # floats and the other integer types must lie in [0, 255]

    def build(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        shape = (self.height, self.width) if self.channels is None else (self.height, self.width, self.channels)
        if self.dtype == "bool":
            return rng.random(shape) > 0.5
        if self.dtype.startswith("float"):
            top = 1.0 if self.value_range in ("unit", "nan") else 255.0
            array = (rng.random(shape) * top).astype(self.dtype)
            if self.value_range == "wide":
                self._plant(array, rng, -3.0 if self.seed % 2 else 256.5)
            if self.value_range == "nan":
                self._plant(array, rng, np.nan)
            return array
        top = 2 if self.value_range == "unit" else int(min(256, np.iinfo(self.dtype).max + 1))
        if self.dtype == "uint16":
            top = 65536 if self.value_range == "wide" else top
        array = rng.integers(0, top, shape).astype(self.dtype)
        if self.value_range in ("wide", "nan") and self.dtype not in ("uint8", "uint16"):
            self._plant(array, rng, -1 if self.dtype == "int8" else 256)
        return array

    @staticmethod
    def _plant(array: np.ndarray, rng: np.random.Generator, value: float) -> None:
        """Put ``value`` at a random pixel of the first channel (an alpha channel is dropped unread)."""
        pixels = array.reshape(array.shape[0] * array.shape[1], -1)
        pixels[rng.integers(len(pixels)), 0] = value


@st.composite
def array_specs(draw: st.DrawFn) -> ArraySpec:
    return ArraySpec(draw(SIDES), draw(SIDES), draw(st.sampled_from(CHANNELS)), draw(st.sampled_from(DTYPES)),
                     draw(st.sampled_from(RANGES)), draw(st.integers(0, 2**16)))


def check_face_dicts(entry: List[dict], height: int, width: int) -> None:
    assert entry, "a usable image gives at least the whole-image face when detection is not enforced"
    for face in entry:
        area = face["facial_area"]
        assert 0 <= area["x"] <= width and 0 <= area["y"] <= height
        assert area["x"] + area["w"] <= width and area["y"] + area["h"] <= height
        assert face["face"].ndim == 3 and face["face"].shape[2] == 3 and np.isfinite(face["face"]).all()


@BACKEND_EXAMPLES
@given(specs=st.lists(array_specs(), max_size=4))
def test_extract_faces_gives_one_entry_per_input_and_only_documented_errors(detector: Detector,
                                                                           specs: List[ArraySpec]) -> None:
    result = deepbatch.extract_faces([spec.build() for spec in specs], detector_backend=detector,
                                     enforce_detection=False, on_error="skip", batch_size=3)
    assert len(result) == len(specs)
    for index, spec in enumerate(specs):
        if spec.usable:
            assert index not in result.errors
            check_face_dicts(result[index], spec.height, spec.width)
        else:
            assert isinstance(result.errors[index], ImageFormatError) and result[index] == []


@BACKEND_EXAMPLES
@given(specs=st.lists(array_specs().filter(lambda spec: spec.usable), max_size=4))
def test_detect_faces_gives_one_faces_per_image_inside_it(detector: Detector, specs: List[ArraySpec]) -> None:
    found = detector.detect_faces([spec.build() for spec in specs], batch_size=2)
    assert len(found) == len(specs)
    for faces, spec in zip(found, specs):
        assert np.all(faces.boxes >= 0) and np.all(faces.boxes[:, 0::2] <= spec.width)
        assert np.all(faces.boxes[:, 1::2] <= spec.height) and np.all(np.isfinite(faces.scores))


@BACKEND_EXAMPLES
@given(spec=array_specs().filter(lambda spec: not spec.usable), position=st.integers(0, 3))
def test_detect_faces_names_the_unusable_image(detector: Detector, spec: ArraySpec, position: int) -> None:
    images: List[Any] = [np.zeros((8, 8, 3), np.uint8)] * 3
    images.insert(position, spec.build())
    with pytest.raises(ImageFormatError) as caught:
        detector.detect_faces(images)
    assert caught.value.index == position


@CHEAP_EXAMPLES
@given(spec=array_specs().filter(lambda spec: spec.usable))
def test_usable_array_becomes_contiguous_bgr_uint8_of_the_same_size(spec: ArraySpec) -> None:
    image = to_bgr(spec.build())
    assert image.shape == (spec.height, spec.width, 3) and image.dtype == np.uint8 and image.flags.c_contiguous


@CHEAP_EXAMPLES
@given(spec=array_specs().filter(lambda spec: not spec.usable))
def test_unusable_array_raises_format_error(spec: ArraySpec) -> None:
    with pytest.raises(ImageFormatError):
        to_bgr(spec.build(), index=0)


@CHEAP_EXAMPLES
@given(data=st.binary(max_size=4096))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        image = load_image(data)
    except ImageDecodeError:
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


def _encoded_samples() -> List[bytes]:
    rng = np.random.default_rng(7)
    image = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3)).astype(np.uint8), (5, 5), 0)
    return [cv2.imencode(ext, image)[1].tobytes() for ext in (".jpg", ".png", ".bmp", ".webp", ".tiff")]


ENCODED = _encoded_samples()


@CHEAP_EXAMPLES
@given(which=st.integers(0, len(ENCODED) - 1), cut=st.floats(0.0, 1.0),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=6))
def test_damaged_image_files_decode_or_raise_decode_error(which: int, cut: float, flips: list) -> None:
    data = bytearray(ENCODED[which][: max(1, int(len(ENCODED[which]) * cut))])
    for where, value in flips:
        data[min(len(data) - 1, int(len(data) * where))] = value
    try:
        image = load_image(bytes(data))
    except ImageDecodeError:
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


@CHEAP_EXAMPLES
@given(text=st.text(max_size=300).filter(lambda t: not t.lower().startswith(("http://", "https://"))))
def test_any_string_loads_or_raises_an_image_error(text: str) -> None:
    try:
        image = load_image(text)
    except ImageError:
        return
    assert image.ndim == 3 and os.path.isfile(text)
