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

from typing import TYPE_CHECKING, Optional, Sequence, Union

from .install import install_command

if TYPE_CHECKING:
    from .recognition.base import Recognizer
    from .runtime.isolation import IsolationReport


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


class VideoError(ImageDecodeError):
    """A video file exists but OpenCV cannot open or decode it."""


class BatchUnsafeError(ModelFormatError):
    """:func:`~deepbatch.runtime.batchify.batchify` refused: the graph could not be rewritten, or the rewritten graph
    failed the cross-frame contamination check (``report`` then says how). Nothing was written."""

    def __init__(self, message: str, report: Optional[IsolationReport] = None):
        self.report = report
        super().__init__(message)


class ProviderError(DeepbatchError, ValueError):
    """An execution provider name or list that ONNX Runtime cannot use."""


class RuntimeConflictError(DeepbatchError, ImportError):
    """``onnxruntime`` and ``onnxruntime-gpu`` are both installed and ONNX Runtime cannot be imported."""


class ThreadsError(DeepbatchError, ValueError):
    """A thread count that is not a positive integer."""


class UnsupportedFeatureError(DeepbatchError, ValueError):
    """A DeepFace function or task that deepbatch does not offer; the message says what to use instead."""


# The columns of a Ray dataset images are read from, looked for in this order when no column is named.
INPUT_COLUMNS = ("image", "bytes", "path")


class DatasetColumnError(DeepbatchError, ValueError):
    """The dataset has none of the columns deepbatch reads images from, or not the one asked for."""

    def __init__(self, columns: Sequence[str], column: Optional[str]):
        wanted = repr(column) if column else "one of " + ", ".join(repr(c) for c in INPUT_COLUMNS)
        super().__init__(
            f"the dataset has columns {list(columns)} but images are read from {wanted}; build it with "
            "ray.data.read_images(..., include_paths=True), ray.data.read_binary_files(..., include_paths=True) or "
            "a 'path' column, or pass column='<name of your image column>'"
        )


class RayResourceError(DeepbatchError, ValueError):
    """The Ray cluster lacks the resources the job asks for (for example GPUs), so it could never start."""


class WorkerSpecError(DeepbatchError, TypeError):
    """A model was passed in a form that cannot be shipped to Ray workers."""


class EmptyDatabaseError(DeepbatchError, ValueError):
    """The database folder holds no image (DeepFace's ``EmptyDatasource``)."""


class IndexFormatError(DeepbatchError, ValueError):
    """An index file that cannot be read or does not belong to the model it is named after."""


class EmbeddingTypeError(DeepbatchError, ValueError):
    """A list given as a precomputed embedding holds something other than numbers (text, nested lists)."""

    def __init__(self, where: str):
        super().__init__(f"When passing {where} as a list, ensure that all its items are of type float "
                         "(a precomputed embedding is a flat list of numbers, as represent returns it)")


class EmbeddingSizeError(DeepbatchError, ValueError):
    """A precomputed embedding does not have the size of the chosen model's embeddings."""

    def __init__(self, size: int, recognizer: Recognizer, where: str = "the precomputed embedding"):
        name = recognizer.display_name or recognizer.name
        super().__init__(
            f"embeddings of {name} should have {recognizer.embedding_size} dimensions, but {where} has {size} "
            f"dimensions; embed both images with the same model_name"
        )


class ThresholdUnknownError(DeepbatchError, ValueError):
    """No calibrated verification threshold exists for a model and metric."""

    def __init__(self, model: str, metric: str):
        super().__init__(
            f"no calibrated {metric} threshold for {model}: pass threshold=... explicitly, or derive one from "
            "labelled pairs with deepbatch.recognition.calibration.calibrate_threshold "
            "(benchmarks/verify_master.py --calibrate does it for a folder of photos and a pairs CSV)"
        )


class UnsupportedNormalizationError(DeepbatchError, ValueError):
    """A ``normalization`` name DeepFace does not define; the message lists ``valid``, the names it does (see
    :data:`deepbatch.recognition.normalization.NORMALIZATIONS`)."""

    def __init__(self, value: object, valid: Sequence[str] = ()):
        names = ", ".join(valid) if valid else "the names of deepbatch.recognition.normalization.NORMALIZATIONS"
        super().__init__(f"unimplemented normalization type - {value!r}; use one of {names} ('base', the model's own "
                         "pre-processing, is recommended)")


class OutputRefusedError(DeepbatchError, OSError):
    """A file would be written through a symbolic link, outside the folder it was aimed at, or over an input of the
    run; nothing was written. For one image it is that image's error row; for an ``--output`` it is exit code 2."""


class OutputBusyError(DeepbatchError, ValueError):
    """Another run that is still alive is writing the same output (its lock file names it)."""


# The Ray integration's argument errors are :class:`ArgumentError`; the old name stays for ``except`` clauses.
RayArgumentError = ArgumentError


class PathRefusedError(DeepbatchError, PermissionError):
    """A server-side path or URL was sent but the operator did not allow it (HTTP 403)."""


class RequestTimeoutError(DeepbatchError, TimeoutError):
    """The request was not answered within the service's per-request timeout (HTTP 504)."""


class BadRequestError(DeepbatchError, ValueError):
    """The request itself is malformed: not JSON or form data, a missing field, a field of the wrong type."""


class ModelRunError(DeepbatchError, RuntimeError):
    """A model call raised; every image of that call fails with this error, the service goes on."""


class DatabaseNotConfiguredError(DeepbatchError, LookupError):
    """``/register`` or ``/search`` was called on a service started without a face database (HTTP 503)."""
