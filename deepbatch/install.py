"""The ``pip install`` command that adds an extra to this deepbatch, wherever it was installed from.

It imports nothing from deepbatch, so that :class:`~deepbatch.errors.MissingDependencyError` can name the command
without an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

# What an extra cannot install itself: facenet-pytorch pins torch < 2.3, so it goes in without its dependencies.
AFTER_EXTRA: Dict[str, str] = {
    "fastmtcnn": "pip install --no-deps 'facenet-pytorch>=2.5'",
    # deepface pins opencv-contrib (a second cv2); tf-keras pins the full `tensorflow`: both without dependencies,
    # tf-keras at the installed TensorFlow's version
    "deepface": "pip install --no-deps 'deepface>=0.0.93' \"tf-keras==$(python -c 'import tensorflow as tf; "
                "print(tf.__version__.rsplit(\".\", 1)[0])').*\"",
}


def _source_tree() -> Optional[Path]:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "setup.py").is_file() else None


def _direct_url() -> Optional[dict]:
    import json
    from importlib import metadata

    try:
        text = metadata.distribution("deepbatch").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    return json.loads(text) if text else None


def install_command(extra: str = "") -> str:
    """A ``pip install`` command that adds ``extra`` to this deepbatch, wherever it was installed from.

    Code running from a clone (editable or on ``PYTHONPATH``) gives ``pip install -e '/path/to/clone[extra]'``; an
    install from a local folder ``pip install '/path/to/folder[extra]'``; an install from a git URL
    ``pip install 'deepbatch[extra] @ git+URL'``; otherwise ``pip install 'deepbatch[extra]'``.
    """
    after = f" && {AFTER_EXTRA[extra]}" if extra in AFTER_EXTRA else ""
    return _install_extra(extra) + after


def _install_extra(extra: str) -> str:
    suffix = f"[{extra}]" if extra else ""
    tree = _source_tree()
    if tree is not None:  # running from a clone (installed editable, or on PYTHONPATH)
        return f"pip install -e '{tree}{suffix}'"
    origin = _direct_url()
    if origin is not None:
        url = str(origin.get("url", ""))
        vcs = origin.get("vcs_info")
        if vcs:
            revision = f"@{vcs['requested_revision']}" if vcs.get("requested_revision") else ""
            return f"pip install 'deepbatch{suffix} @ {vcs.get('vcs', 'git')}+{url}{revision}'"
        if url.startswith("file://"):
            return f"pip install '{url[len('file://'):]}{suffix}'"
        return f"pip install 'deepbatch{suffix} @ {url}'"
    return f"pip install 'deepbatch{suffix}'"
