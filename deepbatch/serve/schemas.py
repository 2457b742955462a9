"""Request and response models of the routes, for the OpenAPI description.

The routes read JSON objects and multipart forms alike (DeepFace's API takes both), so the bodies are parsed by
hand and these models only describe them: each route's ``requestBody`` offers both content types with the same
fields, and its 200 answer names its response model.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, Field

Image = Union[str, List[str]]
IMAGE_HELP = ("a base64 string or data URI (JSON), a file (multipart), an http(s) URL where the service allows "
              "them, or a path inside the folder given with --allow-path; a list of images gives one result per "
              "image")


class FaceArgs(BaseModel):
    detector_backend: Optional[str] = Field(None, description="detector name (default: the service's --detector)")
    enforce_detection: bool = Field(True, description="an image without a face is an error (400)")
    align: bool = True
    expand_percentage: int = 0
    max_faces: Optional[int] = None


class RepresentRequest(FaceArgs):
    img: Image = Field(..., description=IMAGE_HELP)
    model_name: Optional[str] = Field(None, description="recognizer name (default: the service's --model)")
    normalization: str = "base"
    l2_normalize: bool = False
    anti_spoofing: bool = False


class VerifyRequest(BaseModel):
    img1: Union[str, List[float]] = Field(..., description="an image as for /represent, or an embedding")
    img2: Union[str, List[float]] = Field(..., description="an image as for /represent, or an embedding")
    model_name: Optional[str] = None
    detector_backend: Optional[str] = None
    distance_metric: str = "cosine"
    enforce_detection: bool = True
    align: bool = True
    expand_percentage: int = 0
    normalization: str = "base"
    threshold: Optional[float] = None
    anti_spoofing: bool = False


class DetectRequest(BaseModel):
    img: Image = Field(..., description=IMAGE_HELP)
    detector_backend: Optional[str] = None
    max_faces: Optional[int] = None


class ExtractRequest(FaceArgs):
    img: Image = Field(..., description=IMAGE_HELP)
    anti_spoofing: bool = False


class FacialArea(BaseModel):
    x: Optional[int]
    y: Optional[int]
    w: Optional[int]
    h: Optional[int]
    left_eye: Optional[List[int]] = None
    right_eye: Optional[List[int]] = None
    nose: Optional[List[int]] = None
    mouth_left: Optional[List[int]] = None
    mouth_right: Optional[List[int]] = None


class Embedding(BaseModel):
    embedding: List[float]
    facial_area: FacialArea
    face_confidence: float
    alignment: str


class RepresentResponse(BaseModel):
    results: Union[List[Embedding], List[List[Embedding]]]


class VerifyResponse(BaseModel):
    verified: bool
    distance: float
    threshold: float
    confidence: float
    model: str
    detector_backend: str
    similarity_metric: str
    facial_areas: Dict[str, FacialArea]
    time: float


class DetectedFace(BaseModel):
    facial_area: FacialArea
    confidence: float
    score: float


class DetectResponse(BaseModel):
    results: Union[List[DetectedFace], List[List[DetectedFace]]]
    image: Optional[Dict[str, int]] = None
    images: Optional[List[Dict[str, int]]] = None


class ExtractedFace(BaseModel):
    face: str = Field(..., description="the crop as a PNG data URI")
    facial_area: FacialArea
    confidence: float


class ExtractResponse(BaseModel):
    results: Union[List[ExtractedFace], List[List[ExtractedFace]]]


class RegisterRequest(FaceArgs):
    img: Image = Field(..., description=IMAGE_HELP)
    img_name: Optional[Union[str, List[str]]] = Field(None, description="the name(s) stored with the image(s) "
                                                      "(default: sha256:<digest of the bytes>)")
    model_name: Optional[str] = Field(None, description="recognizer name (default: the service's --model)")
    normalization: str = "base"
    l2_normalize: bool = False
    anti_spoofing: bool = False


class RegisterError(BaseModel):
    img_name: str
    error: str


class RegisterResponse(BaseModel):
    inserted: int = Field(..., description="faces written (DeepFace's answer)")
    images: int = Field(..., description="images written, error rows included")
    skipped: int = Field(..., description="images registered before under the same settings")
    errors: List[RegisterError]


class SearchRequest(FaceArgs):
    img: Image = Field(..., description=IMAGE_HELP)
    model_name: Optional[str] = Field(None, description="recognizer name (default: the service's --model)")
    distance_metric: str = "cosine"
    normalization: str = "base"
    l2_normalize: bool = False
    similarity_search: bool = Field(False, description="rank every candidate, not only those within threshold")
    k: Optional[int] = Field(None, description="keep the k nearest faces")
    search_method: str = Field("exact", description="exact, or ann (the approximate index)")
    threshold: Optional[float] = Field(None, description="default: the model's for distance_metric")
    ef_search: Optional[int] = Field(None, description="candidates kept by an approximate search")
    anti_spoofing: bool = False


class Match(BaseModel):
    id: int
    img_name: str
    model_name: str
    detector_backend: str
    aligned: bool
    l2_normalized: bool
    search_method: str
    target_x: int
    target_y: int
    target_w: int
    target_h: int
    threshold: Optional[float]
    distance_metric: str
    distance: float
    confidence: float
    source_x: int
    source_y: int
    source_w: int
    source_h: int


class SearchResponse(BaseModel):
    results: Union[List[List[Match]], List[List[List[Match]]]] = Field(
        ..., description="one table of matches per face of the image, nearest first (a list of those per image "
                         "when a list of images was sent)")


class ErrorResponse(BaseModel):
    error: str


ROUTES: Dict[str, Any] = {
    "/represent": (RepresentRequest, RepresentResponse, "face embeddings (DeepFace's /represent)"),
    "/verify": (VerifyRequest, VerifyResponse, "whether two images show the same person (DeepFace's /verify)"),
    "/detect": (DetectRequest, DetectResponse, "faces: boxes, landmarks and confidences"),
    "/extract_faces": (ExtractRequest, ExtractResponse, "faces cut out and aligned, as PNG data URIs"),
    "/register": (RegisterRequest, RegisterResponse, "register the faces of images in the face database "
                  "(DeepFace's /register)"),
    "/search": (SearchRequest, SearchResponse, "the registered faces like each face of an image (DeepFace's "
                "/search)"),
}
ERRORS = {400: "the image cannot be used, or no face in it", 401: "missing or wrong bearer token",
          403: "a path or URL the service does not accept", 413: "over a limit (body, images, pixels)",
          422: "an argument has no valid value", 500: "the model failed on this request's batch",
          404: "nothing registered under these settings",
          503: "the queue is full (see Retry-After), or no face database is configured",
          504: "not answered within the timeout"}


def _inline(model: Any) -> Dict[str, Any]:
    """``model``'s JSON schema with its definitions, for a ``requestBody`` that is not in the components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return dict(schema)


def document(path: str) -> Dict[str, Any]:
    """The keyword arguments of ``add_api_route`` that describe ``path`` in the OpenAPI description."""
    request, response, summary = ROUTES[path]
    schema = _inline(request)
    responses: Dict[Union[int, str], Dict[str, Any]] = {200: {"model": response}}
    responses.update({code: {"model": ErrorResponse, "description": text} for code, text in ERRORS.items()})
    return {
        "summary": summary,
        "responses": responses,
        "openapi_extra": {"requestBody": {"required": True, "content": {
            "application/json": {"schema": schema},
            "multipart/form-data": {"schema": schema},
        }}},
    }
