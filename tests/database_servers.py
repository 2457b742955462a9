"""Throwaway PostgreSQL servers for the face database tests, on Unix sockets in temporary folders.

``pgvector_server`` runs the PostgreSQL with pgvector that PyPI's ``pgserver`` bundles; ``postgres_server`` runs
this machine's own PostgreSQL (``initdb`` and ``pg_ctl`` on the PATH), as the ``postgres`` user when run as root.
``$DEEPBATCH_TEST_PGVECTOR_URI`` / ``$DEEPBATCH_TEST_POSTGRES_URI`` name an existing server instead (a database
the tests may fill). Each yields a function that creates a fresh database and returns its URI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

START_TIMEOUT_S = 60


def fresh_database(uri: str) -> Callable[[], str]:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[database]')")

    def create() -> str:
        name = f"faces_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        base, _, query = uri.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")

    return create


@contextmanager
def pgvector_server() -> Iterator[Callable[[], str]]:
    if os.environ.get("DEEPBATCH_TEST_PGVECTOR_URI"):
        yield fresh_database(os.environ["DEEPBATCH_TEST_PGVECTOR_URI"])
        return
    pgserver = pytest.importorskip("pgserver", reason="pgserver (PostgreSQL with pgvector) is not installed")
    folder = tempfile.mkdtemp(prefix="deepbatch-pgvector-")
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield fresh_database(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _as_postgres(command: List[str]) -> List[str]:
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def postgres_server() -> Iterator[Callable[[], str]]:
    if os.environ.get("DEEPBATCH_TEST_POSTGRES_URI"):
        yield fresh_database(os.environ["DEEPBATCH_TEST_POSTGRES_URI"])
        return
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not on the PATH; set DEEPBATCH_TEST_POSTGRES_URI")
    folder = Path(tempfile.mkdtemp(prefix="deepbatch-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    run = dict(check=True, capture_output=True, timeout=START_TIMEOUT_S)
    try:
        subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]), **run)
        options = f"-c listen_addresses='' -k {folder} -p 5432"  # a Unix socket in our folder: no port to collide on
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
                                     "start"]), **run)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc}")
    try:
        yield fresh_database(f"postgresql://postgres@/postgres?host={folder}&port=5432")
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]), check=False,
                       capture_output=True, timeout=START_TIMEOUT_S)
        shutil.rmtree(folder, ignore_errors=True)
