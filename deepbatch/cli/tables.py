"""``deepbatch models``: the registered models, their weights and batching, as a table that fits the terminal."""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from .console import say
from .exit_codes import EXIT_OK


def _built_batching(registry: Any, name: str) -> str:
    """The batching of ``name``: from its class where the class says it (so backends on TensorFlow or PyTorch are
    not loaded), else from a loaded instance."""
    designed = getattr(registry.entry(name).factory, "designed_batching", None)
    known = designed() if callable(designed) else None
    if known is not None:
        return str(known)
    try:
        built = registry.create(name, providers="cpu")
    except TypeError:  # a backend without an ONNX session takes no providers argument
        built = registry.create(name)
    except Exception as exc:  # report the model that cannot load, list the others
        return f"does not load: {type(exc).__name__}: {exc}"
    model = getattr(built, "model", None)
    return str(getattr(built, "batching", None) or getattr(model, "batching", "one call per chunk"))


def _weights_status(spec: Any, extra: str = "", factory: Any = None) -> str:
    """Found weights' path, or what is missing (packages first) and the command or source that gives it. A backend
    whose weights live outside deepbatch's lookup (DeepFace's folder) finds them with its ``locate_weights``."""
    from ..optional import install_command, missing_modules
    from ..weights import find_weights, supply_note

    packages = missing_modules(extra) if extra else []
    if packages:
        return f"missing package {', '.join(packages)}: {install_command(extra)}"
    locate = getattr(factory, "locate_weights", None)
    if spec is None and callable(locate):
        found_elsewhere = locate()
        return str(found_elsewhere) if found_elsewhere is not None else f"missing ({factory.bundled_weights})"
    if spec is None:
        return "none needed" + (f" (packages of deepbatch[{extra}] installed)" if extra else "")
    found = find_weights(spec)
    if found is not None:
        return str(found)
    if not spec.url:
        return f"missing ({' or '.join(spec.names)}; {supply_note(spec)})"
    return f"not downloaded yet ({' or '.join(spec.names)}; fetched on first use from {spec.source})"


def _registry_rows(registry: Any, batching: bool = False) -> List[Tuple[str, ...]]:
    rows: List[Tuple[str, ...]] = []
    aliases: Dict[str, List[str]] = {}
    for alias, target in registry.aliases().items():
        aliases.setdefault(target, []).append(alias)
    for name in registry.names(aliases=False):
        entry = registry.entry(name)
        label = name + (f" (= {', '.join(sorted(aliases[name]))})" if name in aliases else "")
        spec = entry.defaults.get("weights") or getattr(entry.factory, "weights", None)
        status = _weights_status(spec, getattr(entry.factory, "extra", ""), entry.factory)
        row: Tuple[str, ...] = (label, entry.summary, status)
        if batching:
            found = not status.startswith(("missing", "not downloaded"))
            row = (label, entry.summary, _built_batching(registry, name) if found else "-", status)
        rows.append(row)
    return rows


TABLE_WIDTH = 100  # the columns a table fits in, unless --wide


def _column_widths(natural: List[int], room: int, shortest: int = 16) -> List[int]:
    """Widths for columns whose widest cells are ``natural`` in ``room`` characters: a column keeps its own width
    where that is under its share, and the wider ones share the rest by the square root of their widths (a long
    column gets more room, without squeezing the others to a word per line); no column narrower than
    ``shortest`` or its own width."""
    while shortest > 4 and sum(_shares(natural, room, shortest)) > room:  # many columns: narrower ones fit
        shortest -= 1
    return _shares(natural, room, shortest)


def _shares(natural: List[int], room: int, shortest: int) -> List[int]:
    widths = list(natural)
    open_columns = list(range(len(natural)))
    left = room
    while open_columns:
        weight = sum(natural[i] ** 0.5 for i in open_columns)
        shares = {i: max(shortest, int(left * natural[i] ** 0.5 / weight)) for i in open_columns}
        narrow = [i for i in open_columns if natural[i] <= shares[i]]
        if not narrow:
            for i in open_columns:
                widths[i] = min(natural[i], shares[i])
            break
        for i in narrow:
            left -= natural[i]
            open_columns.remove(i)
    return widths


def _table(rows: List[Tuple[str, ...]], header: Tuple[str, ...], width: Optional[int] = TABLE_WIDTH) -> str:
    """Rows under ``header``, every cell wrapped so that no line is longer than ``width`` (None: one line per row,
    as wide as its cells)."""
    import textwrap

    table = [header, *rows]
    natural = [max(len(r[i]) for r in table) for i in range(len(header))]
    gap = "  "
    widths = natural if width is None else _column_widths(natural, width - len(gap) * len(header))
    lines = []
    for row in table:
        cells = [textwrap.wrap(cell, w, break_on_hyphens=False) or [""] for cell, w in zip(row, widths)]
        for k in range(max(len(c) for c in cells)):
            parts = [f"{(c[k] if k < len(c) else ''):<{w}}" for c, w in zip(cells, widths)]
            lines.append((gap + gap.join(parts)).rstrip())
    return "\n".join(lines)


def _table_width() -> int:
    """:data:`TABLE_WIDTH`, or a terminal's width where stdout is a narrower one."""
    try:
        return min(TABLE_WIDTH, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError, io.UnsupportedOperation):  # not a terminal (a pipe, a file, captured in a test)
        return TABLE_WIDTH


def cmd_models(args: argparse.Namespace) -> int:
    from ..detectors import DETECTORS

    header: Tuple[str, ...] = ("name", "model", *(["batching"] if args.batching else []), "weights")
    width = None if args.wide else _table_width()
    say("detectors")
    say(_table(_registry_rows(DETECTORS, args.batching), header, width))
    say("recognizers")
    try:
        from ..recognition import RECOGNIZERS
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("deepbatch"):
            raise
        say("  (none: this installation has no deepbatch.recognition)")
        return EXIT_OK
    say(_table(_registry_rows(RECOGNIZERS, args.batching), header, width))
    return EXIT_OK
