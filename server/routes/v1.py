"""Our batch API: ``POST /v1/embed/{model}`` (multipart, many images) and ``GET /v1/models``.

The client sends up to ``max_images_per_request`` file parts named ``images``;
the answer lists one result per part, in order: ``{"embedding": [...]}`` or
``{"error": "<reason>"}``. A bad image fails only its own item.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from ..deps import require_token, served_model
from ..errors import ApiError
from ..pipeline import ImageFailure, decode, embed_images, finite_rows, with_timeout
from ..registry import ServedModel
from .orange import ERRORS

router = APIRouter(prefix="/v1", tags=["Batch API"], dependencies=[Depends(require_token)])

MULTIPART_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["images"], "properties": {"images": {
        "type": "array", "items": {"type": "string", "format": "binary"},
        "description": "one part per image (any format Pillow reads, any size)"}}}}}}}


class ModelInfo(BaseModel):
    name: str
    title: str
    dim: int
    input_size: int
    device: str
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
async def list_models(request: Request) -> dict:
    state = request.app.state
    return {"models": [model.describe() for model in state.models.values()]}


async def _read_parts(request: Request, limit: int) -> list[bytes]:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(422, "Send the images as multipart/form-data, one file part named "
                            "'images' per image.", "bad_request")
    try:
        form = await request.form(max_files=limit + 1, max_fields=limit + 16)
    except MultiPartException as exc:
        too_many = "Too many" in str(exc)
        raise ApiError(413 if too_many else 422,
                       f"At most {limit} images per request." if too_many
                       else f"The multipart body could not be read: {exc}",
                       "too_many_images" if too_many else "bad_request") from None
    try:
        parts = form.getlist("images")
        if not parts:
            raise ApiError(422, "No images: send one file part named 'images' per image.",
                           "bad_request")
        if len(parts) > limit:
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


@router.post("/embed/{model}", response_model=EmbedResponse, responses=ERRORS,
             openapi_extra=MULTIPART_BODY, summary="Embed many images, in order")
async def embed_batch(request: Request, model: ServedModel = Depends(served_model)
                      ) -> JSONResponse:
    """Embed every ``images`` part with ``model``; per-image errors, request order kept."""
    state = request.app.state

    async def work() -> JSONResponse:
        parts = await _read_parts(request, state.settings.max_images_per_request)
        decoded = await asyncio.gather(*(decode(state, data, model) for data in parts))
        good = [i for i, image in enumerate(decoded) if not isinstance(image, ImageFailure)]
        vectors = await embed_images(state, model, [decoded[i] for i in good])
        finite = finite_rows(vectors)
        results: list[dict] = [{}] * len(decoded)
        for i, image in enumerate(decoded):
            if isinstance(image, ImageFailure):
                state.metrics.error(image.kind)
                results[i] = {"error": image.reason}
        for row, i in enumerate(good):
            results[i] = ({"embedding": vectors[row].tolist()} if finite[row] else
                          {"error": "the network produced non-finite values"})
        return JSONResponse({"model": model.name, "dim": model.dim,
                             "weights_id": model.weights_id, "input_size": model.input_size,
                             "results": results})

    return await with_timeout(state, work())
