"""A griffe extension for the documentation site: the docstrings' Sphinx roles (``:func:`deepbatch.verify```,
``:class:`~deepbatch.records.ImageRecord```) become inline code (``deepbatch.verify``, ``ImageRecord``), as the
Markdown that mkdocstrings renders has no roles. Loaded by mkdocs.yml; the docstrings themselves are unchanged."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
