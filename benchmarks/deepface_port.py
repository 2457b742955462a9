"""One DeepFace script, run on DeepFace or on deepbatch by changing its import.

    python benchmarks/deepface_port.py deepface --photos ../shared/dataset --model Dlib --detector yunet
    python benchmarks/deepface_port.py deepbatch --photos ../shared/dataset --model Dlib --detector yunet

The script verifies two pairs, represents one photo and finds two photos in a folder of ``--db-size`` photos (copied
into a temporary folder, as ``find`` writes its index there), printing what a user would look at. ``--home`` is
the DeepFace home folder (``$DEEPFACE_HOME``) both read their weight files from; ``--yunet`` copies a YuNet ONNX
file there under DeepFace's name for it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PAIRS = [("img1.jpg", "img2.jpg"), ("img1.jpg", "img3.jpg")]
QUERIES = ["img2.jpg", "img6.jpg"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("library", choices=["deepface", "deepbatch"])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--model", default="Dlib")
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--db-size", type=int, default=10)
    parser.add_argument("--home", type=Path, help="DEEPFACE_HOME (default: the environment's)")
    parser.add_argument("--yunet", type=Path, help="a YuNet ONNX file to place in the home folder")
    args = parser.parse_args()
    if args.home is not None:
        os.environ["DEEPFACE_HOME"] = str(args.home)
        weights = args.home / ".deepface" / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        if args.yunet is not None and not (weights / "face_detection_yunet_2023mar.onnx").exists():
            shutil.copyfile(args.yunet, weights / "face_detection_yunet_2023mar.onnx")

    if args.library == "deepface":
        from deepface import DeepFace
    else:
        from deepbatch import DeepFace

    options = dict(model_name=args.model, detector_backend=args.detector)
    started = time.perf_counter()
    for first, second in PAIRS:
        result = DeepFace.verify(str(args.photos / first), str(args.photos / second), **options)
        print(f"verify {first} {second}: verified={result['verified']} distance={result['distance']:.4f} "
              f"threshold={result['threshold']} confidence={result['confidence']}")

    faces = DeepFace.represent(str(args.photos / PAIRS[0][0]), **options)
    for face in faces:
        area = face["facial_area"]
        print(f"represent {PAIRS[0][0]}: {len(face['embedding'])}-d, first values "
              f"{[round(v, 4) for v in face['embedding'][:3]]}, box x={area['x']} y={area['y']} w={area['w']} "
              f"h={area['h']}, left_eye={area['left_eye']}, confidence={face['face_confidence']}")

    with tempfile.TemporaryDirectory() as folder:
        photos = sorted(p for p in args.photos.glob("img*.jpg"))[: args.db_size]
        for photo in photos:
            shutil.copyfile(photo, Path(folder) / photo.name)
        for query in QUERIES:
            tables = DeepFace.find(str(args.photos / query), db_path=folder, silent=True, **options)
            rows = tables[0].to_dict("records") if hasattr(tables[0], "to_dict") else tables[0]
            found = ", ".join(f"{Path(r['identity']).name} ({r['distance']:.4f})" for r in rows[:4])
            print(f"find {query} in {len(photos)} photos: {len(rows)} match(es): {found}")
    print(f"{args.library}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
