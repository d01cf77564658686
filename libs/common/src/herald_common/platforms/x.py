"""X (formerly Twitter): content rules, pictures, ``POST /2/tweets``, threads by reply, and
finding a post.

The account's access token is an OAuth 2.0 user-context token (authorization code with PKCE,
scopes ``tweet.read tweet.write users.read offline.access media.write``); its ``external_id``
is the X user id, needed to read the account's own timeline.

Pictures are uploaded one request each (``POST /2/media/upload``, multipart, ``media_category
tweet_image``), given their alt text (``POST /2/media/metadata``) and attached to the first
post of a thread by id. That one-shot upload takes JPEG, PNG and WEBP but not GIF (its
``media_type`` enum has no ``image/gif``, docs.x.com/x-api/media/upload-media); GIFs need the
chunked INIT/APPEND/FINALIZE upload with ``tweet_gif`` and polling until X has processed them,
which Herald does not do yet, so :meth:`X.validate` refuses them.

Idempotency: X has none. ``POST /2/tweets`` takes no idempotency key, so a request whose
answer was lost can only be recognised afterwards by reading the account's recent posts and
comparing texts (:meth:`X.find_published`). X itself refuses to post the same text twice in a
row (403 "You are not allowed to create a Tweet with duplicate content."); Herald treats that
answer as a sign that an earlier attempt may have landed and asks the timeline, never posting
blindly again.
"""

from __future__ import annotations

import html
import unicodedata
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx

from herald_common import clock
from herald_common.http import (
    TRANSPORT_ERRORS,
    json_object,
    retry_after_seconds,
    transport_failure,
)
from herald_common.platforms.base import (
    ContentProblem,
    Media,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
    media_problems,
)
from herald_common.platforms.errors import (
    AuthExpired,
    CannotTell,
    OutcomeUnknown,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.platforms.twitter_text import (
    X_MAX_WEIGHTED_LENGTH,
    X_URL_LENGTH,
    x_extract_urls,
    x_noncharacters,
    x_publishable_text,
    x_weighted_length,
)

TWEETS_PATH = "/2/tweets"
MEDIA_UPLOAD_PATH = "/2/media/upload"
MEDIA_METADATA_PATH = "/2/media/metadata"
# POST /2/tweets: media.media_ids holds 1 to 4 ids (docs.x.com/x-api/posts/creation-of-a-post).
MAX_MEDIA = 4
# What the one-shot upload takes for a post (see the module docstring for GIF).
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
# "Image size <= 5 MB" (docs.x.com/x-api/media/quickstart/best-practices); X does not say
# whether it means 10^6 or 2^20 bytes, this takes the larger reading.
MAX_MEDIA_BYTES = 5 * 1024 * 1024
# Alt text: 1,000 characters (the v1.1 media/metadata/create reference; the v2
# POST /2/media/metadata reference states no limit of its own).
MAX_ALT_TEXT = 1000
# GET /2/users/:id/tweets returns at most 100 posts per page (max_results 5..100).
TIMELINE_PAGE_SIZE = 100
# The timeline is searched from a little before the first attempt, for clock differences.
TIMELINE_MARGIN = timedelta(minutes=5)
# X's 15-minute windows; used when a 429 names no reset we can read.
DEFAULT_RETRY_AFTER_SECONDS = 15 * 60.0
MIN_RETRY_AFTER_SECONDS = 1.0
# The rate-limit header families X sends (docs.x.com/x-api/fundamentals/rate-limits): the
# endpoint's window, and the 24-hour user and app caps on posting.
_LIMIT_HEADERS = ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour")
_DUPLICATE = "duplicate content"


class X(Platform):
    name = "x"
    threads = True
    # The account's timeline can be read at any time (find_published only reads).
    reconcilable = True
    # An uploaded picture's id can be attached for ``expires_after_secs`` after the upload,
    # 86,400 s for images (docs.x.com/x-api/media/upload-media, media upload response); half
    # of it leaves room for a retry that reuses an id near the end of its life.
    media_reference_ttl = timedelta(hours=12)
    limits = (
        # docs.x.com/x-api/fundamentals/rate-limits, "Manage Posts": POST /2/tweets allows
        # 100 requests per 15 minutes per user ...
        RateLimit("posts", capacity=100, per_seconds=15 * 60, scope="account"),
        # ... and 10,000 per 24 hours per app. (One bucket token per target: each further
        # post of a thread spends one more request of X's own quota.)
        RateLimit("posts_app", capacity=10_000, per_seconds=24 * 3600, scope="app"),
    )

    def validate(self, content: PostContent) -> list[ContentProblem]:
        """X's rules for ``content`` as :meth:`publish` sends it (without U+FEFF)."""
        problems = []
        parts = [(field, x_publishable_text(text)) for field, text in _parts(content)]
        if not parts[0][1].strip() and not content.media:
            problems.append(ContentProblem("content", "X needs some text or a picture."))
        for field, text in parts:
            problems += [
                ContentProblem(
                    field,
                    f"X refuses posts holding {name}, an invisible character no text should "
                    f"hold (character {position}); remove it.",
                )
                for name, position in x_noncharacters(text)
            ]
            length = x_weighted_length(text)
            if length > X_MAX_WEIGHTED_LENGTH:
                problems.append(
                    ContentProblem(
                        field,
                        f"X allows {X_MAX_WEIGHTED_LENGTH} characters (every link counts as "
                        f"{X_URL_LENGTH}; emoji, CJK and most symbols count as 2); this post "
                        f"counts {length}.",
                    )
                )
            elif field != "content" and not text.strip():
                problems.append(ContentProblem(field, "A post of an X thread cannot be empty."))
        problems += media_problems(
            "X",
            content.media,
            max_count=MAX_MEDIA,
            max_bytes=MAX_MEDIA_BYTES,
            types=MEDIA_TYPES,
            max_alt_text=MAX_ALT_TEXT,
        )
        if content.content_warning:
            problems.append(
                ContentProblem("content_warning", "X has no content warnings; remove it.")
            )
        if content.visibility:
            problems.append(
                ContentProblem("visibility", "X posts are always public; remove the visibility.")
            )
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        """Upload the pictures, then post the text with them (and each further part of a
        thread, as a reply to the one before).

        A failure after some parts of a thread went out cannot be retried without posting
        those parts twice, so it is reported as OutcomeUnknown naming what was posted; the
        publisher then asks :meth:`find_published`.
        """
        token = _token(request)
        media_ids = await self.upload_all(request, partial(self._upload, token))
        texts = [
            x_publishable_text(text) for text in (request.content.text, *request.content.thread)
        ]
        posted: list[str] = []
        for index, text in enumerate(texts):
            body: dict[str, Any] = {"text": text}
            if index == 0 and media_ids:
                body["media"] = {"media_ids": media_ids}
            if posted:
                body["reply"] = {"in_reply_to_tweet_id": posted[-1]}
            try:
                posted.append(await self._create_post(token, body))
            except PublishError as exc:
                if not posted:
                    raise
                raise OutcomeUnknown(
                    f"X published {len(posted)} of {len(texts)} posts of the thread "
                    f"({', '.join(posted)}), then: {exc.message}",
                    http_status=exc.http_status,
                ) from exc
        return Published(remote_id=posted[0], remote_url=_post_url(request, posted[0]))

    async def find_published(self, request: PublishRequest) -> Published | None:
        """Look for the post among the account's recent posts, by its text.

        X keeps no idempotency key, so this reads ``GET /2/users/:id/tweets`` (newest first,
        retweets excluded, from a little before the first attempt) and compares texts the way
        X returns them: links replaced by t.co links, ``&``, ``<`` and ``>`` HTML-escaped, a
        link to the attached media appended. Every part of a thread must be found; some
        parts alone raise CannotTell (a person has to finish or delete the thread).
        """
        token = _token(request)
        user_id = request.account.external_id
        if not user_id:
            raise CannotTell("X: the account has no user id, so its posts cannot be listed")
        since = request.first_attempt_at
        params: dict[str, str | int] = {
            "max_results": TIMELINE_PAGE_SIZE,
            "exclude": "retweets",
            "tweet.fields": "created_at",
        }
        if since is not None:
            params["start_time"] = _rfc3339(since - TIMELINE_MARGIN)
        try:
            response = await self.http.get(
                f"{self._api_base()}/2/users/{user_id}/tweets",
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"X: the timeline could not be read: {exc!r}") from exc
        _raise_for_error(response, "read the account's posts")
        posts = json_object(response).get("data") or []
        # Oldest first, so a thread's parts are matched in the order they were posted.
        found: list[str] = []
        has_media = bool(request.content.media)
        for part in [request.content.text, *request.content.thread]:
            wanted = _comparable(x_publishable_text(part))
            match = next(
                (
                    str(post["id"])
                    for post in reversed(posts)
                    if isinstance(post, dict)
                    and str(post.get("id")) not in found
                    and _comparable(str(post.get("text", "")), media=has_media and not found)
                    == wanted
                ),
                None,
            )
            if match is None:
                break
            found.append(match)
        if not found:
            return None
        parts = 1 + len(request.content.thread)
        if len(found) < parts:
            raise CannotTell(
                f"X: only {len(found)} of the {parts} posts of the thread are on the account "
                f"({', '.join(found)})"
            )
        return Published(remote_id=found[0], remote_url=_post_url(request, found[0]))

    def _api_base(self) -> str:
        return self.settings.x_api_base.rstrip("/")

    async def _upload(self, token: str, item: Media, data: bytes) -> str:
        """Upload one picture and give it its alt text; X's media id for it."""
        try:
            response = await self._send(
                "upload a picture",
                self._api_base() + MEDIA_UPLOAD_PATH,
                token,
                data={"media_category": "tweet_image", "media_type": item.content_type},
                files={"media": (str(item.id), data, item.content_type)},
            )
        except Rejected as exc:
            if exc.http_status != 403:
                raise
            # Accounts connected before Herald asked for media.write hold tokens X refuses
            # uploads to; only connecting the account again grants the scope.
            raise AuthExpired(
                f"{exc.message}; the account's token may lack the media.write scope, so "
                "reconnect it",
                http_status=exc.http_status,
            ) from exc
        try:
            upload = response.json()["data"]
            media_id = str(upload["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OutcomeUnknown(
                f"X accepted the picture but its answer was unreadable: {exc!r}",
                http_status=response.status_code,
            ) from exc
        processing = upload.get("processing_info")
        if isinstance(processing, dict) and processing.get("state") == "failed":
            raise Rejected(f"X could not process the picture: {processing.get('error')}")
        if item.alt_text:
            await self._send(
                "give a picture its alt text",
                self._api_base() + MEDIA_METADATA_PATH,
                token,
                json={"id": media_id, "metadata": {"alt_text": {"text": item.alt_text}}},
            )
        return media_id

    async def _send(self, action: str, url: str, token: str, **body: Any) -> httpx.Response:
        """POST ``body`` (httpx's ``json``/``data``/``files``) to ``url``, mapping failures."""
        try:
            response = await self.http.post(
                url, headers={"Authorization": f"Bearer {token}"}, **body
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, "X", f"the request to {action}") from exc
        _raise_for_error(response, action)
        return response

    async def _create_post(self, token: str, body: dict[str, Any]) -> str:
        response = await self._send(
            "create the post", self._api_base() + TWEETS_PATH, token, json=body
        )
        try:
            return str(response.json()["data"]["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OutcomeUnknown(
                f"X accepted the post but its answer was unreadable: {exc!r}",
                http_status=response.status_code,
            ) from exc


def _parts(content: PostContent) -> list[tuple[str, str]]:
    return [("content", content.text)] + [
        (f"thread[{index}]", text) for index, text in enumerate(content.thread)
    ]


def _token(request: PublishRequest) -> str:
    token = request.account.access_token
    if not token:
        raise AuthExpired("X: the account has no access token; reconnect it")
    return token


def _post_url(request: PublishRequest, post_id: str) -> str:
    handle = request.account.handle.lstrip("@")
    return f"https://x.com/{handle or 'i/web'}/status/{post_id}"


def _raise_for_error(response: httpx.Response, action: str = "create the post") -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    message = _error_message(response)
    if status == 401:
        raise AuthExpired(f"X refused the account's token: {message}", http_status=status)
    if status == 429:
        raise RateLimited(
            f"X rate limit: {message}", retry_after=_retry_after(response), http_status=status
        )
    if status == 403 and _DUPLICATE in message.lower():
        raise OutcomeUnknown(
            f"X refused the post as a duplicate of a recent one ({message}); an earlier "
            "attempt may have published it",
            http_status=status,
        )
    if status == 504:
        # A gateway timeout: X's backend may have created the post after the gateway gave up.
        raise OutcomeUnknown(f"X answered {status}: {message}", http_status=status)
    if status >= 500 or status == 408:
        raise Transient(
            f"X answered {status}: {message}",
            http_status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), clock.now()),
        )
    # 400 (invalid request), 403 (not permitted: suspended, protected, reply not allowed, no
    # media.write scope), ...
    raise Rejected(f"X refused to {action} ({status}): {message}", http_status=status)


def _error_message(response: httpx.Response) -> str:
    """X's problem JSON (``{"title","detail","type","status"}``), or its older
    ``{"errors": [{"message"}]}``, or what a proxy sent."""
    body = json_object(response)
    detail = body.get("detail") or body.get("title")
    if isinstance(detail, str) and detail:
        return detail
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or errors[0].get("detail") or errors[0])
    return response.text.strip()[:200] or response.reason_phrase or str(response.status_code)


def _retry_after(response: httpx.Response) -> float:
    """Seconds until X lets the account post again.

    X announces each window's reset as epoch seconds (``x-rate-limit-reset`` and the 24-hour
    ``x-user-limit-24hour-reset`` / ``x-app-limit-24hour-reset``). The window that is spent
    (its ``-remaining`` is 0) decides; when none says so, the endpoint's window does.
    """
    now = clock.now().timestamp()
    resets = []
    for family in _LIMIT_HEADERS:
        reset = _number(response.headers.get(f"{family}-reset"))
        remaining = _number(response.headers.get(f"{family}-remaining"))
        if reset is not None and remaining == 0:
            resets.append(reset)
    if not resets:
        fallback = _number(response.headers.get("x-rate-limit-reset"))
        if fallback is None:
            return DEFAULT_RETRY_AFTER_SECONDS
        resets.append(fallback)
    return max(max(resets) - now, MIN_RETRY_AFTER_SECONDS)


def _number(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def _comparable(text: str, *, media: bool = False) -> str:
    """Text as it can be compared with what X returns: unescaped, NFC, links as one token."""
    text = unicodedata.normalize("NFC", html.unescape(text)).strip()
    urls = x_extract_urls(text)
    if media and urls and urls[-1].end == len(text):
        # X appends a link to the attached media to the text it returns.
        text = text[: urls[-1].start].rstrip()
        urls = urls[:-1]
    for url in reversed(urls):
        text = text[: url.start] + "\x00link\x00" + text[url.end :]
    return text


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
