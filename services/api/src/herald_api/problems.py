"""RFC 9457 problem details: the one place errors become HTTP responses."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from herald_common.logging import get_logger

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://herald.dev/problems/"
log = get_logger(__name__)


class FieldProblem(BaseModel):
    """One thing wrong with the request, located by a JSON path into it."""

    field: str = Field(examples=["targets[0].account_id"])
    message: str


class Problem(BaseModel):
    """An error response (RFC 9457 ``application/problem+json``)."""

    type: str = Field(examples=[PROBLEM_TYPE_BASE + "validation-failed"])
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        detail: str | None = None,
        errors: Sequence[FieldProblem] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or slug)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers


def problem_response(
    status: int,
    slug: str,
    detail: str | None = None,
    errors: Sequence[FieldProblem] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPE_BASE + slug,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=list(errors) or None,
    )
    return JSONResponse(
        jsonable_encoder(body, exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _location(loc: Sequence[Any]) -> str:
    """``("body", "targets", 0, "account_id")`` -> ``targets[0].account_id``."""
    path = ""
    for part in loc[1:] if loc and loc[0] in {"body", "query", "path", "header"} else loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or str(loc[0] if loc else "request")


async def _on_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.slug, exc.detail, exc.errors, exc.headers)


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(400, "malformed-json", "The request body is not valid JSON.")
    problems = [
        FieldProblem(field=_location(e.get("loc", ())), message=str(e.get("msg", "invalid")))
        for e in errors
    ]
    return problem_response(422, "validation-failed", "The request has invalid fields.", problems)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return problem_response(exc.status_code, slug, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method the path answers. FastAPI makes one route per method, and Starlette's 405
    names only the first route matching the path (schemathesis found ``Allow: GET`` on
    ``/v1/posts/{post_id}``, which also takes PATCH and DELETE)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


# Postgres cannot store text with a NUL character (22021) or outside the database encoding
# (22P05); pydantic lets both through, so they surface here (schemathesis found NUL in a
# workspace name answered 500).
UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


async def _on_database(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if getattr(exc.orig, "sqlstate", None) in UNSTORABLE_TEXT:
        return problem_response(
            422, "unstorable-text", "Text fields cannot contain NUL characters."
        )
    return await _on_unexpected(request, exc)


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", error_type=type(exc).__name__)
    return problem_response(500, "internal-error", "Something went wrong on our side.")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(DBAPIError, _on_database)
    app.add_exception_handler(Exception, _on_unexpected)


def _problem_doc(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}


# Documented on every route that can answer them, so generated SDKs know the error shape.
COMMON_RESPONSES: Responses = {
    400: _problem_doc("Malformed request (e.g. a body that is not JSON)."),
    401: _problem_doc("Missing, invalid or expired credentials (access token or API key)."),
    413: _problem_doc("The request body is larger than the API accepts."),
    422: _problem_doc("The request is well-formed but has invalid fields."),
}
Responses = dict[int | str, dict[str, Any]]
problem_doc = _problem_doc
# Every route acting in a workspace: the caller's role or key scope may not allow it, and a
# workspace named in X-Workspace-ID that is not the caller's is not found.
WORKSPACE_RESPONSES: Responses = {
    403: _problem_doc("The caller's role or API key scope does not allow this."),
    404: _problem_doc("No such resource (or workspace) among the caller's."),
}
FORBIDDEN: Responses = {403: _problem_doc("Not allowed for this caller.")}
THROTTLED: Responses = {
    429: _problem_doc("Too many attempts; `Retry-After` says how many seconds to wait.")
}
NOT_FOUND: Responses = {404: _problem_doc("No such resource in this workspace.")}
CONFLICT: Responses = {
    409: _problem_doc("The resource is in a state that does not allow this change.")
}
PRECONDITION: Responses = {
    412: _problem_doc("If-Match does not match the current revision."),
    428: _problem_doc("If-Match is required for this change."),
}
