"""Regenerate the numbers of the documentation's examples by running them: the ``extract_faces("couple.jpg")``
facial area and confidence of the short tour (README.md and docs/usage.md), the example output row of ``deepbatch
detect img1.jpg`` and the line ``deepbatch verify img1.jpg img2.jpg`` prints (docs/cli.md). Run on the test photos
(``$DEEPBATCH_TEST_DATA``) with the default models; ``python tools/docs_examples.py`` rewrites the pages,
``--check`` only says whether they are current (tests/test_docs_examples.py checks that each page equals what this
renders)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
INDENT = " " * 25  # the column of the short tour's comments

FACIAL_AREA = re.compile(r'faces\[0\]\["facial_area"\]  # \{.*?\}\n(?: +#  .*?\}\n)?', re.DOTALL)
CONFIDENCE = re.compile(r'faces\[0\]\["confidence"\]   # [0-9.]+')
ROW = re.compile(r'(An example row \(`detect img1\.jpg`\):\n\n```json\n)(.*?)(```)', re.DOTALL)
VERIFY = re.compile(r"(for `img1\.jpg img2\.jpg` it prints\s+)`same person: cosine distance [0-9.]+ \(threshold(\s+)"
                    r"[0-9.]+, confidence [0-9]+%\)`")


# The pages that show each example: every pattern of a page must be found in it.
PAGES = {README: (FACIAL_AREA, CONFIDENCE), ROOT / "docs" / "usage.md": (FACIAL_AREA, CONFIDENCE),
         ROOT / "docs" / "cli.md": (ROW, VERIFY)}


def _photos() -> Path:
    return Path(os.environ.get("DEEPBATCH_TEST_DATA", ROOT.parent / "shared" / "dataset"))


def _cli(*args: str) -> str:
    from deepbatch.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(args))
    if code != 0:
        raise RuntimeError(f"deepbatch {' '.join(args)} exited with {code}")
    return out.getvalue().strip()


def outputs() -> Dict[str, Any]:
    """What the examples print, run on the test photos from their folder (the pages' relative names)."""
    import deepbatch

    here = os.getcwd()
    os.chdir(_photos())
    try:
        face = deepbatch.extract_faces("couple.jpg")[0]
        row = json.loads(_cli("detect", "img1.jpg", "--no-progress", "-q"))
        verdict = _cli("verify", "img1.jpg", "img2.jpg")
    finally:
        os.chdir(here)
    return {"facial_area": face["facial_area"], "confidence": face["confidence"], "row": row, "verify": verdict}


def _facial_area(area: Dict[str, Any]) -> str:
    items = [f"{key!r}: {value!r}" for key, value in area.items()]
    return (f'faces[0]["facial_area"]  # {{{", ".join(items[:6])},\n'
            f'{INDENT}#  {", ".join(items[6:])}}}\n')


def _row(row: Dict[str, Any]) -> str:
    """The row with numbers shortened (2 decimals, 4 for the confidence), laid out as docs/cli.md shows it."""
    def short(values: Any) -> Any:
        return [short(v) for v in values] if isinstance(values, list) else round(values, 2)

    faces = ",\n            ".join(
        f'{{"box": {json.dumps(short(f["box"]))}, "confidence": {round(f["confidence"], 4)},\n'
        f'            "landmarks": {json.dumps(short(f["landmarks"]))}}}' for f in row["faces"])
    head = {k: row[k] for k in ("path", "frame", "timestamp", "width", "height")}
    return f"{json.dumps(head)[:-1]},\n \"faces\": [{faces}],\n \"error\": {json.dumps(row['error'])}}}\n"


def render(text: str, values: Dict[str, Any]) -> str:
    """A page's ``text`` with its example numbers replaced by ``values`` (from :func:`outputs`)."""
    text = FACIAL_AREA.sub(lambda _: _facial_area(values["facial_area"]), text, count=1)
    text = CONFIDENCE.sub(f'faces[0]["confidence"]   # {values["confidence"]}', text, count=1)
    text = ROW.sub(lambda m: m.group(1) + _row(values["row"]) + m.group(3), text, count=1)
    distance, threshold, confidence = re.search(r"distance ([0-9.]+) \(threshold ([0-9.]+), confidence ([0-9]+%)",
                                                values["verify"]).groups()  # type: ignore[union-attr]
    return VERIFY.sub(lambda m: f"{m.group(1)}`same person: cosine distance {distance} (threshold{m.group(2)}"
                                f"{threshold}, confidence {confidence})`", text, count=1)


def main() -> int:
    texts = {page: page.read_text(encoding="utf-8") for page in PAGES}
    for page, patterns in PAGES.items():
        for pattern in patterns:
            if not pattern.search(texts[page]):
                print(f"{page.relative_to(ROOT)} has no example matching {pattern.pattern!r}", file=sys.stderr)
                return 1
    values = outputs()
    stale = 0
    for page, text in texts.items():
        rendered = render(text, values)
        name = page.relative_to(ROOT)
        if "--check" in sys.argv[1:]:
            print(f"{name} examples are current" if rendered == text else f"{name} examples are out of date")
            stale |= rendered != text
        else:
            page.write_text(rendered, encoding="utf-8")
    return stale


if __name__ == "__main__":
    sys.exit(main())
