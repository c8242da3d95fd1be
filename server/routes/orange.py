"""Orange's own protocol: ``POST /image/{model}`` with a raw image body.

What orange3-imageanalytics' ServerEmbedder (via ORANGE_EMBEDDING_API_URL) sends:
a JPEG already resized by the client, ``Content-Type: image/jpeg``, and query
parameters machine/session/retry, which are accepted and ignored. The answer is
``{"embedding": [...]}``. The image is resized here anyway, so any size works.

Orange's client cannot send an Authorization header, so a server with tokens also
answers ``POST /t/{token}/image/{model}``: point ORANGE_EMBEDDING_API_URL at
``https://host/t/<token>/``. The server's own request log hides that path.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from ..deps import check_token, lookup_model, require_token, served_model
from ..errors import ApiError, responses_for
from ..guards import admit
from ..decoding import ImageFailure, decode, embed_images, finite_rows, with_timeout
from ..registry import ServedModel
from ..state import ServerState, StateDep

# every route here embeds: each takes a slot of --max-pending-requests (503 when none is free)
router = APIRouter(tags=["Orange protocol"], dependencies=[Depends(admit)])

EMBED_ERRORS = ("unauthorized", "bad_host", "unknown_model", "body_too_large",
                "too_many_pixels", "bad_image", "overloaded", "not_ready", "timeout")
ERRORS = responses_for(*EMBED_ERRORS, "unsupported_format")  # /v1: a per-image error

IMAGE_BODY = {"requestBody": {"required": True, "description": "One image (JPEG, PNG, ...), "
                              "any size; it is resized to the model's input size.",
                              "content": {"image/jpeg": {"schema": {"type": "string",
                                                                    "format": "binary"}}}}}


class Embedding(BaseModel):
    embedding: list[float]


async def _embed_body(request: Request, state: ServerState, model: ServedModel) -> Embedding:
    async def work() -> Embedding:
        body = await request.body()
        if not body:
            raise ApiError(422, "The request body is empty: send the image's bytes "
                                "(Content-Type: image/jpeg).", "bad_image")
        image = await decode(state, body, model)
        if isinstance(image, ImageFailure):
            raise ApiError(image.status, f"Not usable as an image: {image.reason}", image.kind)
        vectors = await embed_images(state, model, [image])
        if not finite_rows(vectors)[0]:
            raise ApiError(422, "The network produced non-finite values for this image.",
                           "bad_image")
        return Embedding(embedding=vectors[0].tolist())

    return await with_timeout(state, work())


@router.post("/image/{model}", response_model=Embedding, responses=ERRORS,
             openapi_extra=IMAGE_BODY, dependencies=[Depends(require_token)],
             summary="Embed one image (Orange's protocol)")
async def embed_image(request: Request, state: StateDep,
                      model: ServedModel = Depends(served_model),
                      machine: "str | None" = Query(None, description="ignored"),
                      session: "str | None" = Query(None, description="ignored"),
                      retry: "str | None" = Query(None, description="ignored")) -> Embedding:
    """Embed the image in the body with ``model``; what Orange's ServerEmbedder calls."""
    return await _embed_body(request, state, model)


@router.post("/t/{token}/image/{model}", response_model=Embedding, include_in_schema=False)
async def embed_image_token_path(request: Request, state: StateDep, token: str,
                                 model: str) -> Embedding:
    """The same, with the access token in the path, for Orange's unmodified client."""
    check_token(state, token)
    return await _embed_body(request, state, lookup_model(state, model))
