"""Loading and validating images.

Accepted for one image: a path (``str`` or ``os.PathLike``), an ``http(s)://`` URL, a ``data:image/...;base64,``
URI, raw encoded bytes, a binary file object, or a numpy array. Everything becomes a C-contiguous HxWx3 uint8 BGR
array; conversions that have one sensible meaning are done, everything else raises a subclass of
:class:`~deepbatch.errors.ImageError` that names the image (its index in the batch and its path or kind):

* 2-D or HxWx1 grayscale is replicated to three channels; HxWx4 is taken as BGRA and the alpha channel is dropped
  (transparent pixels keep their colour values, as ``cv2.imread`` does);
* uint16 is scaled by 255/65535 (16-bit PNG and TIFF); float images in [0, 1] are scaled by 255, other float images
  must lie in [0, 255] (so an image whose values all lie in [0, 1] is always read as a [0, 1] image); other integer
  types must lie in [0, 255]; bool becomes 0/255;
* encoded files are decoded with their EXIF orientation applied, keeping 16-bit depth for the scaling above.

A truncated JPEG or PNG, an empty file, a non-image file, a directory, invalid base64, NaN pixels, a zero-sized
array, a channel count other than 1, 3 or 4, or ``None`` raise.

Encoded inputs are untrusted and bounded by :class:`ImageLimits` (:func:`set_image_limits` changes them): the first
bytes must be an image signature before the rest is read; the width x height the header declares must be at most
``max_pixels`` (200 million) before anything is decoded; a file, file object, data URI or URL body may hold at most
``max_bytes`` (256 MiB); a URL must arrive whole within ``url_deadline_s`` (60 s) and may redirect to http(s) only.
A URL may reach only global addresses: every connection, the first and each redirect's, is refused when its host
resolves to a loopback, private, link-local, shared, unspecified, multicast or reserved address (IPv4-mapped and
6to4 IPv6 forms included), unless ``allow_private_urls`` (or ``$DEEPBATCH_ALLOW_PRIVATE_URLS=1``) allows them; the
connection goes to the very address that was checked, so a name cannot resolve one way for the check and another
for the connection.
Formats whose header is not parsed here (EXR, HDR, AVIF) are bounded by OpenCV's own limit (2^30 pixels). Arrays
already in memory have no size limit. Running out of memory while decoding raises ``MemoryError``, not an
:class:`ImageError`, so ``on_error="skip"`` never drops a valid photo as corrupt.

The pieces live one idea to a module, and are all importable from here: :mod:`~deepbatch.io.limits` (the settable
bounds), :mod:`~deepbatch.io.load` (one input of any kind), :mod:`~deepbatch.io.files` (paths and file objects),
:mod:`~deepbatch.io.fetch` (URLs: deadline, redirects, the private-address guard), :mod:`~deepbatch.io.data_uri`,
:mod:`~deepbatch.io.decode`, :mod:`~deepbatch.io.jpeg` (truncation), :mod:`~deepbatch.io.arrays` (array
conversion), :mod:`~deepbatch.io.inputs` (names and batches), :mod:`~deepbatch.io.folders` and
:mod:`~deepbatch.io.reduced` (reduced decoding for a detector's canvas).
"""

from __future__ import annotations

from .arrays import to_bgr
from .decode import LIBJPEG_WARNINGS, decode, logger
from .fetch import PRIVATE_URLS_ENV, URL_TIMEOUT_S, non_global_reason, private_urls_allowed
from .folders import IMAGE_EXTENSIONS, list_image_files
from .inputs import as_batch, describe, validate_arrays
from .jpeg import jpeg_is_truncated
from .limits import ImageLimits, get_image_limits, set_image_limits
from .load import load_image, load_image_for_canvas, read_encoded
from .reduced import REDUCED_FACTORS, CanvasImage, declared_pixels, decode_for_canvas, reduction_factor

__all__ = [
    "IMAGE_EXTENSIONS", "LIBJPEG_WARNINGS", "PRIVATE_URLS_ENV", "REDUCED_FACTORS", "URL_TIMEOUT_S", "CanvasImage",
    "ImageLimits", "as_batch", "declared_pixels", "decode", "decode_for_canvas", "describe", "get_image_limits",
    "jpeg_is_truncated", "list_image_files", "load_image", "load_image_for_canvas", "logger", "non_global_reason",
    "private_urls_allowed", "read_encoded", "reduction_factor", "set_image_limits", "to_bgr", "validate_arrays",
]
