"""A stored crop embeds like its photo: cosine distance between ``represent(photo)`` and
``represent(crop, detector_backend="skip")`` for every face ``extract_faces`` returns, over a folder of photos.

    python benchmarks/crop_parity.py                      # the 64 photos, MobileFaceNet + SCRFD
    python benchmarks/crop_parity.py --model mobilefacenet_b1 --detector yunet

The crop is taken as ``extract_faces`` returns it by default (RGB float in [0, 1]) and flipped to BGR, as DeepFace's
own ``verify`` does before embedding a crop (``--stored png`` writes it to a PNG file and embeds the file instead).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import List

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault("DEEPBATCH_WEIGHTS", str(ROOT.parent / "shared" / "weights"))
os.environ.setdefault("DEEPBATCH_TEST_DATA", str(ROOT.parent / "shared" / "dataset"))

import deepbatch  # noqa: E402
from deepbatch.recognition.distance import pair_distances  # noqa: E402


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ["DEEPBATCH_TEST_DATA"]))
    parser.add_argument("--model", default="MobileFaceNet")
    parser.add_argument("--detector", default="scrfd")
    parser.add_argument("--stored", choices=("array", "png"), default="array")
    args = parser.parse_args(argv)
    import cv2

    photos = sorted(str(p) for p in args.data.glob("*.jpg"))
    embedded = deepbatch.represent(photos, model_name=args.model, detector_backend=args.detector,
                                   return_numpy=True)
    cropped = deepbatch.extract_faces(photos, detector_backend=args.detector)
    crops, direct = [], []
    with tempfile.TemporaryDirectory() as folder:
        for i, (faces, found) in enumerate(zip(cropped, embedded)):
            for k, (face, rep) in enumerate(zip(faces, found)):
                bgr = face["face"][:, :, ::-1]
                if args.stored == "png":
                    path = os.path.join(folder, f"{i}_{k}.png")
                    cv2.imwrite(path, np.round(bgr * 255).astype(np.uint8))
                    crops.append(path)
                else:
                    crops.append(bgr)
                direct.append(rep["embedding"])
        again = deepbatch.represent(crops, model_name=args.model, detector_backend="skip", return_numpy=True)
    stored = np.stack([faces[0]["embedding"] for faces in again])
    d = pair_distances(np.stack(direct), stored, "cosine")
    print(f"{len(photos)} photos, {len(d)} faces, model {args.model}, detector {args.detector}, crops as {args.stored}")
    print(f"cosine distance represent(photo) vs represent(crop, 'skip'): max {d.max():.6f}, mean {d.mean():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
