"""The documentation: the README starts with the two set-up commands that .ci/run runs, its links reach real pages,
and the site (docs/, mkdocs.yml, the API reference from the docstrings) builds in strict mode, offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # the target of a Markdown link, without its anchor


def test_readme_starts_with_the_two_set_up_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert first_block is not None, "README.md has no bash block"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci.index("make demo") < ci.index("make test") < ci.index("make lint") < ci.index("make docs")


def test_readme_links_reach_files_of_the_repository() -> None:
    targets = [t for t in LINK.findall(README.read_text(encoding="utf-8")) if "://" not in t]
    assert len(targets) >= 10, targets
    missing = [t for t in targets if not (ROOT / t).is_file()]
    assert missing == [], f"README.md links to files that do not exist: {missing}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / t).resolve() for t in LINK.findall(README.read_text(encoding="utf-8")) if "://" not in t}
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md") if p.name != "index.md"}  # index.md: the site's home
    pages.add((ROOT / "docs" / "api" / "index.md").resolve())
    unlinked = sorted(str(p.relative_to(ROOT)) for p in pages - linked)
    assert unlinked == [], f"docs pages the README does not link: {unlinked}"


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    """A broken link or anchor, a page left out of the nav or a docstring section that does not parse fails it."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed: pip install -e '.[docs]'")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr[-4000:]
    assert "WARNING" not in built.stderr, built.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "faces" / "index.html").read_text(encoding="utf-8")
    assert 'id="deepbatch.extract_faces"' in api and "Parameters:" in api and "Raises:" in api

