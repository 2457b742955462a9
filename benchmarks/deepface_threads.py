"""Whether DeepFace's detectors survive being called from several threads at once, as its threaded API server calls
them: DeepFace builds each model once per process (``modeling.build_model`` caches it) and its Flask threads share it
without a lock.

Each case runs in its own subprocess (a crash there is a result, not the end of this script): the detector built
once, then ``--calls`` detections of the test photos (different sizes) from ``--threads`` threads sharing it, and
the same calls from one thread. Prints one line per case: the exit status (negative: killed by that signal; 1: a
thread raised) and the end of its output.

    python benchmarks/deepface_threads.py --detectors yunet,opencv --threads 4 --calls 40
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

CASE = """
import sys, threading
from pathlib import Path
import cv2
from deepface.modules import modeling

detector = modeling.build_model(task="face_detector", model_name=sys.argv[1])
photos = [cv2.imread(str(p)) for p in sorted(Path(sys.argv[2]).glob("*.jpg"))[:16]]
threads, calls = int(sys.argv[3]), int(sys.argv[4])

failures = []
threading.excepthook = lambda hook: failures.append(f"{hook.exc_type.__name__}: {hook.exc_value}")

def work(offset):
    for i in range(calls // threads):
        detector.detect_faces(photos[(offset + i) % len(photos)])

runners = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
for runner in runners:
    runner.start()
for runner in runners:
    runner.join()
for failure in failures:
    print(failure)
print(f"{sys.argv[1]}: {calls} detections from {threads} threads finished, {len(failures)} thread(s) raised")
sys.exit(1 if failures else 0)
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path(os.environ.get("DEEPBATCH_TEST_DATA", "../shared/dataset")))
    parser.add_argument("--weights", type=Path, default=Path(os.environ.get("DEEPBATCH_WEIGHTS", "../shared/weights")))
    parser.add_argument("--detectors", default="yunet,opencv")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="deepface-home-"))
    try:
        folder = home / ".deepface" / "weights"
        folder.mkdir(parents=True)
        yunet = sorted(args.weights.glob("face_detection_yunet*.onnx"))
        if yunet:
            shutil.copy(yunet[0], folder / "face_detection_yunet_2023mar.onnx")
        env = {**os.environ, "DEEPFACE_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
        for detector in args.detectors.split(","):
            for threads in (args.threads, 1):
                try:
                    done = subprocess.run([sys.executable, "-c", CASE, detector, str(args.photos), str(threads),
                                           str(args.calls)], env=env, capture_output=True, text=True,
                                          timeout=args.timeout)
                    status, output = done.returncode, (done.stdout + done.stderr).strip()
                except subprocess.TimeoutExpired:
                    status, output = "timeout", ""
                tail = " | ".join(line for line in output.splitlines()[-3:] if line)[-400:]
                print(f"{detector}, {threads} thread(s): exit {status}: {tail}", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
