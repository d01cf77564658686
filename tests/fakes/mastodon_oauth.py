"""The OAuth side of the fake Mastodon: application registration, authorization, tokens and
revocation, as Mastodon (Doorkeeper, configured in config/initializers/doorkeeper.rb) answers.

- ``POST /api/v1/apps`` (form or JSON): ``client_name`` and ``redirect_uris`` required (422
  ``{"error": "Validation failed: ..."}`` otherwise), ``scopes`` default ``read`` and must be
  known scopes; answers a CredentialApplication (``client_id``, ``client_secret``, ...).
- ``GET /oauth/authorize``: the person's consent. Mastodon shows a form to a signed-in user;
  here the user is named by the ``X-Fake-User`` header (see :meth:`MastodonOAuth.authorize`)
  and consent is immediate: 302 to ``redirect_uri?code=...&state=...``. An unknown client or
  a redirect URI the application did not register is 400 (Mastodon renders an error page and
  does not redirect); scopes beyond the application's redirect with ``error=invalid_scope``;
  a PKCE method other than S256 with ``error=invalid_request`` (Mastodon 4.3 allows S256 only).
- ``POST /oauth/token`` (``authorization_code``): client authentication from HTTP Basic or the
  body, else 401 ``invalid_client``; an unknown, used or expired code, another client's code,
  another redirect URI, or a ``code_verifier`` whose S256 hash is not the code's challenge:
  400 ``invalid_grant``. A missing verifier for a code with a challenge: 400
  ``invalid_request``. Tokens never expire and come without a refresh token; a live token of
  the same user, application and scopes is answered again (``reuse_access_token``).
- ``POST /oauth/revoke``: 200 ``{}`` for a token the client owns (revoked from then on: API
  calls get 401 ``{"error": "The access token was revoked"}``) and for an unknown token;
  403 ``unauthorized_client`` for another application's token or a failed client check.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from tests.fakes.mastodon import FakeMastodon

# Doorkeeper's default authorization_code_expires_in.
CODE_LIFETIME = timedelta(minutes=10)
# config/initializers/doorkeeper.rb: default_scopes + optional_scopes (the ones Herald may use).
KNOWN_SCOPES = frozenset(
    {
        "read",
        "write",
        "follow",
        "push",
        "profile",
        "read:accounts",
        "read:statuses",
        "write:statuses",
        "write:media",
    }
)
INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client."
)
INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method."
)


@dataclass(frozen=True, slots=True)
class FakeApp:
    id: str
    name: str
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    website: str | None


@dataclass
class _Grant:
    client_id: str
    username: str
    redirect_uri: str
    scopes: tuple[str, ...]
    challenge: str | None
    created_at: datetime
    used: bool = False


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    client_id: str
    username: str
    scopes: tuple[str, ...]


@dataclass
class _OAuthState:
    apps: list[FakeApp] = field(default_factory=list)
    grants: dict[str, _Grant] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)


# config/initializers/rack_attack.rb, throttle_unauthenticated_api: 300 per 5 minutes per IP.
UNAUTHENTICATED_API_LIMIT = 300


class MastodonOAuth:
    """Part of a :class:`FakeMastodon`; reach it as ``fake.oauth``."""

    def __init__(self, fake: FakeMastodon) -> None:
        self._fake = fake
        self._state = _OAuthState()
        # Seconds POST /api/v1/apps takes to answer (to overlap concurrent registrations).
        self.registration_delay = 0.0
        # False: POST /api/v1/apps answers 403, as a server that forbids new applications.
        self.registrations_open = True
        # Set: POST /api/v1/apps answers rack_attack's 429 (throttle_unauthenticated_api), its
        # reset this long from now.
        self.registrations_throttled_for: timedelta | None = None

    # -- what tests read and do ------------------------------------------------------------

    @property
    def apps(self) -> list[FakeApp]:
        with self._fake._lock:
            return list(self._state.apps)

    @property
    def tokens(self) -> list[IssuedToken]:
        with self._fake._lock:
            return list(self._state.tokens.values())

    def is_revoked(self, token: str) -> bool:
        with self._fake._lock:
            return token in self._state.revoked

    async def authorize(self, authorization_url: str, username: str) -> dict[str, str]:
        """``username`` (signed in at the instance) approves: the query parameters of the
        redirect back to Herald (``code`` and ``state``, or ``error``)."""
        async with httpx.AsyncClient() as http:
            response = await http.get(authorization_url, headers={"X-Fake-User": username})
        if response.status_code != 302:
            raise AssertionError(f"authorize answered {response.status_code}: {response.text}")
        return dict(parse_qsl(urlsplit(response.headers["location"]).query))

    # -- HTTP ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/apps", self._create_app, methods=["POST"]),
            Route("/oauth/authorize", self._authorize, methods=["GET"]),
            Route("/oauth/token", self._token, methods=["POST"]),
            Route("/oauth/revoke", self._revoke, methods=["POST"]),
        ]

    def revoked_token(self, token: str | None) -> bool:
        return token is not None and self.is_revoked(token)

    async def _create_app(self, request: Request) -> Response:
        params = await _params(request)
        if self.registration_delay:
            await asyncio.sleep(self.registration_delay)
        if not self.registrations_open:
            return self._answer(request, _error(403, "This action is not allowed"))
        if self.registrations_throttled_for is not None:
            from tests.fakes.mastodon import too_many_requests  # that module imports this one

            reset = self._fake._clock() + self.registrations_throttled_for
            return self._answer(request, too_many_requests(UNAUTHENTICATED_API_LIMIT, reset))
        name = str(params.get("client_name") or "")
        redirects = params.get("redirect_uris") or ""
        uris = tuple(redirects) if isinstance(redirects, list) else tuple(str(redirects).split())
        scopes = tuple(str(params.get("scopes") or "read").split())
        if not name:
            return self._answer(request, _error(422, "Validation failed: Name can't be blank"))
        if not uris or not all(urlsplit(u).scheme and urlsplit(u).netloc for u in uris):
            return self._answer(
                request, _error(422, "Validation failed: Redirect URI must be an absolute URI.")
            )
        if not set(scopes) <= KNOWN_SCOPES:
            return self._answer(request, _error(422, "Validation failed: Scopes are invalid"))
        with self._fake._lock:
            app = FakeApp(
                id=str(563419 + len(self._state.apps)),
                name=name,
                client_id=secrets.token_urlsafe(32),
                client_secret=secrets.token_urlsafe(32),
                redirect_uris=uris,
                scopes=scopes,
                website=str(params["website"]) if params.get("website") else None,
            )
            self._state.apps.append(app)
        body = {
            "id": app.id,
            "name": app.name,
            "website": app.website,
            "scopes": list(app.scopes),
            "redirect_uri": "\n".join(app.redirect_uris),
            "redirect_uris": list(app.redirect_uris),
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "client_secret_expires_at": 0,
        }
        return self._answer(request, JSONResponse(body))

    async def _authorize(self, request: Request) -> Response:
        query = request.query_params
        app = self._app(query.get("client_id"))
        redirect = query.get("redirect_uri", "")
        if app is None:
            return self._answer(request, _oauth_error(401, "invalid_client", INVALID_CLIENT))
        if redirect not in app.redirect_uris:
            return self._answer(
                request,
                _oauth_error(400, "invalid_redirect_uri", "The redirect URI is not valid."),
            )
        username = request.headers.get("X-Fake-User")
        if not username:
            return self._answer(request, Response("sign in first", status_code=401))
        state = query.get("state")
        scopes = tuple((query.get("scope") or "read").split())
        if query.get("response_type") != "code":
            return self._redirect(request, redirect, state, error="unsupported_response_type")
        if not set(scopes) <= set(app.scopes):
            return self._redirect(request, redirect, state, error="invalid_scope")
        challenge = query.get("code_challenge")
        if challenge and query.get("code_challenge_method") != "S256":
            return self._redirect(request, redirect, state, error="invalid_request")
        code = secrets.token_urlsafe(32)
        with self._fake._lock:
            self._state.grants[code] = _Grant(
                app.client_id, username, redirect, scopes, challenge, self._fake._clock()
            )
        return self._redirect(request, redirect, state, code=code)

    async def _token(self, request: Request) -> Response:
        params = await _params(request)
        app = self._client(request, params)
        if app is None:
            return self._answer(request, _oauth_error(401, "invalid_client", INVALID_CLIENT))
        if params.get("grant_type") != "authorization_code":
            return self._answer(
                request,
                _oauth_error(
                    400,
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.",
                ),
            )
        with self._fake._lock:
            grant = self._state.grants.get(str(params.get("code") or ""))
            error = self._grant_error_locked(grant, app, params)
            if error is None:
                assert grant is not None
                grant.used = True
                issued = self._issue_locked(app.client_id, grant.username, grant.scopes)
        if error is not None:
            return self._answer(request, error)
        self._fake.add_account(issued.token, issued.username)
        body = {
            "access_token": issued.token,
            "token_type": "Bearer",
            "scope": " ".join(issued.scopes),
            "created_at": int(self._fake._clock().timestamp()),
        }
        return self._answer(request, JSONResponse(body))

    def _grant_error_locked(
        self, grant: _Grant | None, app: FakeApp, params: dict[str, Any]
    ) -> Response | None:
        verifier = params.get("code_verifier")
        if grant is not None and grant.challenge and not verifier:
            return _oauth_error(
                400, "invalid_request", "Missing required parameter: code_verifier."
            )
        if (
            grant is None
            or grant.used
            or self._fake._clock() - grant.created_at > CODE_LIFETIME
            or grant.client_id != app.client_id
            or grant.redirect_uri != params.get("redirect_uri")
            or (grant.challenge and _s256(str(verifier)) != grant.challenge)
        ):
            return _oauth_error(400, "invalid_grant", INVALID_GRANT)
        return None

    async def _revoke(self, request: Request) -> Response:
        params = await _params(request)
        app = self._client(request, params)
        token = str(params.get("token") or "")
        refused = _oauth_error(
            403, "unauthorized_client", "You are not authorized to revoke this token"
        )
        with self._fake._lock:
            issued = self._state.tokens.get(token)
            unknown = issued is None and token not in self._fake._state.accounts_by_token
            answer: Response = JSONResponse({})
            if app is None or (
                not unknown and (issued is None or issued.client_id != app.client_id)
            ):
                answer = refused
            elif issued is not None:
                self._state.revoked.add(token)
                del self._state.tokens[token]
                self._fake._state.accounts_by_token.pop(token, None)
        return self._answer(request, answer)

    # -- helpers ---------------------------------------------------------------------------

    def _issue_locked(self, client_id: str, username: str, scopes: tuple[str, ...]) -> IssuedToken:
        for issued in self._state.tokens.values():
            if (issued.client_id, issued.username, issued.scopes) == (client_id, username, scopes):
                return issued  # Doorkeeper's reuse_access_token
        issued = IssuedToken(secrets.token_urlsafe(32), client_id, username, scopes)
        self._state.tokens[issued.token] = issued
        return issued

    def _app(self, client_id: str | None) -> FakeApp | None:
        with self._fake._lock:
            return next((a for a in self._state.apps if a.client_id == client_id), None)

    def _client(self, request: Request, params: dict[str, Any]) -> FakeApp | None:
        """Doorkeeper's client_credentials :from_basic, :from_params."""
        client_id, secret = params.get("client_id"), params.get("client_secret")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(encoded).decode()
            except ValueError:
                return None
            user, _, password = pair.partition(":")
            client_id, secret = unquote(user), unquote(password)
        app = self._app(str(client_id) if client_id else None)
        if app is None or not secrets.compare_digest(app.client_secret, str(secret or "")):
            return None
        return app

    def _redirect(
        self, request: Request, redirect: str, state: str | None, **params: str
    ) -> Response:
        query = {**params, **({"state": state} if state else {})}
        separator = "&" if urlsplit(redirect).query else "?"
        return self._answer(
            request, RedirectResponse(redirect + separator + urlencode(query), status_code=302)
        )

    def _answer(self, request: Request, response: Response) -> Response:
        self._fake._record(request, None, None, response.status_code)
        return response


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def _params(request: Request) -> dict[str, Any]:
    """Form (urlencoded) or JSON parameters, as Rails reads either."""
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    params: dict[str, Any] = {}
    for key, value in pairs:
        if key.endswith("[]"):
            params.setdefault(key[:-2], []).append(value)
        else:
            params[key] = value
    return params
