"""Which classes of a multi-class detector are faces: found by name in the file, or named by the caller."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Union

from ..errors import ArgumentError, ModelFormatError

ClassChoice = Optional[Sequence[Union[int, str]]]
_FACE_NAME = re.compile(r"(^|[^a-z])face", re.IGNORECASE)  # "face", "human_face", "Face"; not "surface"


def is_face_name(name: str) -> bool:
    return bool(_FACE_NAME.search(name))


def is_placeholder_name(class_id: int, name: str) -> bool:
    """A name a trainer writes when the dataset gave none: the id itself (``'0'``) or ``'class0'``."""
    return name.strip().lower() in (str(class_id), f"class{class_id}")


def face_class_ids(names: Optional[Dict[int, str]], classes: ClassChoice, where: str) -> Optional[List[int]]:
    """The class ids whose candidates are faces, sorted.

    ``names`` are the file's class names (``None`` when it records none, or a single class named only by its id: a
    one-class face model, every candidate is a face, and None is returned unless ``classes`` names ids).
    ``classes`` (ids or names) overrides the lookup by name: it serves files whose classes are expressions or
    attributes of a face. A file with names of which none is a face, and no ``classes``, raises
    :class:`ModelFormatError` listing them.
    """
    if classes is not None:
        if isinstance(classes, (str, int)):
            classes = [classes]
        ids = []
        by_name = {v.lower(): k for k, v in (names or {}).items()}
        for item in classes:
            if isinstance(item, str) and item.lower() in by_name:
                ids.append(by_name[item.lower()])
            elif isinstance(item, int) and not isinstance(item, bool) and (names is None or item in names):
                ids.append(int(item))
            else:
                valid = ", ".join(f"{k}: {v!r}" for k, v in sorted((names or {}).items())) or "none recorded"
                raise ArgumentError(f"classes={list(classes)!r}: {item!r} is not a class of {where} "
                                    f"(its classes: {valid})")
        if not ids:
            raise ArgumentError("classes= names no class; pass the ids or names of the classes that are faces")
        return sorted(set(ids))
    if names is None or (len(names) == 1 and all(is_placeholder_name(k, v) for k, v in names.items())):
        return None  # one class whose name says nothing (yolov8-face checkpoints: {0: '0'}): a one-class face model
    ids = [k for k, v in names.items() if is_face_name(v)]
    if not ids:
        listed = ", ".join(f"{k}: {v!r}" for k, v in sorted(names.items()))
        raise ModelFormatError(
            f"{where}: none of its classes is a face ({listed}), so it is not decoded as a face detector; if its "
            "classes are faces (expressions, attributes of a face), pass classes=[...] with the ids or names that "
            "count as faces")
    return sorted(ids)
