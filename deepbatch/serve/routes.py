"""The handlers of the POST routes (``/represent``, ``/verify``, ``/detect``, ``/extract_faces``, ``/register``,
``/search``): each reads its fields, hands its images to the service's batcher and shapes the library's answer."""

from __future__ import annotations

import base64
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import numpy as np
from starlette.concurrency import run_in_threadpool

from ..api.represent import embedding_dicts
from ..api.verify import at_pair, best_pair, face_area, given_embedding, is_embedding
from ..checks import refuse_anti_spoofing
from ..core.stream import FaceRules
from ..errors import FaceNotDetectedError, ImageError, ModelRunError
from ..formatting import confidence, facial_area
from ..recognition.distance import check_metric
from .arguments import Arguments
from .config import ServeConfig
from .face_db import register as register_faces
from .face_db import search as search_faces
from .jobs import Job
from .service import Service

Handler = Callable[[Arguments], Awaitable[Dict[str, Any]]]


def _face_png(pixels: np.ndarray) -> str:
    import cv2

    ok, data = cv2.imencode(".png", pixels)
    if not ok:
        raise ModelRunError("the face crop could not be encoded as PNG")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def route_handlers(service: Service, config: ServeConfig) -> Dict[str, Handler]:
    """The handler of each POST route, answering with ``service`` as ``config`` says."""

    async def represent(args: Arguments) -> Dict[str, Any]:
        refuse_anti_spoofing(args.flag("anti_spoofing", False))
        detector, model = service.detector_name(args), service.model_name(args)
        rules = FaceRules.of(args.flag("enforce_detection", True), args.integer("max_faces", None),
                             args.integer("expand_percentage", 0) or 0, args.flag("align", True))
        normalization = args.text("normalization", "base")
        l2 = args.flag("l2_normalize", False)
        items, single = service.images(args.image("img"), "img")

        def make(image: np.ndarray, source: Optional[str]) -> Job:
            return Job(image, detector, rules, model, normalization, source=source)

        records = await service.run(items, single, make)
        results = [embedding_dicts(record, l2_normalize=l2) for record in records]
        return {"results": results[0] if single else results}

    async def verify(args: Arguments) -> Dict[str, Any]:
        started = time.perf_counter()
        refuse_anti_spoofing(args.flag("anti_spoofing", False))
        detector, model = service.detector_name(args), service.model_name(args)
        metric = args.text("distance_metric", "cosine")
        check_metric(metric)
        rules = FaceRules.of(args.flag("enforce_detection", True), None, args.integer("expand_percentage", 0) or 0,
                             args.flag("align", True))
        normalization = args.text("normalization", "base")
        threshold = args.get("threshold")
        recognizer = await run_in_threadpool(service.batcher.recognizer_for, model)  # built once, then cached
        sides: List[Any] = []
        pending: List[Tuple[int, Any]] = []
        for side, name in enumerate(("img1", "img2")):
            value = args.image(name)
            if is_embedding(value) and value and not isinstance(value[0], (str, bytes)):
                sides.append(given_embedding(value, recognizer, side + 1))
            else:
                sides.append(None)
                pending.append((side, service.inputs.item(value, name)))

        def make(image: np.ndarray, source: Optional[str]) -> Job:
            return Job(image, detector, rules, model, normalization, source=source)

        if pending:
            try:
                records = await service.run([item for _, item in pending], False, make)
            except (ImageError, FaceNotDetectedError) as exc:
                side = pending[exc.index or 0][0]
                raise at_pair(exc.at(None), 0, ("img1", "img2")[side], True) from None
            for (side, _), record in zip(pending, records):
                sides[side] = record
        limit = recognizer.threshold(metric) if threshold is None else float(threshold)
        calibrated = limit if metric not in recognizer.thresholds else recognizer.threshold(metric)
        distance, i, j = best_pair(sides[0], sides[1], metric)
        return {
            "verified": bool(distance <= limit),
            "distance": distance,
            "threshold": limit,
            "confidence": recognizer.confidence(distance, metric, distance <= calibrated),
            "model": args.text("model_name", config.model),
            "detector_backend": args.text("detector_backend", config.detector),
            "similarity_metric": metric,
            "facial_areas": {"img1": face_area(sides[0], i), "img2": face_area(sides[1], j)},
            "time": round(time.perf_counter() - started, 2),
        }

    async def detect(args: Arguments) -> Dict[str, Any]:
        detector = service.detector_name(args)
        rules = FaceRules("empty", args.integer("max_faces", None))
        items, single = service.images(args.image("img"), "img")

        def make(image: np.ndarray, source: Optional[str]) -> Job:
            return Job(image, detector, rules, source=source)

        records = await service.run(items, single, make)
        results = [[{"facial_area": facial_area(face.box, face.landmarks, record.shape),
                     "confidence": confidence(face.score), "score": float(face.score)}
                    for face in record.faces] for record in records]
        shapes = [{"height": int(r.shape[0]), "width": int(r.shape[1])} for r in records]
        return {"results": results[0], "image": shapes[0]} if single else {"results": results, "images": shapes}

    async def extract_faces(args: Arguments) -> Dict[str, Any]:
        refuse_anti_spoofing(args.flag("anti_spoofing", False))
        detector = service.detector_name(args)
        rules = FaceRules.of(args.flag("enforce_detection", True), args.integer("max_faces", None),
                             args.integer("expand_percentage", 0) or 0, args.flag("align", True))
        items, single = service.images(args.image("img"), "img")

        def make(image: np.ndarray, source: Optional[str]) -> Job:
            return Job(image, detector, rules, crops=True, source=source)

        records = await service.run(items, single, make)
        results = [[{"face": _face_png(crop), "facial_area": facial_area(face.box, face.landmarks, record.shape),
                     "confidence": confidence(face.score)}
                    for face, crop in zip(record.faces, record.crops)] for record in records]
        return {"results": results[0] if single else results}

    async def register(args: Arguments) -> Dict[str, Any]:
        return await register_faces(service, args)

    async def search(args: Arguments) -> Dict[str, Any]:
        return await search_faces(service, args)

    routes: Dict[str, Handler] = {"/represent": represent, "/verify": verify, "/detect": detect,
                                  "/extract_faces": extract_faces, "/register": register, "/search": search}
    return routes
