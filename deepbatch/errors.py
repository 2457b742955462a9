"""Exceptions raised by deepbatch.

Every error derives from :class:`DeepbatchError`. Errors about bad arguments or bad images also derive from
``ValueError`` (DeepFace callers catch that), missing files from ``FileNotFoundError`` and missing optional packages
from ``ImportError``, so existing ``except`` clauses keep working.

Unusable images raise a subclass of :class:`ImageError`, which carries the image's ``index`` in its batch (``None``
for a single image) and its ``source`` (path, URL or a short description):

* :class:`ImageNotFoundError`: the path does not exist;
* :class:`ImageReadError`: the bytes could not be read (directory, permissions, unreachable URL);
* :class:`ImageDecodeError`: the bytes are not a decodable image (empty, truncated, corrupt, invalid base64);
* :class:`ImageFormatError`: the value cannot be converted (``None``, wrong type, shape, dtype or value range).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

ImageRef = Union[int, str, None]


class DeepbatchError(Exception):
    """Base class of every error raised by deepbatch."""


def _where(index: Optional[int], source: Optional[str]) -> str:
    parts = []
    if index is not None:
        parts.append(f"image {index}")
    if source:
        parts.append(f"({source})" if parts else source)
    return " ".join(parts)


class ArgumentError(DeepbatchError, ValueError):
    """An argument has a value deepbatch cannot use; the message names the argument, the value and what is valid."""


class ImageError(DeepbatchError, ValueError):
    """An input image cannot be used. ``index`` is its position in the batch, ``source`` its path or a short
    description of what was passed."""

    def __init__(self, problem: str, index: Optional[int] = None, source: Optional[str] = None):
        self.problem = problem
        self.index = index
        self.source = source
        where = _where(index, source)
        super().__init__(f"{where}: {problem}" if where else problem)

    def at(self, index: Optional[int]) -> ImageError:
        """The same error, re-addressed to position ``index`` of a batch (``None``: a single image)."""
        err = type(self)(self.problem, index=index, source=self.source)
        err.__cause__ = self.__cause__
        return err


class ImageNotFoundError(ImageError, FileNotFoundError):
    """A path given as an image does not exist (or is empty)."""


class ImageReadError(ImageError):
    """The bytes of an image could not be obtained: a directory or special file instead of an image file, a file
    that cannot be read (permissions, name too long), a file object that fails, or a URL that cannot be fetched."""


class ImageDecodeError(ImageError):
    """Bytes were read but are not a decodable image: empty, truncated, corrupt, another format, invalid base64, or
    more pixels than OpenCV's decoding limit."""


class ImageFormatError(ImageError):
    """An input has a type, shape, dtype or values that cannot be converted to an HxWx3 uint8 BGR image (``None``,
    an unsupported type, a channel count other than 1, 3 or 4, a zero-sized or NaN array, values out of range)."""


class FaceNotDetectedError(DeepbatchError, ValueError):
    """``enforce_detection=True`` and no face was found in an image."""

    def __init__(self, index: Optional[int] = None, source: Optional[str] = None):
        self.index = index
        self.source = source
        self.problem = "no face was detected"
        where = _where(index, source) or "the image"
        super().__init__(
            f"Face could not be detected in {where}. Confirm that the picture is a face photo, "
            "or set enforce_detection=False to get the whole image back instead."
        )

    def at(self, index: Optional[int]) -> FaceNotDetectedError:
        """The same error, re-addressed to position ``index`` of a batch (``None``: a single image)."""
        return FaceNotDetectedError(index, self.source)


class UnknownModelError(DeepbatchError, ValueError):
    """A model name is not registered; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        import difflib

        self.name = name
        self.valid = valid
        close = difflib.get_close_matches(str(name).lower(), [v.lower() for v in valid], n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; valid names are: {', '.join(valid)}")


class ModelUnavailableError(UnknownModelError):
    """A model name that is known (DeepFace's, say) but not offered here; the message says why and names the closest
    model that is."""

    def __init__(self, kind: str, name: str, reason: str):
        self.name = name
        self.valid = []
        DeepbatchError.__init__(self, f"{kind} {name!r} is not available: {reason}")


class LegacyKerasError(DeepbatchError, ImportError):
    """TensorFlow was imported with Keras 3 before DeepFace's Keras 2 models could ask for tf-keras."""


class WeightsNotFoundError(DeepbatchError, FileNotFoundError):
    """Model weights are not on disk and could not be downloaded."""


class ChecksumError(DeepbatchError, ValueError):
    """A downloaded or given weights file does not have the expected SHA-256 digest."""


class UnverifiedWeightsError(DeepbatchError, ValueError):
    """A weights file that would run code when loaded (a pickle) has no registered digest and was not vouched for by
    the user (explicit path or ``$DEEPBATCH_TRUSTED_WEIGHTS``)."""


class MissingDependencyError(DeepbatchError, ImportError):
    """An optional package needed by a backend is not installed; the message names the extra to install."""

    def __init__(self, package: Union[str, Sequence[str]], extra: str, purpose: str):
        from .optional import install_command  # here, not at the top: optional.py imports this module

        self.packages = [package] if isinstance(package, str) else list(package)
        self.package = self.packages[0]
        self.extra = extra
        named = " and ".join(repr(p) for p in self.packages)
        what = (f"the package {named}, which is not installed" if len(self.packages) == 1 else
                f"the packages {named}, which are not installed")
        super().__init__(f"{purpose} needs {what}. Install {'it' if len(self.packages) == 1 else 'them'} with: "
                         f"{install_command(extra)}")


class ModelFormatError(DeepbatchError, ValueError):
    """A model file does not have the inputs and outputs its backend expects, or cannot be made to batch safely."""


class OverloadedError(DeepbatchError, RuntimeError):
    """The service's queue is full (or it is shutting down): the request was not taken; retry later (HTTP 503)."""


class RequestLimitError(DeepbatchError, ValueError):
    """A request to the service is over one of its limits (body size, images per request, pixels; HTTP 413)."""


class DatabaseError(DeepbatchError):
    """A face database cannot be opened, read or written (see :mod:`deepbatch.store`)."""


class DatabaseConnectionError(DatabaseError, ValueError):
    """No connection could be made: missing ``connection_details`` and environment variable, or a server that
    refuses; the message names what was tried."""


class SchemaVersionError(DatabaseError, ValueError):
    """The database was written with a schema this deepbatch cannot read (a newer one); the message gives both
    versions."""


class EmbeddingMismatchError(DatabaseError, ValueError):
    """A search asked for embeddings the database does not hold: another model, detector, alignment, normalisation
    or size than the ones registered. Vectors of different models are never compared; the message lists what the
    database holds."""


class NothingRegisteredError(DatabaseError, ValueError):
    """Nothing is registered in the database for the configuration that was asked for."""
