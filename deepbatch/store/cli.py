"""The ``register`` and ``search`` commands: the face database from the command line.

``deepbatch register PHOTOS... --db faces.db`` registers photos and folders (a re-run registers only what is
new) and prints a JSON summary; ``deepbatch search PHOTO... --db faces.db -k 5`` prints one JSON line per query
face with its matches. ``--db`` is a file (the embedded database) or a PostgreSQL URI (pgvector unless
``--database-type postgres``); without it, the environment variables of :func:`deepbatch.store.open_store`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from . import DATABASE_TYPES

EXIT_OK, EXIT_FAILED = 0, 1


def database_type(args: argparse.Namespace) -> str:
    if args.database_type:
        return str(args.database_type)
    if args.db and str(args.db).startswith(("postgres://", "postgresql://")):
        return "pgvector"
    return "embedded"


def _settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="FILE|URI", help="the database: a file, or a PostgreSQL URI (default: "
                        "$DEEPBATCH_DATABASE_PATH, or $DEEPBATCH_POSTGRES_URI with --database-type)")
    parser.add_argument("--database-type", choices=DATABASE_TYPES, help="default: embedded for a file, pgvector "
                        "for a URI")
    parser.add_argument("--model", default="arcface_mbf", help="recognizer name (default arcface_mbf)")
    parser.add_argument("--detector", default="scrfd", help="detector name (default scrfd)")
    parser.add_argument("--no-align", dest="align", action="store_false", help="embed box crops, not aligned faces")
    parser.add_argument("--l2-normalize", action="store_true", help="store and search unit-length embeddings")
    parser.add_argument("--normalization", default="base", help="input normalisation (default: the model's own)")
    parser.add_argument("--batch-size", default="auto", metavar="N|auto", help="images per detector call")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="intra-op threads of each ONNX "
                        "Runtime model (deepbatch.Performance's threads; default: chosen for the machine)")


def _performance(args: argparse.Namespace) -> Any:
    from ..performance import Performance

    return Performance(batch_size=_batch_size(args.batch_size), threads=args.threads)


def _batch_size(value: str) -> Any:
    return value if value == "auto" else int(value)


def cmd_register(args: argparse.Namespace) -> int:
    from ..database import register

    inputs = args.photos[0] if len(args.photos) == 1 else _expand(args.photos)
    result = register(inputs, model_name=args.model, detector_backend=args.detector, align=args.align,
                      l2_normalize=args.l2_normalize, normalization=args.normalization,
                      database_type=database_type(args), connection_details=args.db,
                      performance=_performance(args), commit_every=args.commit_every,
                      enforce_detection=not args.allow_no_face)
    sys.stdout.write(json.dumps(result) + "\n")
    return EXIT_FAILED if result["errors"] else EXIT_OK


def _expand(paths: list) -> list:
    """Folders among ``paths`` replaced by their image files."""
    from pathlib import Path

    from ..io.images import list_image_files

    out: list = []
    for path in paths:
        out.extend(str(p) for p in list_image_files(Path(path))) if Path(path).is_dir() else out.append(path)
    return out


def cmd_search(args: argparse.Namespace) -> int:
    from ..database import search

    tables = search(args.photos, model_name=args.model, detector_backend=args.detector,
                    distance_metric=args.metric, align=args.align, l2_normalize=args.l2_normalize,
                    normalization=args.normalization, similarity_search=args.similarity, k=args.k,
                    database_type=database_type(args), connection_details=args.db,
                    search_method="ann" if args.ann else "exact", return_type="dict",
                    performance=_performance(args), threshold=args.threshold)
    for photo, faces in zip(args.photos, tables):
        for face, matches in enumerate(faces):
            sys.stdout.write(json.dumps({"image": photo, "face": face, "matches": matches}) + "\n")
    return EXIT_OK


def add_database_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``register`` and ``search`` with ``command(name, **kwargs)``, the main parser's sub-command factory."""
    register = command("register", help="register the faces of photos and folders in a face database",
                       description="Register every face (batched, in transactions; photos registered before are "
                                   "skipped) and print {inserted, images, skipped, errors} as JSON. Exit 1 when "
                                   "some photos gave no face.")
    register.add_argument("photos", nargs="+", metavar="PHOTO|FOLDER")
    _settings(register)
    register.add_argument("--commit-every", type=int, default=64, metavar="N", help="images per transaction")
    register.add_argument("--allow-no-face", action="store_true", help="embed the whole image when no face is "
                          "found (DeepFace's enforce_detection=False)")
    register.set_defaults(handler=cmd_register)

    search = command("search", help="find registered faces like those of photos",
                     description="One JSON line per face of each PHOTO: {image, face, matches}, matches nearest "
                                 "first with DeepFace's search columns.")
    search.add_argument("photos", nargs="+", metavar="PHOTO")
    _settings(search)
    search.add_argument("-k", type=int, default=None, help="keep the k nearest faces")
    search.add_argument("--metric", default="cosine", help="cosine, euclidean, euclidean_l2 or angular")
    search.add_argument("--threshold", type=float, default=None, help="default: the model's for the metric")
    search.add_argument("--similarity", action="store_true", help="rank every candidate, not only matches")
    search.add_argument("--ann", action="store_true", help="approximate search in the index")
    search.set_defaults(handler=cmd_search)
