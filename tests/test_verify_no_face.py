"""One rule for an image without a face: ``deepbatch verify`` enforces detection as ``deepbatch.verify`` does (exit 1,
naming the image); comparing whole images is the explicit ``--whole-image``, with a warning. A threshold that decides
nothing is refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_cli import run_cli

import deepbatch
from deepbatch.errors import ArgumentError, FaceNotDetectedError

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "samples" / "cat.jpg"  # a real photo without a human face


@pytest.fixture(scope="module")
def blank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("blank") / "blank.png"
    cv2.imwrite(str(path), np.full((480, 640, 3), 255, np.uint8))
    return path


@pytest.fixture(scope="module")
def no_face(request: pytest.FixtureRequest, blank: Path) -> Path:
    return CAT if request.param == "cat" else blank


@pytest.mark.parametrize("no_face", ["cat", "blank"], indirect=True)
def test_command_line_refuses_an_image_without_a_face_naming_it(no_face, dataset_dir, weights_dir):  # type: ignore[no-untyped-def]
    run = run_cli(["verify", no_face, dataset_dir / "img1.jpg"])
    assert run.code == 1 and run.stdout == ""
    assert f"error: Face could not be detected in img1 ({no_face})" in run.stderr
    assert "--whole-image" in run.stderr


@pytest.mark.parametrize("no_face", ["cat", "blank"], indirect=True)
def test_the_api_refuses_the_same_image(no_face, weights_dir):  # type: ignore[no-untyped-def]
    with pytest.raises(FaceNotDetectedError, match=f"img1 \\({no_face}\\)"):
        deepbatch.verify(str(no_face), str(no_face))


@pytest.mark.parametrize("option", ["--whole-image", "--no-enforce-detection"])
def test_whole_image_is_an_explicit_option_with_a_warning(option, weights_dir):  # type: ignore[no-untyped-def]
    run = run_cli(["verify", CAT, CAT, option])
    assert run.code == 0
    assert "warning: --whole-image" in run.stderr
    assert run.stdout.startswith("same person: cosine distance 0.0000")  # the same whole image, as the API gives


def test_whole_image_and_enforce_detection_contradict(weights_dir):  # type: ignore[no-untyped-def]
    run = run_cli(["verify", CAT, CAT, "--whole-image", "--enforce-detection"])
    assert run.code == 2 and "contradict" in run.stderr


def test_verify_help_says_what_happens_to_an_image_without_a_face(capsys):  # type: ignore[no-untyped-def]
    from deepbatch.cli import main

    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "1 when an image has no face" in text and "--whole-image" in text
    assert "by default it is a row without faces" not in text


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), -0.1, "0.5", True])
def test_a_threshold_that_decides_nothing_is_refused(threshold, dataset_dir, weights_dir):  # type: ignore[no-untyped-def]
    with pytest.raises(ArgumentError, match="threshold must be"):
        deepbatch.verify(str(dataset_dir / "img1.jpg"), str(dataset_dir / "img2.jpg"), threshold=threshold)
