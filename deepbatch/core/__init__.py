"""The core every edge consumes: :mod:`~deepbatch.core.stream` (the one generator of per-image records, and the face
rules), :mod:`~deepbatch.core.workers` (the chunking and the thread pool that prepares chunks ahead of the model) and
:mod:`~deepbatch.core.on_error` (what an unusable image does to a batch)."""
