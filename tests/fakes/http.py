"""A scripted platform for adapter tests, behind ``httpx.MockTransport``.

Each test gives the fake a handler per (method, path) that answers like the real platform
(its JSON shapes, headers and status codes); the fake records every request it received and
can make the next request fail the way a network does::

    fake = FakePlatform({("POST", "/2/tweets"): created})
    fake.drop_next()          # the request arrives, then the connection drops unanswered
    adapter = X(settings, fake.client())

A request body is recorded as JSON when it is JSON, else as its raw bytes (a picture PUT to an
upload URL, a multipart form: read its fields with :func:`form_fields`).

A dropped connection is raised the way Herald's production transport (httpx-aiohttp) raises
it, as ``httpx.ConnectTimeout`` caused by aiohttp's ``ServerDisconnectedError`` (see
``herald_common.http.request_never_sent``); a refused connection as ``ConnectTimeout`` caused
by ``ClientConnectorError``. tests/common/test_mastodon.py shows both over real sockets.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import aiohttp
import httpx

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    # JSON bodies parsed, multipart forms as a Form, anything else (an upload) as bytes.
    body: Any
    host: str = ""


@dataclass
class FakePlatform:
    handlers: Mapping[tuple[str, str], Handler]
    requests: list[Received] = field(default_factory=list)
    _faults: deque[str] = field(default_factory=deque)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def drop_next(self) -> None:
        """The next request reaches the platform (and is handled), but no answer comes."""
        self._faults.append("drop")

    def refuse_next(self) -> None:
        """The next request never reaches the platform: the connection is refused."""
        self._faults.append("refuse")

    def received(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def _handle(self, request: httpx.Request) -> httpx.Response:
        fault = self._faults.popleft() if self._faults else None
        if fault == "refuse":
            raise httpx.ConnectTimeout("refused") from _connector_error()
        self.requests.append(
            Received(
                request.method,
                request.url.path,
                dict(request.url.params),
                dict(request.headers),
                _body(request),
                request.url.host,
            )
        )
        handler = self.handlers.get((request.method, request.url.path))
        response = handler(request) if handler else httpx.Response(404, json={"error": "nope"})
        if fault == "drop":
            raise httpx.ConnectTimeout("dropped") from aiohttp.ServerDisconnectedError()
        return response


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Form:
    """A multipart/form-data body: its plain fields and its file parts, by part name."""

    fields: dict[str, str]
    files: dict[str, FilePart]


def parse_form(request: httpx.Request) -> Form:
    """The parts of a multipart/form-data request, read the way a server reads them (RFC 7578),
    so a test sees what the platform would: names, filenames, types and the bytes."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.read())
    assert isinstance(message, EmailMessage) and message.is_multipart(), "not a multipart body"
    fields: dict[str, str] = {}
    files: dict[str, FilePart] = {}
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str), "a form part without a name"
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode()
        else:
            files[name] = FilePart(filename, part.get_content_type(), data)
    return Form(fields, files)


def _body(request: httpx.Request) -> Any:
    content = request.content
    if not content:
        return None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return parse_form(request)
    if content_type.startswith("application/json"):
        return json.loads(content)
    return content


def form_fields(received: Received) -> dict[str, bytes]:
    """Every part of a ``multipart/form-data`` request by name, fields and files alike, as
    bytes."""
    form = received.body
    assert isinstance(form, Form), "not a multipart body"
    return {
        **{name: value.encode() for name, value in form.fields.items()},
        **{name: part.data for name, part in form.files.items()},
    }


def _connector_error() -> aiohttp.ClientConnectorError:
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("platform.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))


def answer(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> Handler:
    """A handler that always answers ``status`` with ``body`` as JSON."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return handle


def sequence(*handlers: Handler) -> Handler:
    """A handler answering with each of ``handlers`` in turn, then repeating the last."""
    queue = deque(handlers)

    def handle(request: httpx.Request) -> httpx.Response:
        current = queue.popleft() if len(queue) > 1 else queue[0]
        return current(request)

    return handle
