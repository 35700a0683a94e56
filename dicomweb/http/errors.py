"""Errors as responses: every failure is a status and a message naming the problem.

Handlers raise :class:`HTTPError` (Starlette's ``HTTPException``); the app turns every
HTTP exception, Starlette's own 404 and 405 included, into ``application/json``
``{"status": 400, "message": "..."}``. The body is JSON rather than DICOM JSON because
it describes the request, not a dataset (STOW failures per instance are DICOM JSON).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class HTTPError(HTTPException):
    """An HTTP exception whose message names the problem (``status``/``message`` read better
    at the call sites than Starlette's ``status_code``/``detail``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)

    @property
    def status(self) -> int:
        return self.status_code

    @property
    def message(self) -> str:
        return self.detail


def bad_request(message: str) -> HTTPError:
    return HTTPError(400, message)


def not_found(message: str) -> HTTPError:
    return HTTPError(404, message)


def not_acceptable(message: str) -> HTTPError:
    return HTTPError(406, message)


def unsupported_media_type(message: str) -> HTTPError:
    return HTTPError(415, message)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"status": exc.status_code, "message": exc.detail}, exc.status_code, headers=exc.headers)


async def handle_missing_blob(request: Request, exc: Exception) -> Response:
    """A stored file that vanished behind the server's back, met by a route that had no
    better answer: 404 rather than 500 (``dicomweb verify --repair`` removes its record)."""
    return JSONResponse({"status": 404, "message": "a stored file of this resource is gone (removed outside "
                                                   "the server)"}, 404)
