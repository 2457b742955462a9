"""Shared fixtures: real test assets, and one built detector per registered backend.

Real weights and photos come from ``$DEEPBATCH_WEIGHTS`` and ``$DEEPBATCH_TEST_DATA`` (``make test`` points them at
``../shared``). Backends whose weights are too large to keep here are built from small graphs that
``tests/models.py`` derives or generates, keyed by detector name in ``generated_models``.

Without those assets (a fresh clone) every test that needs them skips and says why: the ``weights_dir`` and
``dataset_dir`` fixtures skip, and nothing is downloaded. Tests that run torch, TensorFlow or Ray are marked
``heavy``; ``make test-fast`` leaves them and the ``slow`` ones out.

No test reaches the network: :mod:`offline` blocks every connection that is not to this machine, and the
``no_network`` fixture fails a test that tried one. The temporary ``$DEEPBATCH_HOME`` is removed when the run ends.
Before the tests run, the header says which assets were found and how many tests need each missing one; at the end,
the skips are listed grouped by reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import cv2
import numpy as np
import pytest

from deepbatch.detectors import DETECTORS, build_detector
from deepbatch.errors import MissingDependencyError
from deepbatch.optional import load_triton_before_tensorflow

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
os.environ.setdefault("DEEPBATCH_WEIGHTS", str(SHARED / "weights"))
FETCHED_PHOTOS = ROOT / "tests" / "dataset" / "photos"  # where `make test-data` puts DeepFace's test photos
SHARED_PHOTOS = SHARED / "dataset"
os.environ.setdefault("DEEPBATCH_TEST_DATA", str(SHARED_PHOTOS if SHARED_PHOTOS.is_dir() else FETCHED_PHOTOS))
os.environ["DEEPBATCH_HOME"] = tempfile.mkdtemp(prefix="deepbatch-home-")  # prepared-model caches stay out of ~
TEST_HOME = Path(os.environ["DEEPBATCH_HOME"])
os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics otherwise probes the network (DNS lookups) on import
load_triton_before_tensorflow()  # test modules import TensorFlow (tf_keras, mtcnn) and torch into one process

import offline  # noqa: E402  (tests/ is on sys.path)
from memory import let_go_of_models  # noqa: E402

offline.install()

from generated_deepface_models import (  # noqa: E402  (tests/ is on sys.path)
    build_generated_deepface_models,
    build_generated_deepface_recognizers,
)
from models import (  # noqa: E402  (tests/ is on sys.path)
    build_generated_models,
    build_generated_recognizers,
    same_test_model_as_another,
)

ALL_DETECTORS = [name for name in DETECTORS.names(aliases=False) if name not in same_test_model_as_another()]
# Backends that run on torch or TensorFlow, and test files that start Ray or TensorFlow: the `heavy` tier.
HEAVY_EXTRAS = ("mtcnn", "yolo", "fastmtcnn")
HEAVY_DETECTORS = {name for name in DETECTORS.names() if getattr(DETECTORS.entry(name).factory, "extra", "") in
                   HEAVY_EXTRAS}
HEAVY_FILES = {"test_ray.py", "test_mtcnn.py", "test_deepface_keras.py"}
HEAVY_WORDS = ("ultralytics",)
PARITY_MAX_SIDE = 1024  # photos are scaled down to this: sizes stay mixed, looped backends stay affordable

# Images of different sizes and face counts used by the parity tests (small, large, portrait, group shots).
PARITY_IMAGES = ["couple.jpg", "selfie-many-people.jpg", "img1.jpg", "img12.jpg", "img25.jpg", "img45.jpg",
                 "img54.jpg", "img62.jpg", "img6.jpg"]


def is_heavy(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return (item.path.name in HEAVY_FILES or any(word in item.name for word in HEAVY_WORDS)
            or any(isinstance(v, str) and v in HEAVY_DETECTORS for v in params.values()))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> Optional[bool]:
    """Under ``-m "... not heavy"`` the heavy files are not even imported (importing them starts Ray or TensorFlow)."""
    if collection_path.name in HEAVY_FILES and "not heavy" in (config.getoption("markexpr") or ""):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    for item in items:
        if is_heavy(item):
            item.add_marker(pytest.mark.heavy)


def _weights_folder() -> Path:
    return Path(os.environ["DEEPBATCH_WEIGHTS"].split(os.pathsep)[0])


# The fixtures that skip without an asset, and how each asset is recognised.
ASSETS = {
    "weights_dir": ("test weights", lambda: _weights_folder(), lambda: (_weights_folder() / "scrfd_500m_kps.onnx")),
    "dataset_dir": ("test photos", lambda: dataset_path(), lambda: (dataset_path() / "couple.jpg")),
}


def pytest_report_header(config: pytest.Config) -> List[str]:
    """Which real assets this run has: without them the tests that need them skip (nothing is downloaded)."""
    lines = []
    for what, folder, marker in ASSETS.values():
        found = "found" if marker().is_file() else "NOT FOUND (the tests that need them skip)"
        lines.append(f"{what}: {folder()} {found}")
    return lines + ["network: blocked except loopback (tests/offline.py)"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Say before the run how many of the selected tests will skip for an asset that is missing."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    for fixture, (what, folder, marker) in ASSETS.items():
        if marker().is_file():
            continue
        needing = sum(1 for item in session.items if fixture in getattr(item, "fixturenames", ()))
        if needing:
            reporter.write_line(f"{needing} of {len(session.items)} selected tests need the {what} (not found in "
                                f"{folder()}): they will skip")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The skips grouped by reason, most frequent first."""
    reasons: Counter = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reasons[text.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.section(f"{sum(reasons.values())} skipped, by reason")
        for reason, count in reasons.most_common():
            terminalreporter.write_line(f"{count:6d}  {reason}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this run's temporary ``$DEEPBATCH_HOME``."""
    shutil.rmtree(TEST_HOME, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A network attempt that no test's ``no_network`` check saw (made during a fixture that then failed) fails
    the run."""
    if offline.attempts:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            tried = ", ".join(sorted(set(offline.attempts)))
            reporter.write_line(f"network attempts blocked outside any test: {tried}", red=True)


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    """Fail a test that tried to reach another machine (see :mod:`offline`), also when the code under test took
    the blocked connection as being offline; attempts made while a session fixture was built count for the first
    test that used it."""
    yield
    if offline.attempts:
        tried = ", ".join(sorted(set(offline.attempts)))
        offline.attempts.clear()
        pytest.fail(f"the test tried to reach the network: {tried}", pytrace=False)


@pytest.fixture(autouse=True, scope="module")
def models_let_go_after_each_file() -> Iterator[None]:
    """The models a test file built by name are let go when it ends (:func:`memory.let_go_of_models`)."""
    yield
    let_go_of_models()


def dataset_path() -> Path:
    return Path(os.environ["DEEPBATCH_TEST_DATA"])


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    folder = dataset_path()
    if not (folder / "couple.jpg").is_file():
        pytest.skip(f"test photos not found in {folder}: run `make test-data` or set DEEPBATCH_TEST_DATA")
    return folder


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    folder = _weights_folder()
    if not (folder / "scrfd_500m_kps.onnx").is_file():
        pytest.skip(f"test weights not found in {folder}: set DEEPBATCH_WEIGHTS to the folder that holds them")
    return folder


@pytest.fixture(scope="session")
def scrfd_320(weights_dir: Path):  # type: ignore[no-untyped-def]
    """SCRFD-500M on a 320x320 canvas: fast, for tests of mechanics that do not depend on the canvas size."""
    return build_detector("scrfd", input_size=320)


@pytest.fixture(scope="session")
def parity_images(dataset_dir: Path) -> List[np.ndarray]:
    images = [cv2.imread(str(dataset_dir / name)) for name in PARITY_IMAGES]
    return [cv2.resize(im, None, fx=PARITY_MAX_SIDE / max(im.shape[:2]), fy=PARITY_MAX_SIDE / max(im.shape[:2]),
                       interpolation=cv2.INTER_AREA) if max(im.shape[:2]) > PARITY_MAX_SIDE else im for im in images]


@pytest.fixture(scope="session")
def generated_models(tmp_path_factory: pytest.TempPathFactory, weights_dir: Path) -> Dict[str, dict]:
    """Detector name -> build arguments for backends tested on derived or generated graphs."""
    folder = tmp_path_factory.mktemp("models")
    return {**build_generated_models(folder, weights_dir), **build_generated_deepface_models(folder)}


@pytest.fixture(scope="session")
def generated_recognizers(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, dict]:
    """Recognizer name -> build arguments for models tested on generated graphs (weights not kept here)."""
    folder = tmp_path_factory.mktemp("recognizers")
    return {**build_generated_recognizers(folder), **build_generated_deepface_recognizers(folder)}


@pytest.fixture(scope="session")
def deepface_home(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A DeepFace home folder (``$DEEPFACE_HOME``) for the session: its weights folder holds the generated SFace
    graph and, with the dlib extra, dlib's real descriptor file; Keras models are added by the tests that use them
    (:func:`generated_deepface_models.deepface_keras_weights`). DeepFace's own model cache is emptied around it."""
    import shutil

    from generated_deepface_models import sface_signature

    from deepbatch.recognition.dlib_resnet import packaged_weights

    home = tmp_path_factory.mktemp("deepface-home")
    folder = home / ".deepface" / "weights"
    folder.mkdir(parents=True)
    sface_signature(folder / "face_recognition_sface_2021dec.onnx")
    dlib_file = packaged_weights()
    if dlib_file is not None:
        shutil.copyfile(dlib_file, folder / dlib_file.name)
    previous = os.environ.get("DEEPFACE_HOME")
    os.environ["DEEPFACE_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("DEEPFACE_HOME", None)
    else:
        os.environ["DEEPFACE_HOME"] = previous


def make_detector(name: str, generated: Dict[str, dict]):  # type: ignore[no-untyped-def]
    """The detector ``name``; the test skips where the packages of its extra are not installed."""
    try:
        return build_detector(name, **generated.get(name, {}))
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session", params=ALL_DETECTORS)
def detector(request: pytest.FixtureRequest, generated_models: Dict[str, dict]):  # type: ignore[no-untyped-def]
    return make_detector(request.param, generated_models)
