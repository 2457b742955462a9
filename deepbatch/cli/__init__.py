"""The ``deepbatch`` command line (also ``python -m deepbatch``).

::

    deepbatch detect PATH... [--backend scrfd] [--conf 0.5] [--input-size 640] [--device cpu|cuda|tensorrt]
                             [--max-faces N] [--enforce-detection] [--output faces.jsonl|.parquet]
                             [--save-crops DIR] [--draw DIR]
    deepbatch represent PATH... [--model arcface_mbf] [--backend scrfd] [--output embeddings.npy|.jsonl|.parquet]
    deepbatch verify IMAGE1 IMAGE2 [--model arcface_mbf] [--metric cosine] [--json]
    deepbatch batchify IN.onnx OUT.onnx [--batch-sizes 2,7,16,32] [--input-shape 3,640,640] [--dynamic-spatial]
    deepbatch check-batch MODEL.onnx [--batch-sizes 2,7,16,32] [--input-shape 3,640,640] [--tolerance 1e-4]
    deepbatch bench --backend NAME --batch-sizes 1,8,16,32 [--input-size 640]
    deepbatch models
    deepbatch --version

``PATH`` is an image file, an ``http(s)://`` URL, a folder (searched recursively for image files), a video file
(every frame, or every ``--frame-step``-th, with its frame index and timestamp) or ``-`` (more paths on standard
input, one per line). Every path is checked before any model loads. Results are rows of :mod:`deepbatch.rows` as
JSON lines on stdout or in ``--output``, or Parquet; the progress bar, warnings and the summary go to stderr
(``--quiet``: errors only; ``-v``, anywhere on the line: what is being done).

Exit codes: 0 everything went through; 1 some inputs failed (they are reported and skipped; with
``--enforce-detection`` an image without a face is one), the batch check failed, or ``batchify`` refused to write
an unsafe graph; 2 bad usage or setup (unknown option or model name, a missing input, missing, corrupt or unverified
weights, a missing package, an output format the command cannot write, an output that overlaps the inputs, a file
that cannot be read or written); 3 a resource or internal failure (out of memory, disk full, a runtime crash, a
bug); 130 interrupted (Ctrl-C, SIGTERM or SIGHUP).

Outputs are written under temporary names and renamed when the run completes, so a stopped run leaves the previous
results as they were and its own rows in ``FILE.partial`` (see :mod:`deepbatch.io.outputs`). Both engines run one
checked :class:`~deepbatch.plan.RunPlan`; a second run on the same output is refused while the first lives.

The package holds one concern per module: :mod:`~deepbatch.cli.parser` (commands, options, option types),
:mod:`~deepbatch.cli.commands` (what each command does), :mod:`~deepbatch.cli.engines` (where ``detect`` and
``represent`` run), :mod:`~deepbatch.cli.sinks` (where their rows go), :mod:`~deepbatch.cli.tables` (``models``),
:mod:`~deepbatch.cli.console`, :mod:`~deepbatch.cli.signals`, :mod:`~deepbatch.cli.exit_codes` and
:mod:`~deepbatch.cli.main` (the entry point).
"""

from ..sources import Source, WorkItem, count_items, iter_items, plan_sources  # noqa: F401
from .commands import (  # noqa: F401
    cmd_batchify,
    cmd_bench,
    cmd_check_batch,
    cmd_detect,
    cmd_represent,
    cmd_verify,
)
from .console import ProgressAwareHandler, say, silence_stdout  # noqa: F401
from .engines import (  # noqa: F401
    CLUSTER_ENGINES,
    LOCAL_ENGINES,
    build_cli_detector,
    build_cli_recognizer,
    detector_options,
    run_local,
)
from .exit_codes import EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE  # noqa: F401
from .main import main  # noqa: F401
from .parser import (  # noqa: F401
    DEVICES,
    build_parser,
)
from .signals import restore_signals, stop_on_signals  # noqa: F401
from .sinks import Sink, Tally  # noqa: F401
from .tables import (  # noqa: F401
    TABLE_WIDTH,
    cmd_models,
)

__all__ = ["Source", "WorkItem", "build_parser", "count_items", "iter_items", "main", "plan_sources"]
