"""Load benchmark of ``deepbatch serve``: throughput and latency under concurrent requests, on loopback only.

Rows, for one detector + recognizer pair on the same photos:

* ``serve``: ``deepbatch serve`` as its own process, batching across requests (its default ``--max-batch``);
* ``batch1``: the same with ``--max-batch 1`` (every request alone: what a server without cross-request batching
  does with the same models);
* ``offline``: the library's ``represent`` over all the photos in one call (its throughput), and one photo at a time
  (its single-image latency, the reference for the service's latency at concurrency 1);
* ``deepface``: DeepFace's own API server on the same detector and recognizer, its weights in a temporary
  ``DEEPFACE_HOME`` (YuNet from ``--weights``; Dlib's from ``face_recognition_models``): by default as DeepFace's
  Docker image runs it (gunicorn, one sync worker), or with ``--deepface-server flask`` its Flask app threaded;
* ``--pairs N``: N single photos, each through the library, the service at concurrency 1, then the library again:
  the p50/p99 of each, of the service's added latency photo by photo, and of the library against itself (the
  machine's noise on the same photos, in the same run);
* ``--interleave R``: R rounds of the library offline then the service at concurrency 16 (one server process, the
  offline run in this one, never both at once), each round's ratio printed: on a noisy machine the ratio within a
  round is the steady figure;
* ``queue``: ``deepbatch serve --queue-limit 32`` at concurrency 64, twice in a row: every request answered (200 or
  503), server memory before and after each (flat: the second level ends where the first did);
* ``--margin R``: R rounds of (i) the library offline, (ii) DeepFace's library (``DeepFace.represent`` per photo),
  (iii) ``deepbatch serve`` and (iv) DeepFace's API server (gunicorn) at each ``--concurrency``, all on ``--pair``
  and the same photos, in one run: the library margin (i)/(ii), the service margin (iii)/(iv) per concurrency, and
  the share of the library's margin the service keeps, per round and pooled over the rounds;

The load generator is closed-loop: ``C`` clients, each sending its next request when the last one is answered, one
photo per request (a JSON body with a data URI, encoded before timing), bounded by ``--requests`` per level (at least
``2 C``) and ``--max-seconds``. Throughput counts images answered with 200 per second of wall time; p50/p99 are of
the answered requests' latencies; ``batch`` is the mean detector batch the service formed (from ``/metrics``);
``load`` is the machine's 1-minute load average at the end of the row.

    python benchmarks/serve_load.py --photos ../shared/dataset --rows serve,batch1,offline,queue
    python benchmarks/serve_load.py --pair yunet:dlib --rows serve,offline,deepface --concurrency 1,4,16
    python benchmarks/serve_load.py --pair yunet:dlib --rows none --margin 4 --concurrency 1,4,16 --requests 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEEPFACE_NAMES = {"yunet": "yunet", "opencv": "opencv", "retinaface": "retinaface", "dlib": "Dlib",
                  "sface": "SFace", "arcface": "ArcFace"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds:g} s")


def start_deepbatch(detector: str, model: str, extra: Sequence[str]) -> tuple:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "deepbatch", "serve", "--port", str(port), "--backend", detector,
                                "--model", model, *extra], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/health", process)
    return process, url


def deepface_home(weights: Path, home: Path) -> Dict[str, str]:
    """YuNet's and Dlib's weights placed where DeepFace looks for them under ``home`` (its ``DEEPFACE_HOME``); the
    environment DeepFace's processes run with."""
    folder = home / ".deepface" / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    yunet = sorted(weights.glob("face_detection_yunet*.onnx"))
    if yunet:
        shutil.copy(yunet[0], folder / "face_detection_yunet_2023mar.onnx")
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")  # not imported: it needs pkg_resources
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("DeepFace's Dlib model needs the weights of face_recognition_models (the dlib extra)")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    shutil.copy(models / "dlib_face_recognition_resnet_model_v1.dat",
                folder / "dlib_face_recognition_resnet_model_v1.dat")
    return {**os.environ, "DEEPFACE_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}


def start_deepface(weights: Path, home: Path, server: str = "gunicorn") -> tuple:
    """DeepFace's API server with YuNet's and Dlib's weights in ``home``: as its Docker image runs it (gunicorn, one
    sync worker, ``app:create_app()`` from ``deepface/api/src``), or its Flask app with ``threaded=True``."""
    env = deepface_home(weights, home)
    port = free_port()
    log = open(home / "deepface_api.log", "w")
    if server == "gunicorn":
        import deepface

        source = Path(deepface.__file__).parent / "api" / "src"
        command = [sys.executable, "-m", "gunicorn", "--workers=1", "--timeout=7200", f"--bind=127.0.0.1:{port}",
                   "app:create_app()"]
        process = subprocess.Popen(command, cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT)
    else:
        code = ("from deepface.api.src.app import create_app; "
                f"create_app().run(host='127.0.0.1', port={port}, threaded=True)")
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/", process)
    return process, url


def worker_pid(pid: int) -> int:
    """The process that answers: ``pid`` itself, or its one child (gunicorn's worker under its master)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pid
    return int(children[0]) if len(children) == 1 else pid


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load_average() -> float:
    """The machine's 1-minute load average (what ``uptime`` shows first)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def batch_counts(url: str) -> tuple:
    try:
        text = httpx.get(url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return 0.0, 0.0
    return (metric(text, 'deepbatch_batch_size_count{stage="detect"}'),
            metric(text, 'deepbatch_batch_size_sum{stage="detect"}'))


async def load(url: str, bodies: List[bytes], concurrency: int, count: int, max_seconds: float,
               keep_alive: bool = True) -> Dict[str, Any]:
    """``count`` requests (or as many as fit in ``max_seconds``) from ``concurrency`` closed-loop clients
    (``keep_alive=False``: a new connection per request, for servers that close them)."""
    latencies: List[float] = []
    codes: Dict[int, int] = {}
    failures: Dict[str, int] = {}  # requests that got no HTTP answer, by exception
    sent = 0
    deadline = time.perf_counter() + max_seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < count and time.perf_counter() < deadline:
            body = bodies[sent % len(bodies)]
            sent += 1
            started = time.perf_counter()
            try:
                response = await http.post(url, content=body, headers={"content-type": "application/json"})
                code = response.status_code
            except httpx.HTTPError as exc:
                code = 0
                failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            codes[code] = codes.get(code, 0) + 1
            if code == 200:
                latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency if keep_alive else 0)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    ok = codes.get(200, 0)
    return {"requests": sum(codes.values()), "ok": ok, "errors": sum(codes.values()) - ok, "codes": codes,
            "failures": failures, "wall_s": wall, "images_per_s": ok / wall, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def run_levels(name: str, url: str, route: str, bodies: List[bytes], levels: Sequence[int], per_level: int,
               max_seconds: float, pid: Optional[int], deepbatch_metrics: bool,
               warm: bool = True) -> List[Dict[str, Any]]:
    rows = []
    keep_alive = deepbatch_metrics  # DeepFace's Flask server closes its connections after each answer
    if warm:  # models loaded (lazily, by DeepFace)
        warmed = asyncio.run(load(url + route, bodies, 1, 2, 300, keep_alive))
        if not warmed["ok"]:
            raise RuntimeError(f"{name}: the warm-up requests failed: {warmed['codes']} {warmed['failures']}")
    for concurrency in levels:
        before = batch_counts(url) if deepbatch_metrics else (0.0, 0.0)
        memory = rss_mib(pid) if pid else float("nan")
        cpu = cpu_seconds(pid) if pid else float("nan")
        result = asyncio.run(load(url + route, bodies, concurrency, max(per_level, 2 * concurrency), max_seconds,
                                  keep_alive))
        after = batch_counts(url) if deepbatch_metrics else (0.0, 0.0)
        calls = after[0] - before[0]
        used = (cpu_seconds(pid) - cpu) if pid else float("nan")
        result.update(row=name, concurrency=concurrency, load=load_average(),
                      batch=(after[1] - before[1]) / calls if calls else None,
                      rss_before_mib=memory, rss_after_mib=rss_mib(pid) if pid else float("nan"),
                      cpu_ms_per_image=1000 * used / max(1, result["ok"]))
        rows.append(result)
        print(format_row(result), flush=True)
    return rows


def offline_batch(photos: List[bytes], detector: str, model: str, repeat: int) -> Dict[str, Any]:
    """The library's ``represent`` over ``repeat`` copies of ``photos`` in one call: its throughput."""
    import deepbatch

    deepbatch.represent(photos[0], model_name=model, detector_backend=detector, enforce_detection=False)
    batch = photos * repeat
    cpu = cpu_seconds(os.getpid())
    started = time.perf_counter()
    deepbatch.represent(batch, model_name=model, detector_backend=detector, enforce_detection=False, on_error="skip")
    wall = time.perf_counter() - started
    cpu = cpu_seconds(os.getpid()) - cpu
    return {"row": "offline", "concurrency": "batch", "requests": len(batch), "ok": len(batch), "errors": 0,
            "images_per_s": len(batch) / wall, "p50_ms": float("nan"), "p99_ms": float("nan"), "batch": None,
            "cpu_ms_per_image": 1000 * cpu / len(batch), "load": load_average()}


def interleaved(url: str, pid: int, photos: List[bytes], bodies: List[bytes], detector: str, model: str,
                concurrency: int, rounds: int, requests: int, max_seconds: float) -> List[Dict[str, Any]]:
    """``rounds`` rounds of the library offline, then the service at ``concurrency``, back to back on the same
    photos: a noisy machine changes both sides of each round's ratio alike."""
    rows = []
    for round_ in range(rounds):
        library = offline_batch(photos, detector, model, max(1, requests // len(photos)))
        print(format_row(library), flush=True)
        served = run_levels("serve", url, "/represent", bodies, [concurrency], requests, max_seconds, pid, True,
                            warm=round_ == 0)[0]
        library["round"] = served["round"] = round_
        served["ratio"] = served["images_per_s"] / library["images_per_s"]
        print(f"round {round_}: serve / offline = {served['ratio']:.2f} (load {library['load']:.1f} / "
              f"{served['load']:.1f})", flush=True)
        rows += [library, served]
    return rows


LARGE_PHOTO = 1 << 20  # bytes: the photos whose base64 JSON bodies are megabytes (the paired rows split at it)


def paired_latency(url: str, photos: List[bytes], bodies: List[bytes], detector: str, model: str,
                   pairs: int) -> List[Dict[str, Any]]:
    """``pairs`` single images, each timed through the library (``represent`` of its bytes), then the service (one
    request, a kept-alive connection), then the library again: the service's added latency photo by photo, and the
    machine's own noise on the same photos (the library against itself, in the same run). The client is the standard
    library's ``http.client``, the lightest there is, so that what is added is the service's: ``httpx`` itself
    takes 1.4 ms more per request here, 3 ms more with a 3.3 MB body."""
    import deepbatch

    deepbatch.represent(photos[0], model_name=model, detector_backend=detector, enforce_detection=False)
    library, served, again = [], [], []

    def timed_library(index: int) -> float:
        started = time.perf_counter()
        deepbatch.represent(photos[index % len(photos)], model_name=model, detector_backend=detector,
                            enforce_detection=False)
        return time.perf_counter() - started

    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    headers = {"content-type": "application/json"}

    def timed_service(index: int) -> float:
        started = time.perf_counter()
        connection.request("POST", "/represent", body=bodies[index % len(bodies)], headers=headers)
        response = connection.getresponse()
        answer = response.read()
        took = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"the service answered {response.status}: {answer[:200]!r}")
        return took

    try:
        timed_service(0)
        for index in range(pairs):
            library.append(timed_library(index))
            served.append(timed_service(index))
            again.append(timed_library(index))
    finally:
        connection.close()

    def pick(values: List[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    rows = [{"row": "paired", "concurrency": side, "requests": pairs, "ok": pairs, "errors": 0,
             "images_per_s": pairs / sum(values), "p50_ms": pick(values, 0.5), "p99_ms": pick(values, 0.99),
             "batch": None, "load": load_average()}
            for side, values in (("library 1", library), ("serve 1", served), ("library 1 again", again))]
    large = [len(photos[index % len(photos)]) > LARGE_PHOTO for index in range(pairs)]
    for side, values, which in (("serve - library", served, None), ("library again - library", again, None),
                                (f"serve - library, photos over {LARGE_PHOTO >> 20} MB", served, True),
                                ("serve - library, the other photos", served, False)):
        added = [after - before for after, before, big in zip(values, library, large) if which in (None, big)]
        if added:
            rows.append({"row": "paired", "concurrency": side, "requests": len(added), "ok": len(added),
                         "errors": 0, "images_per_s": float("nan"), "p50_ms": 1000 * statistics.median(added),
                         "p99_ms": pick(added, 0.99), "batch": None, "load": load_average()})
    for row in rows:
        print(format_row(row), flush=True)
    return rows


# DeepFace's library as its users call it: one ``DeepFace.represent`` per image, in a loop, in a process of its own
# (TensorFlow, which DeepFace imports, stays out of the process that times deepbatch). A line "N" on its stdin runs
# the loop over N images and answers with the wall time.
DEEPFACE_LOOP = """
import json, sys, time
from deepface import DeepFace
paths, model, detector = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
for line in sys.stdin:
    count = int(line)
    started = time.perf_counter()
    for index in range(count):
        DeepFace.represent(img_path=paths[index % len(paths)], model_name=model, detector_backend=detector,
                           enforce_detection=False)
    print(json.dumps({"images": count, "seconds": time.perf_counter() - started}), flush=True)
"""


class DeepFaceLibrary:
    """DeepFace's library in a process of its own, its models built by a first image (not timed)."""

    def __init__(self, paths: List[Path], model: str, detector: str, env: Dict[str, str], log: Path):
        self.log = open(log, "w")
        self.process = subprocess.Popen([sys.executable, "-c", DEEPFACE_LOOP, json.dumps([str(p) for p in paths]),
                                         model, detector], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True)
        self.run(1)

    def run(self, count: int) -> Dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        cpu = cpu_seconds(self.process.pid)
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"DeepFace's library process exited with {self.process.wait()}; see {self.log.name}")
        answer = json.loads(line)
        cpu = cpu_seconds(self.process.pid) - cpu
        return {"row": "deepface library", "concurrency": "1 by 1", "requests": count, "ok": count, "errors": 0,
                "images_per_s": count / answer["seconds"], "p50_ms": float("nan"), "p99_ms": float("nan"),
                "batch": None, "cpu_ms_per_image": 1000 * cpu / count, "load": load_average()}

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        stop(self.process)
        self.log.close()


def margin(args: argparse.Namespace, paths: List[Path], photos: List[bytes], data_uris: List[str], detector: str,
           model: str, levels: Sequence[int]) -> List[Dict[str, Any]]:
    """The margin deepbatch keeps over DeepFace as a service against the one its library has, from one run.

    ``--margin R`` rounds, each measuring on the same photos and pair: (i) deepbatch's ``represent`` over all the
    photos in one call, (ii) DeepFace's ``represent`` per photo in a loop, (iii) ``deepbatch serve`` and (iv)
    DeepFace's API server at each concurrency. Both servers and DeepFace's library process stay up for the whole
    run (models loaded once); odd rounds run the four in reverse order, so a load that drifts during the run weighs
    on both sides alike. Per round and pooled over the rounds (images over seconds): the library margin (i)/(ii),
    the service margin (iii)/(iv) per concurrency, and their ratio, the share of the library's margin the service
    keeps.
    """
    names = {"model_name": DEEPFACE_NAMES.get(model, model), "detector_backend": DEEPFACE_NAMES.get(detector, detector)}
    options = {"enforce_detection": False}
    bodies = [json.dumps({"img": uri, **options}).encode() for uri in data_uris]
    deepface_bodies = [json.dumps({"img": uri, **options, **names}).encode() for uri in data_uris]
    home = Path(tempfile.mkdtemp(prefix="deepface-home-"))
    rows: List[Dict[str, Any]] = []
    stack = contextlib.ExitStack()
    try:
        serve_process, serve_url = start_deepbatch(detector, model, [])
        stack.callback(stop, serve_process)
        deepface_process, deepface_url = start_deepface(args.weights, home, "gunicorn")
        stack.callback(stop, deepface_process)
        library = DeepFaceLibrary(paths, names["model_name"], names["detector_backend"],
                                  deepface_home(args.weights, home), home / "deepface_library.log")
        stack.callback(library.close)
        repeat = max(1, args.requests // len(photos))
        deepbatch_library_images = len(photos) * repeat

        def part(name: str, round_: int) -> List[Dict[str, Any]]:
            if name == "library":
                return [offline_batch(photos, detector, model, repeat)]
            if name == "deepface library":
                return [library.run(deepbatch_library_images)]
            if name == "serve":
                return run_levels("serve", serve_url, "/represent", bodies, levels, args.requests, args.max_seconds,
                                  serve_process.pid, True, warm=round_ == 0)
            return run_levels("deepface", deepface_url, "/represent", deepface_bodies, levels, args.requests,
                              args.max_seconds, worker_pid(deepface_process.pid), False, warm=round_ == 0)

        order = ["library", "deepface library", "serve", "deepface"]
        for round_ in range(args.margin):
            measured: Dict[str, List[Dict[str, Any]]] = {}
            for name in order if round_ % 2 == 0 else order[::-1]:
                measured[name] = part(name, round_)
                for row in measured[name]:
                    row["round"] = round_
                    if name in ("library", "deepface library"):
                        print(format_row(row), flush=True)
            rows += [row for name in order for row in measured[name]]
            summary = margin_summary(rows, levels, [round_])
            rows.append(summary)
            print(format_margin(summary), flush=True)
        total = margin_summary(rows, levels, list(range(args.margin)))
        rows.append(total)
        print(format_margin(total), flush=True)
    finally:
        stack.close()
        if args.keep_logs:
            print(f"DeepFace's logs are in {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    return rows


def margin_summary(rows: List[Dict[str, Any]], levels: Sequence[int], rounds: List[int]) -> Dict[str, Any]:
    """Images per second pooled over ``rounds`` (images answered over seconds taken) for each side, and the
    margins: library (i)/(ii), service (iii)/(iv) per concurrency, and kept = service margin / library margin."""

    def rate(row_name: str, concurrency: Any) -> float:
        picked = [r for r in rows if r.get("row") == row_name and r.get("concurrency") == concurrency
                  and r.get("round") in rounds]
        seconds = sum(r["ok"] / r["images_per_s"] for r in picked if r["images_per_s"] > 0)
        return sum(r["ok"] for r in picked) / seconds if seconds else float("nan")

    library = rate("offline", "batch") / rate("deepface library", "1 by 1")
    per_level = {}
    for concurrency in levels:
        service = rate("serve", concurrency) / rate("deepface", concurrency)
        per_level[concurrency] = {"deepbatch_serve": rate("serve", concurrency), "deepface_api":
                                  rate("deepface", concurrency), "service_margin": service, "kept": service / library}
    kept = min(level["kept"] for level in per_level.values())
    return {"row": "margin", "rounds": rounds, "deepbatch_library": rate("offline", "batch"),
            "deepface_library": rate("deepface library", "1 by 1"), "library_margin": library, "levels": per_level,
            "kept": kept, "load": load_average()}


def format_margin(summary: Dict[str, Any]) -> str:
    rounds = summary["rounds"]
    title = f"round {rounds[0]}" if len(rounds) == 1 else f"all {len(rounds)} rounds, pooled"
    lines = [f"{title}: library margin {summary['deepbatch_library']:.2f} / {summary['deepface_library']:.2f} "
             f"images/s = {summary['library_margin']:.2f} (load {summary['load']:.1f})"]
    for concurrency, level in summary["levels"].items():
        lines.append(f"  C={concurrency}: service margin {level['deepbatch_serve']:.2f} / {level['deepface_api']:.2f}"
                     f" images/s = {level['service_margin']:.2f}; kept {level['kept']:.2f} of the library's margin")
    lines.append(f"  margin kept (the least over the concurrencies): {summary['kept']:.2f}")
    return "\n".join(lines)


def offline(photos: List[bytes], detector: str, model: str, repeat: int) -> List[Dict[str, Any]]:
    import deepbatch

    batch_row = offline_batch(photos, detector, model, repeat)
    single = []
    for data in photos:
        started = time.perf_counter()
        deepbatch.represent(data, model_name=model, detector_backend=detector, enforce_detection=False)
        single.append(time.perf_counter() - started)
    single.sort()
    rows = [batch_row,
            {"row": "offline", "concurrency": "1 by 1", "load": load_average(), "requests": len(single),
             "ok": len(single), "errors": 0,
             "images_per_s": len(single) / sum(single), "p50_ms": statistics.median(single) * 1000,
             "p99_ms": single[min(len(single) - 1, int(0.99 * len(single)))] * 1000, "batch": None}]
    for row in rows:
        print(format_row(row), flush=True)
    return rows


def format_row(row: Dict[str, Any]) -> str:
    batch = "" if row.get("batch") is None else f"{row['batch']:.1f}"
    codes = row.get("codes") or {}
    refused = codes.get(503, 0)
    memory = ""
    if row.get("rss_before_mib") == row.get("rss_before_mib") and row.get("rss_before_mib") is not None:
        memory = f"{row['rss_before_mib']:.0f} -> {row['rss_after_mib']:.0f}"
    cpu = row.get("cpu_ms_per_image")
    cpu_text = "" if cpu is None else f"{cpu:.0f}"
    return (f"| {row['row']} | {row['concurrency']} | {row['requests']} | {row['images_per_s']:.1f} | "
            f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['errors']} | {refused} | {batch} | {cpu_text} | "
            f"{memory} | {row.get('load', float('nan')):.1f} |")


HEADER = ("| row | concurrency | requests | images/s | p50 ms | p99 ms | errors | of which 503 | mean batch | "
          "CPU ms/image | server RSS MiB | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path(os.environ.get("DEEPBATCH_TEST_DATA", "../shared/dataset")))
    parser.add_argument("--weights", type=Path, default=Path(os.environ.get("DEEPBATCH_WEIGHTS", "../shared/weights")))
    parser.add_argument("--pair", default="scrfd:arcface_mbf", help="DETECTOR:RECOGNIZER (deepbatch names)")
    parser.add_argument("--rows", default="serve,batch1,offline,queue",
                        help="serve, batch1, offline, queue, deepface (comma-separated; none: only the modes below)")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--deepface-concurrency", default="1,4,16",
                        help="levels for DeepFace's server (it answers about one image per second here)")
    parser.add_argument("--requests", type=int, default=48, help="requests per level (at least 2 x concurrency)")
    parser.add_argument("--max-seconds", type=float, default=25.0, help="time limit per level")
    parser.add_argument("--photo-count", type=int, default=24, help="photos used, in name order")
    parser.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                        help="rounds of offline, then serve at --interleave-concurrency, back to back (row 'ratio')")
    parser.add_argument("--interleave-concurrency", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=0, metavar="N",
                        help="N single images timed through the library and the service alternately (rows 'paired')")
    parser.add_argument("--deepface-server", choices=("gunicorn", "flask"), default="gunicorn",
                        help="gunicorn: as DeepFace's Docker image runs it (one sync worker: one request at a time); "
                             "flask: its Flask app with threaded=True (concurrent requests share its models)")
    parser.add_argument("--margin", type=int, default=0, metavar="ROUNDS",
                        help="rounds of deepbatch's library, DeepFace's library, deepbatch serve and DeepFace's API "
                             "server (gunicorn) at --concurrency, on --pair: the margins and the share kept")
    parser.add_argument("--keep-logs", action="store_true", help="keep DeepFace's logs (their folder is printed)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.weights.is_dir():  # the library here and the servers started from here find their weights there
        os.environ.setdefault("DEEPBATCH_WEIGHTS", str(args.weights.resolve()))
    detector, model = args.pair.split(":")
    rows_wanted = args.rows.split(",")
    levels = [int(c) for c in args.concurrency.split(",")]
    paths = sorted(p for p in args.photos.glob("*.jpg"))[: args.photo_count]
    photos = [p.read_bytes() for p in paths]
    data_uris = ["data:image/jpeg;base64," + base64.b64encode(p).decode("ascii") for p in photos]
    options = {"enforce_detection": False}
    bodies = [json.dumps({"img": uri, **options}).encode() for uri in data_uris]
    print(f"{len(photos)} photos from {args.photos}, pair {detector} + {model}, {os.cpu_count()} CPUs\n\n{HEADER}",
          flush=True)
    results: List[Dict[str, Any]] = []
    if args.margin:
        results += margin(args, paths, photos, data_uris, detector, model, levels)
    if "ratio" in rows_wanted or args.interleave:
        process, url = start_deepbatch(detector, model, [])
        try:
            results += interleaved(url, process.pid, photos, bodies, detector, model, args.interleave_concurrency,
                                   max(1, args.interleave), args.requests, args.max_seconds)
        finally:
            stop(process)
    if args.pairs:
        process, url = start_deepbatch(detector, model, [])
        try:
            results += paired_latency(url, photos, bodies, detector, model, args.pairs)
        finally:
            stop(process)
    for name, extra in (("serve", []), ("batch1", ["--max-batch", "1"])):
        if name in rows_wanted:
            process, url = start_deepbatch(detector, model, extra)
            try:
                results += run_levels(name, url, "/represent", bodies, levels, args.requests, args.max_seconds,
                                      process.pid, True)
            finally:
                stop(process)
    if "offline" in rows_wanted:
        results += offline(photos, detector, model, max(1, args.requests // len(photos)))
    if "queue" in rows_wanted:
        process, url = start_deepbatch(detector, model, ["--queue-limit", "32"])
        try:
            results += run_levels("queue32", url, "/represent", bodies, [64, 64], max(args.requests, 128),
                                  args.max_seconds * 2, process.pid, True)
        finally:
            stop(process)
    if "deepface" in rows_wanted:
        home = Path(tempfile.mkdtemp(prefix="deepface-home-"))
        try:
            process, url = start_deepface(args.weights, home, args.deepface_server)
            try:
                names = {"model_name": DEEPFACE_NAMES.get(model, model),
                         "detector_backend": DEEPFACE_NAMES.get(detector, detector)}
                deepface_bodies = [json.dumps({"img": uri, **options, **names}).encode() for uri in data_uris]
                deepface_levels = [int(c) for c in args.deepface_concurrency.split(",")]
                results += run_levels("deepface", url, "/represent", deepface_bodies, deepface_levels, args.requests,
                                      args.max_seconds, worker_pid(process.pid), False)
            finally:
                if process.poll() is not None:
                    log = (home / "deepface_api.log").read_text(errors="replace")
                    print(f"DeepFace's server exited with {process.returncode}; its log ends with:\n{log[-2000:]}",
                          file=sys.stderr)
                stop(process)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
