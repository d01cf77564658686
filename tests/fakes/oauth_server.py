"""A real OAuth 2.0 authorization server for tests, built from Authlib's server classes.

Authorization code (RFC 6749) with PKCE required (RFC 7636, S256 and plain checked by Authlib),
the refresh grant with rotation (every refresh revokes the refresh token it used, as X does),
and revocation (RFC 7009). It also answers the profile routes Herald reads after connecting
(X ``GET /2/users/me``, LinkedIn ``GET /v2/userinfo``) for its valid access tokens. A small
Starlette app served by uvicorn on a free 127.0.0.1 port in a thread, like FakeMastodon::

    with FakeOAuthServer(client_id="herald", client_secret="s3cret") as server:
        settings = base.model_copy(update=server.settings_for("x"))
        location = server.authorize(authorization_url)   # the person clicks "Allow"

Authlib insists on https; the server runs with ``AUTHLIB_INSECURE_TRANSPORT`` for 127.0.0.1.
What tests read: ``token_requests`` (every POST /token with its grant type and answer status).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    OAuth2Error,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald_common import clock
from tests.fakes.server import ThreadedServer

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on 127.0.0.1 only


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scope: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in {"authorization_code", "refresh_token"}


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    client_id: str
    user: str
    access_token: str
    refresh_token: str | None
    scope: str
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return clock.now().timestamp() > self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user

    def get_client(self) -> Any:
        return None


@dataclass(frozen=True)
class TokenRequest:
    grant_type: str
    status: int


@dataclass
class _State:
    clients: dict[str, Client] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, method: str, url: str, headers: Any, data: dict[str, str]) -> None:
        super().__init__(method, url, headers=headers)
        self.payload = BasicOAuth2Payload(data)
        self._data = data

    @property
    def args(self) -> dict[str, str]:
        return self._data

    @property
    def form(self) -> dict[str, str]:
        return self._data


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, state: _State, expires_in: int) -> None:
        super().__init__()
        self.state = state
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda *a, **k: generate_token(42),
                lambda *a, **k: generate_token(48),
                lambda client, grant_type: expires_in,
            ),
        )

    def query_client(self, client_id: str) -> Client | None:
        return self.state.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.state.tokens.append(
            Token(
                client_id=request.client.client_id,
                user=request.user,
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                scope=token.get("scope", ""),
                issued_at=clock.now().timestamp(),
                expires_in=int(token["expires_in"]),
            )
        )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=dict(headers))
        return Response(body or b"", status_code=status, headers=dict(headers))


def _code_grant(state: _State) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
            payload = request.payload.data
            state.codes[code] = Code(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=payload.get("redirect_uri", ""),
                scope=request.scope or "",
                user=request.user,
                code_challenge=payload.get("code_challenge"),
                code_challenge_method=payload.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = state.codes.get(code)
            return found if found and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> str:
            return authorization_code.user

    return CodeGrant


def _refresh_grant(state: _State) -> type[grants.RefreshTokenGrant]:
    class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            for token in state.tokens:
                if token.refresh_token == refresh_token and not token.revoked:
                    return token
            return None

        def authenticate_user(self, refresh_token: Token) -> str:
            return refresh_token.user

        def revoke_old_credential(self, refresh_token: Token) -> None:
            refresh_token.revoked = True

    return RefreshGrant


def _revocation(state: _State) -> type[RevocationEndpoint]:
    class Revocation(RevocationEndpoint):  # type: ignore[misc]
        CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            for token in state.tokens:
                if token_string in (token.access_token, token.refresh_token):
                    return token
            return None

        def revoke_token(self, token: Token, request: OAuth2Request) -> None:
            token.revoked = True

    return Revocation


class FakeOAuthServer:
    def __init__(
        self,
        client_id: str = "herald-client",
        client_secret: str = "herald-secret",  # noqa: S107
        *,
        expires_in: int = 3600,
        user: str = "12345",
        username: str = "herald_dev",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.user = user
        self.username = username
        self._state = _State()
        self._server = _Server(self._state, expires_in)
        self._server.register_grant(_code_grant(self._state), [CodeChallenge(required=True)])
        self._server.register_grant(_refresh_grant(self._state))
        self._server.register_endpoint(_revocation(self._state))
        self.app = Starlette(
            routes=[
                Route("/authorize", self._authorize, methods=["GET"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/revoke", self._revoke, methods=["POST"]),
                Route("/2/users/me", self._x_me, methods=["GET"]),
                Route("/v2/userinfo", self._linkedin_userinfo, methods=["GET"]),
            ]
        )
        self._port: int | None = None
        self._http = ThreadedServer(self.app, "fake-oauth")

    # -- what tests use -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the OAuth server is not running; call start() first")
        return f"http://127.0.0.1:{self._port}"

    def register(self, redirect_uri: str, scope: str) -> None:
        self._state.clients[self.client_id] = Client(
            self.client_id, self.client_secret, [redirect_uri], scope
        )

    def settings_for(self, platform: str) -> dict[str, Any]:
        """Settings pointing Herald's ``platform`` client and API at this server."""
        from pydantic import SecretStr

        return {
            f"{platform}_client_id": self.client_id,
            f"{platform}_client_secret": SecretStr(self.client_secret),
            f"{platform}_authorize_url": f"{self.base_url}/authorize",
            f"{platform}_token_url": f"{self.base_url}/token",
            f"{platform}_api_base": self.base_url,
            **({"x_revoke_url": f"{self.base_url}/revoke"} if platform == "x" else {}),
        }

    async def authorize(self, authorization_url: str) -> dict[str, str]:
        """The person approves: the query the platform redirects back with (code, state)."""
        async with httpx.AsyncClient() as http:
            response = await http.get(authorization_url)
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        return {k: v[0] for k, v in query.items()}

    @property
    def token_requests(self) -> list[TokenRequest]:
        return list(self._state.token_requests)

    def refresh_token_revoked(self, refresh_token: str) -> bool:
        return any(t.refresh_token == refresh_token and t.revoked for t in self._state.tokens)

    def revoke_all(self) -> None:
        for token in self._state.tokens:
            token.revoked = True

    # -- routes --------------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        oauth_request = _Request("GET", str(request.url), request.headers, query)
        try:
            grant = self._server.get_consent_grant(oauth_request, end_user=self.user)
        except OAuth2Error as error:
            return JSONResponse(dict(error.get_body()), status_code=error.status_code)
        response: Response = self._server.create_authorization_response(
            oauth_request, grant_user=self.user, grant=grant
        )
        return response

    async def _form_request(self, request: Request) -> _Request:
        data = dict(parse_qsl((await request.body()).decode()))
        return _Request("POST", str(request.url), request.headers, data)

    async def _token(self, request: Request) -> Response:
        oauth_request = await self._form_request(request)
        response: Response = self._server.create_token_response(oauth_request)
        grant_type = oauth_request.form.get("grant_type", "")
        self._state.token_requests.append(TokenRequest(grant_type, response.status_code))
        return response

    async def _revoke(self, request: Request) -> Response:
        oauth_request = await self._form_request(request)
        response: Response = self._server.create_endpoint_response(
            RevocationEndpoint.ENDPOINT_NAME, oauth_request
        )
        return response

    def _bearer(self, request: Request) -> Token | None:
        header = request.headers.get("authorization", "")
        value = header.removeprefix("Bearer ")
        for token in self._state.tokens:
            if token.access_token == value and not token.revoked and not token.is_expired():
                return token
        return None

    async def _x_me(self, request: Request) -> Response:
        if self._bearer(request) is None:
            return JSONResponse({"title": "Unauthorized", "status": 401}, status_code=401)
        return JSONResponse(
            {"data": {"id": self.user, "username": self.username, "name": "Herald Dev"}}
        )

    async def _linkedin_userinfo(self, request: Request) -> Response:
        if self._bearer(request) is None:
            return JSONResponse({"message": "Invalid access token"}, status_code=401)
        return JSONResponse({"sub": self.user, "name": "Herald Dev", "email": "dev@herald.test"})

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> FakeOAuthServer:
        self._port = self._http.start(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._http.stop(timeout)
        self._port = None

    def __enter__(self) -> FakeOAuthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
