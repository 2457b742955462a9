"""What a user meets before any model runs: the typed top-level API, cheap import, one ONNX Runtime, install hints."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import deepbatch
from deepbatch.optional import install_command

ROOT = Path(__file__).resolve().parent.parent

USER_SCRIPT = '''
import deepbatch

faces = deepbatch.extract_face("a.jpg")
embeddings = deepbatch.represent("a.jpg", model_nme="arcface_mbf")
result: int = deepbatch.verify("a.jpg", "b.jpg")
'''
# What mypy must say about each line of USER_SCRIPT: the typos are caught because the functions are typed.
EXPECTED_ERRORS = [
    ':4: error: Module has no attribute "extract_face"',
    ':5: error: Unexpected keyword argument "model_nme" for "represent"',
    ':6: error: Incompatible types in assignment',
]


def write_dist_info(folder: Path, name: str, version: str) -> None:
    """The metadata folder pip writes for an installed distribution."""
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("mypy", reason="needs mypy (the dev extra)")
    folder = tmp_path_factory.mktemp("user")
    (folder / "user.py").write_text(USER_SCRIPT)
    env = {"MYPYPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(folder / "cache"), "--no-error-summary",
                             "user.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("expected", EXPECTED_ERRORS)
def test_mypy_sees_the_typed_api_through_import_deepbatch(mypy_output: str, expected: str) -> None:
    assert expected in mypy_output


def test_every_lazy_export_is_typed_and_listed() -> None:
    tree = ast.parse((ROOT / "deepbatch" / "__init__.py").read_text())
    typed = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.If)
             and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
             for stmt in node.body if isinstance(stmt, ast.ImportFrom) for alias in stmt.names}
    exported = {*deepbatch._EXPORTS, *deepbatch._MODULES}
    assert typed == exported and set(deepbatch.__all__) == {"__version__", *exported}


def test_both_onnx_runtimes_installed_warns_at_import_with_the_fix(tmp_path: Path) -> None:
    write_dist_info(tmp_path, "onnxruntime", "1.32.0")
    write_dist_info(tmp_path, "onnxruntime-gpu", "1.31.1")
    code = "import sys; sys.path.append(sys.argv[1]); import deepbatch"
    result = subprocess.run([sys.executable, "-W", "always", "-c", code, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert "RuntimeWarning: both onnxruntime 1.32.0 and onnxruntime-gpu 1.31.1 are installed" in result.stderr
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install" in result.stderr


def test_one_onnx_runtime_gives_no_warning() -> None:
    result = subprocess.run([sys.executable, "-W", "error", "-c", "import deepbatch"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_install_hint_from_a_clone_is_an_editable_install_of_the_clone() -> None:
    assert install_command("mtcnn") == f"pip install -e '{ROOT}[mtcnn]'"


@pytest.mark.slow
@pytest.mark.parametrize("extra", ["gpu", "yolo", "mtcnn", "dlib", "ray"])
def test_install_hint_resolves_with_pip(extra: str, tmp_path: Path) -> None:
    """pip accepts the hinted command and finds the extra (a dry run: nothing is downloaded or installed)."""
    pytest.importorskip("setuptools", reason="reading the project's metadata without network needs setuptools")
    words = install_command(extra).split()
    target = words[-1].strip("'")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation",
               *words[2:-1], target]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Would install deepbatch" in result.stdout and "does not provide the extra" not in result.stderr
