"""Our batch API: ``POST /v1/embed/{model}`` (multipart, many images) and ``GET /v1/models``.

The client sends up to ``max_images_per_request`` file parts named ``images``;
the answer lists one result per part, in order: ``{"embedding": [...]}`` or
``{"error": "<reason>"}``. A bad image fails only its own item.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

try:  # python-multipart's own error: starlette < 1.7 lets it through unwrapped
    from python_multipart.exceptions import FormParserError
except ModuleNotFoundError:  # python-multipart < 0.0.13 names its module multipart
    from multipart.exceptions import FormParserError

from ..deps import require_token, served_model
from ..errors import ApiError, responses_for
from ..guards import admit
from ..decoding import ImageFailure, decode, embed_images, finite_rows, with_timeout
from ..registry import ServedModel
from ..state import StateDep
from .orange import EMBED_ERRORS

router = APIRouter(prefix="/v1", tags=["Batch API"], dependencies=[Depends(require_token)])
# the embedding route also takes a slot of --max-pending-requests (503 when none is free)
embedding = APIRouter(prefix="/v1", tags=["Batch API"],
                      dependencies=[Depends(require_token), Depends(admit)])

MULTIPART_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["images"], "properties": {"images": {
        "type": "array", "items": {"type": "string", "format": "binary"},
        "description": "one part per image (any format Pillow reads, any size)"}}}}}}}

# besides the images: a few small text fields are tolerated (and ignored)
MAX_TEXT_FIELDS = 16


class ModelInfo(BaseModel):
    name: str
    title: str
    dim: int
    input_size: int
    device: str
    devices: list[str] = []  # every device it runs on (--devices); device is the first
    weights_id: str
    fine_tuned: bool


class ModelList(BaseModel):
    models: list[ModelInfo]


class ItemResult(BaseModel):
    embedding: "list[float] | None" = None
    error: "str | None" = None


class EmbedResponse(BaseModel):
    model: str
    dim: int
    weights_id: str
    input_size: int
    results: list[ItemResult]


@router.get("/models", response_model=ModelList, summary="The models this server embeds with")
async def list_models(state: StateDep) -> ModelList:
    return ModelList(models=[ModelInfo(**model.describe()) for model in state.models.values()])


async def _read_parts(request: Request, limit: int, max_bytes: int) -> list[bytes]:
    """The bytes of every ``images`` part, in order.

    The body is already bounded (``--max-request-bytes``, and all bodies together), so
    the parts stay in memory: no temporary files, so no writable temp folder is needed.
    More than ``limit`` files is 413 (the client splits its batch); a malformed body 422.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(422, "Send the images as multipart/form-data, one file part named "
                            "'images' per image.", "bad_request")
    parser = MultiPartParser(request.headers, request.stream(), max_files=limit,
                             max_fields=MAX_TEXT_FIELDS, max_part_size=max_bytes)
    parser.spool_max_size = max_bytes  # a part never rolls over to a temporary file
    try:
        form = await parser.parse()
    except FormParserError:
        raise ApiError(422, "The multipart body could not be read: Invalid multipart data.",
                       "bad_request") from None
    except MultiPartException as exc:
        if "Too many files" in exc.message:
            raise ApiError(413, f"More than {limit} images in one request; at most {limit} "
                                f"are allowed. Split them over several requests.",
                           "too_many_images") from None
        raise ApiError(422, f"The multipart body could not be read: {exc.message}",
                       "bad_request") from None
    try:
        parts = form.getlist("images")
        if not parts:
            raise ApiError(422, "No images: send one file part named 'images' per image.",
                           "bad_request")
        if len(parts) > limit:  # text parts named images count too
            raise ApiError(413, f"{len(parts)} images in one request; at most {limit} are "
                                f"allowed. Split them over several requests.",
                           "too_many_images")
        data = []
        for part in parts:
            if isinstance(part, UploadFile):
                data.append(await part.read())
            else:  # a plain text field: its bytes are the image (usually not one)
                data.append(part.encode("utf-8", "surrogateescape"))
        return data
    finally:
        await form.close()


@embedding.post("/embed/{model}", response_model=EmbedResponse, response_model_exclude_none=True,
                responses=responses_for(*EMBED_ERRORS, "too_many_images", "bad_request"),
                openapi_extra=MULTIPART_BODY, summary="Embed many images, in order")
async def embed_batch(request: Request, state: StateDep,
                      model: ServedModel = Depends(served_model)) -> EmbedResponse:
    """Embed every ``images`` part with ``model``; per-image errors, request order kept."""
    settings = state.settings

    async def work() -> EmbedResponse:
        parts = await _read_parts(request, settings.max_images_per_request,
                                  settings.max_request_bytes)
        decoded = await asyncio.gather(*(decode(state, data, model) for data in parts))
        good = [i for i, image in enumerate(decoded) if not isinstance(image, ImageFailure)]
        vectors = await embed_images(state, model, [decoded[i] for i in good])
        finite = finite_rows(vectors)
        results: list[ItemResult] = [ItemResult()] * len(decoded)
        for i, image in enumerate(decoded):
            if isinstance(image, ImageFailure):
                state.metrics.error(image.kind)
                results[i] = ItemResult(error=image.reason)
        for row, i in enumerate(good):
            results[i] = (ItemResult(embedding=vectors[row].tolist()) if finite[row] else
                          ItemResult(error="the network produced non-finite values"))
        return EmbedResponse(model=model.name, dim=model.dim, weights_id=model.weights_id,
                             input_size=model.input_size, results=results)

    return await with_timeout(state, work())
