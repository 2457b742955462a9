"""Finding model weights: explicit path, ``$DEEPBATCH_WEIGHTS``, the cache folder, then a verified download.

The cache folder is ``~/.deepbatch/weights``; ``$DEEPBATCH_HOME`` moves ``~/.deepbatch``. ``$DEEPBATCH_WEIGHTS`` may
name several folders separated by ``os.pathsep``.

Model files are proved before they are used:

* every registered download has a pinned SHA-256 (of the file, and of the archive it comes in), from a fixed release
  or commit; a file without one is never downloaded (the user fetches it). Downloads stream to a temporary file
  beside the target and are renamed into place only when their digest matches, so a truncated or corrupt download is
  never cached;
* a file found in a weights folder under *any* of a model's names must have one of the model's registered digests
  (the download's, or another published export's) when the model has any; within a folder the download's own name
  is looked up first;
* a file of a model with no registered digest is used from a folder the user named in ``$DEEPBATCH_WEIGHTS``; in
  deepbatch's own cache (which it fills only with verified downloads) it must be vouched for;
* a pickle (``.pt``, ``.pth``, ``.pkl``: loading one runs code) is used only when its digest is registered, when
  its path was given explicitly, or when it is listed in ``$DEEPBATCH_TRUSTED_WEIGHTS``;
* the loaders do not trust that check to still hold: they read the bytes once, hash those very bytes and load them
  from memory (:func:`read_checked`), so a file swapped after it was checked (even with the same size and mtime) is
  refused, never loaded.

``$DEEPBATCH_TRUSTED_WEIGHTS`` (paths or SHA-256 digests separated by ``os.pathsep``) is the opt-out for custom files
placed under a registered name; an explicit path (``model_path=...``) is never checked against a registered digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, Iterator, Optional, Tuple, Union

from .errors import ChecksumError, UnverifiedWeightsError, WeightsNotFoundError

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
_CHUNK = 1 << 20
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle")
TRUSTED_ENV = "DEEPBATCH_TRUSTED_WEIGHTS"
_verified: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime) -> digest, so a file is hashed once per process
_pinned: Dict[str, FrozenSet[str]] = {}  # real path -> the digests its loader must find in the bytes it loads


@dataclass(frozen=True)
class WeightFile:
    """Where a model's weights come from.

    ``filename`` is the name looked up in ``$DEEPBATCH_WEIGHTS`` and the cache, then each of ``alternatives`` (other
    names the same model is published under); ``url`` the official public source at a fixed release or commit (a
    file, or a zip archive holding ``archive_member``, which is saved under its own name); ``sha256`` the digest of
    the file named :attr:`download_name`, where known (required for a download); ``archive_sha256`` the digest of
    the zip archive, which is kept in the cache so that another model from the same archive needs no second download;
    ``homepage`` where a person can read about and fetch the model by hand; ``manual`` how to make the file when
    nobody publishes it (shown when it is missing); ``also_sha256`` the digests of other public exports of the same
    model, accepted under any of its names (a found file must have one of :attr:`digests`).
    """

    filename: str
    alternatives: Tuple[str, ...] = ()
    url: Optional[str] = None
    sha256: Optional[str] = None
    archive_member: Optional[str] = None
    homepage: Optional[str] = None
    archive_sha256: Optional[str] = None
    manual: Optional[str] = None
    also_sha256: Tuple[str, ...] = ()

    @property
    def names(self) -> Tuple[str, ...]:
        return (self.filename,) + self.alternatives

    @property
    def digests(self) -> FrozenSet[str]:
        """Every registered SHA-256 of the model's file (empty when none is known)."""
        return frozenset(d.lower() for d in ((self.sha256,) if self.sha256 else ()) + self.also_sha256)

    @property
    def lookup_names(self) -> Tuple[str, ...]:
        """:attr:`names` in lookup order: the download's own (pinned) name first."""
        first = self.download_name if self.sha256 and self.download_name in self.names else self.filename
        return (first,) + tuple(n for n in self.names if n != first)

    @property
    def download_name(self) -> str:
        return self.archive_member or self.filename

    @property
    def source(self) -> str:
        if self.url and self.archive_member:
            return f"{self.url} (file {self.archive_member} inside the archive)"
        return self.url or self.homepage or "its publisher"


# InsightFace's smallest model pack: SCRFD-0.5GF (det_500m.onnx) and ArcFace MobileFaceNet (w600k_mbf.onnx), the
# default detector and recognizer; one download gives both. Non-commercial research licence.
BUFFALO_SC_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_sc.zip"
BUFFALO_SC_SHA256 = "57d31b56b6ffa911c8a73cfc1707c73cab76efe7f13b675a05223bf42de47c72"
INSIGHTFACE_LICENCE = "InsightFace: non-commercial research only"


def deepbatch_home() -> Path:
    return Path(os.environ.get("DEEPBATCH_HOME") or Path.home() / ".deepbatch")


def cache_dir() -> Path:
    """Folder where downloaded weights are kept: ``$DEEPBATCH_HOME/weights``."""
    return deepbatch_home() / "weights"


def search_dirs() -> Tuple[Path, ...]:
    """Folders searched for a registered file name, in order: ``$DEEPBATCH_WEIGHTS`` entries, then the cache."""
    env = os.environ.get("DEEPBATCH_WEIGHTS", "")
    dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return tuple(dirs) + (cache_dir(),)


def sha256_of(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def find_weights(spec: WeightFile) -> Optional[Path]:
    """The first existing file of ``spec.lookup_names`` in :func:`search_dirs`, or ``None``; nothing is
    downloaded."""
    for folder in search_dirs():
        for name in spec.lookup_names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def resolve_weights(spec: WeightFile, path: Optional[PathLike] = None, download: bool = True) -> Path:
    """The local file holding ``spec``'s weights, downloading it into the cache when it is nowhere else.

    An explicit ``path`` wins and must exist; it is the caller's own file and is not checked against a digest. A
    found file is checked (:func:`verify_found`). Raises :class:`WeightsNotFoundError` with what is missing, where
    it was looked for, where to put it and where to get it.
    """
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise WeightsNotFoundError(f"weights file {str(explicit)!r} does not exist")
        _pinned.pop(os.path.realpath(explicit), None)  # the caller's own file: loaded as it is
        return explicit
    found = find_weights(spec)
    if found is not None:
        return verify_found(spec, found)
    target = cache_dir() / spec.download_name
    if download and spec.url and spec.sha256 is None:
        raise WeightsNotFoundError(_missing_message(spec, "its download has no pinned SHA-256, so it is not fetched "
                                                    "automatically"))
    if download and spec.url:
        try:
            downloaded = download_weights(spec, target)
            _pinned[os.path.realpath(downloaded)] = spec.digests
            return downloaded
        except (urllib.error.URLError, OSError) as exc:
            raise WeightsNotFoundError(_missing_message(spec, f"downloading {spec.url} failed: {exc}")) from exc
    raise WeightsNotFoundError(_missing_message(spec, "no download source is registered" if not spec.url else
                                                "downloading is turned off"))


def _trusted(path: Path, digest: Optional[str]) -> bool:
    entries = [e.strip() for e in os.environ.get(TRUSTED_ENV, "").split(os.pathsep) if e.strip()]
    real = os.path.realpath(path)
    return any(e.lower() == digest or os.path.realpath(os.path.expanduser(e)) == real for e in entries)


def file_digest(path: Path) -> str:
    """SHA-256 of ``path``, computed once per process for an unchanged file."""
    info = path.stat()
    key = (os.path.realpath(path), info.st_size, info.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_of(path)
    return _verified[key]


def _in_named_folder(found: Path) -> bool:
    """Whether ``found`` lies in a folder the user named in ``$DEEPBATCH_WEIGHTS`` (not deepbatch's own cache)."""
    parent = os.path.realpath(found.parent)
    return any(os.path.realpath(d) == parent for d in search_dirs()[:-1])


def verify_found(spec: WeightFile, found: Path) -> Path:
    """``found`` (a file found in a weights folder under one of ``spec``'s names) if it may be used, else raise.

    When the model has registered digests, the file must have one of them, whatever name it was found under
    (:class:`ChecksumError`). Without one, a pickle must be vouched for, and so must any file in deepbatch's own
    cache (:class:`UnverifiedWeightsError`); a file in a folder named in ``$DEEPBATCH_WEIGHTS`` is the user's choice.
    Files listed in ``$DEEPBATCH_TRUSTED_WEIGHTS`` (path or digest) pass. The digests that passed are remembered
    for the path, and :func:`read_checked` demands them again of the bytes a loader reads.
    """
    real = os.path.realpath(found)
    pinned = spec.digests
    is_pickle = found.suffix.lower() in PICKLE_SUFFIXES
    if _trusted(found, None):
        _pinned.pop(real, None)
        return found
    if not pinned and not is_pickle and _in_named_folder(found):
        _pinned.pop(real, None)
        return found
    digest = file_digest(found)
    if _trusted(found, digest):
        _pinned[real] = frozenset({digest})
        return found
    if pinned and digest not in pinned:
        raise ChecksumError(
            f"{found} has SHA-256 {digest}, but the registered {spec.filename} (also found as "
            f"{', '.join(spec.alternatives) or 'no other name'}) has {' or '.join(sorted(pinned))}: it is "
            f"truncated, corrupt or another file. Delete it to download it again, or, if it is your own file, pass "
            f"its path explicitly or add it to ${TRUSTED_ENV}"
        )
    if not pinned:
        what = ("is a pickle (loading it runs code)" if is_pickle else
                "is in deepbatch's own cache, which holds only verified downloads, but")
        raise UnverifiedWeightsError(
            f"{found} {what} has no registered SHA-256; deepbatch loads it only when you vouch for it: pass its path "
            f"explicitly (model_path=...), add its path or SHA-256 ({digest}) to ${TRUSTED_ENV}"
            + ("" if is_pickle else ", or move it to a folder named in $DEEPBATCH_WEIGHTS")
        )
    _pinned[real] = pinned
    return found


def check_loaded(path: PathLike, digest: str) -> None:
    """Raise :class:`ChecksumError` unless ``digest`` (of the bytes a loader is about to use) is one that
    :func:`verify_found` accepted for ``path``; a path it did not check (explicit, or vouched for by path) passes."""
    expected = _pinned.get(os.path.realpath(path))
    if expected is not None and digest not in expected:
        raise ChecksumError(
            f"{path} changed after it was checked: the bytes read now have SHA-256 {digest}, not "
            f"{' or '.join(sorted(expected))}; it was not loaded. Replace it with the registered file, or pass your "
            "own file's path explicitly"
        )


def read_checked(path: PathLike) -> bytes:
    """The bytes of ``path``, read once and hashed: loaders load from these bytes, never from the path again, so
    what runs is what was hashed (see :func:`check_loaded`)."""
    data = Path(path).read_bytes()
    check_loaded(path, hashlib.sha256(data).hexdigest())
    return data


@contextlib.contextmanager
def checked_copy(path: PathLike) -> Iterator[Path]:
    """A private copy of the very bytes :func:`read_checked` hashed, for a loader that takes only a path (it
    unpickles from that copy, in a folder only this user can write, removed afterwards)."""
    data = read_checked(path)
    with tempfile.TemporaryDirectory(prefix="deepbatch-weights-") as folder:
        copy = Path(folder) / Path(path).name
        with open(copy, "xb") as out:
            out.write(data)
        yield copy


def supply_note(spec: WeightFile) -> str:
    """What a user must do to get a model that has no download source (empty when it has one)."""
    if spec.url:
        return ""
    how = spec.manual or (f"get or export it as described at {spec.homepage}" if spec.homepage else
                          "export it yourself")
    return f"no download source: you must supply {spec.filename!r} yourself ({how})"


# The models deepbatch takes out of a model pack, by the pack's URL: named when one of them is missing, so that one
# download is seen to serve them all (InsightFace's buffalo_sc.zip holds both default models).
ARCHIVE_MODELS: Dict[str, Dict[str, str]] = {
    BUFFALO_SC_URL: {"det_500m.onnx": "the default detector, scrfd", "w600k_mbf.onnx": "the default recognizer, "
                     "arcface_mbf"},
}


def _looked_in() -> str:
    """The weights folders that exist (a folder named in $DEEPBATCH_WEIGHTS that does not exist is left out)."""
    existing = [str(d) for d in search_dirs() if d.is_dir()]
    return f"looked in {', '.join(existing)}" if existing else "no weights folder exists yet"


def _missing_message(spec: WeightFile, why: str) -> str:
    names = " or ".join(repr(n) for n in spec.names)
    env = "$DEEPBATCH_WEIGHTS"
    if not spec.url:
        return (f"model weights {names} were not found ({_looked_in()}); {supply_note(spec)}. Put the file in "
                f"{cache_dir()}, or in a folder that {env} names, or pass its path explicitly.")
    if spec.archive_member:  # the archive itself, dropped in the cache, is found and unpacked there
        archive = Path(spec.url).name
        models = ARCHIVE_MODELS.get(spec.url, {spec.archive_member: ""})
        held = " and ".join(f"{member} ({what})" if what else member for member, what in models.items())
        both = "both " if len(models) == 2 else "all " if len(models) > 2 else ""
        return (
            f"model weights {names} were not found ({why}; {_looked_in()}). They come in {archive}, which holds "
            f"{held}. Download {spec.url} once and put it, unchanged, in {cache_dir()}: deepbatch takes {both}"
            f"{' and '.join(models)} out of it. Or unzip it into a folder of your choice and set {env} to that "
            f"folder."
        )
    return (
        f"model weights {names} were not found ({why}; {_looked_in()}). Download it from {spec.source}"
        + (f" (see {spec.homepage})" if spec.homepage and spec.homepage != spec.source else "")
        + f" and put it in {cache_dir()}, or in a folder that {env} names, or pass its path explicitly."
    )


def _progress(total: Optional[int], name: str):  # type: ignore[no-untyped-def]
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)


def _stream(response, out, name: str) -> Iterator[int]:  # type: ignore[no-untyped-def]
    length = response.headers.get("Content-Length")
    bar = _progress(int(length) if length else None, name)
    try:
        for block in iter(lambda: response.read(_CHUNK), b""):
            out.write(block)
            if bar is not None:
                bar.update(len(block))
            yield len(block)
    finally:
        if bar is not None:
            bar.close()


def download_file(url: str, target: PathLike, sha256: Optional[str] = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``target`` with a progress bar, verify ``sha256`` when given, rename into place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", url, target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            received = sum(_stream(response, out, target.name))
            expected = response.headers.get("Content-Length")
            if expected is not None and received != int(expected):
                raise OSError(f"connection closed after {received} of {expected} bytes")
        if sha256 is not None:
            actual = sha256_of(tmp)
            if actual != sha256.lower():
                raise ChecksumError(
                    f"{url} downloaded with SHA-256 {actual}, expected {sha256}; the file was discarded. "
                    "The server may have served a different file: fetch it by hand and check it."
                )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def download_weights(spec: WeightFile, target: PathLike) -> Path:
    """Fetch ``spec`` from its URL into ``target``, extracting ``archive_member`` when the URL is a zip."""
    target = Path(target)
    if spec.url is None:
        raise WeightsNotFoundError(_missing_message(spec, "no download source is registered"))
    if spec.archive_member is None:
        return download_file(spec.url, target, spec.sha256)
    archive = target.parent / Path(spec.url).name
    if not (archive.is_file() and (spec.archive_sha256 is None or sha256_of(archive) == spec.archive_sha256.lower())):
        archive = download_file(spec.url, archive, spec.archive_sha256)
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.namelist() if m == spec.archive_member or m.endswith("/" + spec.archive_member)]
        if not members:
            raise WeightsNotFoundError(f"{spec.url} does not contain {spec.archive_member!r}")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, zf.open(members[0]) as src:
                shutil.copyfileobj(src, out, _CHUNK)
            if spec.sha256 is not None and sha256_of(tmp_name) != spec.sha256.lower():
                raise ChecksumError(f"{spec.archive_member} in {spec.url} does not have SHA-256 {spec.sha256}")
            os.replace(tmp_name, target)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
    return target
