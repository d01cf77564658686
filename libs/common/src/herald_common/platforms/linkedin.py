"""LinkedIn: content rules, pictures, ``POST /rest/posts``, and (where LinkedIn allows it)
finding a post.

The account's access token is a member's OAuth 2.0 token (``w_member_social`` to post as the
member, ``w_organization_social`` to post as a company page). ``external_id`` names the author:
``urn:li:person:{id}`` / ``urn:li:organization:{id}``, or a bare person id.

Every request carries ``LinkedIn-Version: YYYYMM`` (the ``HERALD_LINKEDIN_VERSION`` setting)
and ``X-Restli-Protocol-Version: 2.0.0``, as the versioned Posts API requires
(learn.microsoft.com/linkedin/marketing/community-management/shares/posts-api). A created
post answers 201 with an empty body; its URN is in the ``x-restli-id`` header.

Pictures go through the Images API (learn.microsoft.com/linkedin/marketing/community-management/
shares/images-api): ``POST /rest/images?action=initializeUpload`` names the author as owner and
answers ``{"value": {"uploadUrl", "uploadUrlExpiresAt", "image": "urn:li:image:..."}}``; the
bytes are then PUT to ``uploadUrl`` (on another host, www.linkedin.com/dms-uploads/...) with the
same bearer token, and the post names the image URN: ``content.media`` for one picture,
``content.multiImage.images`` for 2 to 20, each with its ``altText``.

Idempotency: the Posts API takes no idempotency key. LinkedIn refuses a post identical to a
recent one (422 DUPLICATE_POST, "Content is a duplicate of urn:li:share:..."), which Herald
treats as a sign that an earlier attempt may have landed. :meth:`LinkedIn.find_published`
lists the author's posts (``q=author``), which LinkedIn allows only with the
``r_member_social`` (restricted, granted to few apps) or ``r_organization_social`` permission;
without it LinkedIn answers 403 and Herald cannot tell.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from herald_common import clock
from herald_common.http import (
    TRANSPORT_ERRORS,
    json_object,
    retry_after_seconds,
    transport_failure,
)
from herald_common.platforms.base import (
    AccountCredentials,
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
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.platforms.text import extract_urls, utf16_length

POSTS_PATH = "/rest/posts"
INITIALIZE_UPLOAD_PATH = "/rest/images?action=initializeUpload"
# Posts API, "commentary": up to 3,000 characters (the share box's limit too); LinkedIn answers
# a longer one 400 "ShareCommentary text length (N characters) exceeded the maximum allowed
# (3000 characters)" (the body quoted in n8n-io/n8n#22899). LinkedIn's documentation says
# neither which unit it counts nor whether it counts before or after the little-format
# escaping, so Herald takes the stricter reading of both: the commentary as sent (escaped),
# in UTF-16 code units (what a Java string's length() counts; never fewer than code points).
# docs/text-length.md has the details.
MAX_CHARACTERS = 3000
# Posts API: a MultiImage post holds 2 to 20 images; one image is a plain media post.
MAX_IMAGES = 20
# Images API: JPG, GIF and PNG only (no WEBP), and "less than 36,152,320" pixels.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif")
MAX_IMAGE_PIXELS = 36_152_320 - 1
# The Images API names no file size limit; 8 MB is what tools built on it state (e.g. the
# LinkedIn MCP servers listed on glama.ai), not confirmed in LinkedIn's own documentation.
MAX_IMAGE_BYTES = 8 * 1024 * 1024
# Posts API, media "altText": 4,086 characters, as remembered from the Posts API schema and
# not confirmed against its current documentation.
MAX_ALT_TEXT = 4086
VISIBILITIES = ("PUBLIC", "CONNECTIONS", "LOGGED_IN")
# How many of the author's newest posts find_published reads (the finder pages by count).
RECENT_POSTS = 20
# LinkedIn's 429s carry no reset time; its quotas reset daily at midnight UTC
# (learn.microsoft.com/linkedin/shared/api-guide/concepts/rate-limits), but a 429 may also be
# short infrastructure protection, so the wait is short and our own buckets pace the rest.
DEFAULT_RETRY_AFTER_SECONDS = 60.0
# The "little" text format of commentary reserves these characters; unescaped, LinkedIn cuts
# the post at the first one without an error (Posts API, "little Text Format").
_LITTLE_RESERVED = re.compile(r"[\\|{}@\[\]()<>#*_~]")
_HASHTAG = re.compile(r"#\w")
_DUPLICATE_OF = re.compile(r"duplicate of (urn:li:\w+:\d+)", re.IGNORECASE)


class LinkedIn(Platform):
    name = "linkedin"
    # The author's posts can be listed at any time, given the permission (find_published).
    reconcilable = True
    # The upload URL expires (uploadUrlExpiresAt) but Herald remembers the image URN only once
    # its bytes are in, and LinkedIn documents no expiry for an uploaded, unattached image.
    # Not knowing whether it cleans them up, Herald uploads again after a day rather than
    # risk a retry that can only be refused.
    media_reference_ttl = timedelta(days=1)
    limits = (
        # LinkedIn does not publish its standard limits (they are shown per app in the
        # Developer Portal); 150 posts per member per day is the documented daily cap
        # scheduling services run into (ayrshare.com docs, "LinkedIn limits 150 posts per day").
        RateLimit("posts", capacity=150, per_seconds=24 * 3600, scope="account"),
    )

    def validate(self, content: PostContent) -> list[ContentProblem]:
        problems = []
        if not content.text.strip() and not content.media:
            problems.append(ContentProblem("content", "LinkedIn needs some text or a picture."))
        length = utf16_length(little_text(content.text))
        if length > MAX_CHARACTERS:
            problems.append(
                ContentProblem(
                    "content",
                    f"LinkedIn allows {MAX_CHARACTERS} characters (emoji and other symbols "
                    "outside the basic plane count as 2, and so does each \\ | { } @ [ ] ( ) "
                    f"< > # * _ ~ Herald escapes for LinkedIn); this post has {length}.",
                )
            )
        problems += media_problems(
            "LinkedIn",
            content.media,
            max_count=MAX_IMAGES,
            max_bytes=MAX_IMAGE_BYTES,
            types=IMAGE_TYPES,
            max_alt_text=MAX_ALT_TEXT,
            max_pixels=MAX_IMAGE_PIXELS,
        )
        if content.thread:
            problems.append(ContentProblem("thread", "LinkedIn has no threads; post it as one."))
        if content.content_warning:
            problems.append(
                ContentProblem("content_warning", "LinkedIn has no content warnings; remove it.")
            )
        if content.visibility and content.visibility.upper() not in VISIBILITIES:
            problems.append(
                ContentProblem(
                    "visibility",
                    f"LinkedIn visibility is one of {', '.join(VISIBILITIES)}; "
                    f"not {content.visibility!r}.",
                )
            )
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        headers = self._headers(request)
        images = await self.upload_all(request, partial(self._upload, request, headers))
        body: dict[str, Any] = {
            "author": author_urn(request.account),
            "commentary": little_text(request.content.text),
            "visibility": (request.content.visibility or "PUBLIC").upper(),
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        attached = [
            {"id": urn} | ({"altText": item.alt_text} if item.alt_text else {})
            for urn, item in zip(images, request.content.media, strict=True)
        ]
        if len(attached) == 1:
            body["content"] = {"media": attached[0]}
        elif attached:
            body["content"] = {"multiImage": {"images": attached}}
        try:
            response = await self.http.post(
                self._api_base() + POSTS_PATH, json=body, headers=headers
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, "LinkedIn", "the post") from exc
        _raise_for_error(response)
        urn = response.headers.get("x-restli-id") or json_object(response).get("id")
        if not urn:
            raise OutcomeUnknown(
                "LinkedIn accepted the post but named no id (no x-restli-id header)",
                http_status=response.status_code,
            )
        return Published(remote_id=str(urn), remote_url=post_url(str(urn)))

    async def find_published(self, request: PublishRequest) -> Published | None:
        """The author's newest post whose commentary is ours, if LinkedIn lets us list them."""
        author = quote(author_urn(request.account), safe="")
        # Rest.li 2.0 wants the URN percent-encoded in the query, hence the hand-built URL.
        url = (
            f"{self._api_base()}{POSTS_PATH}?q=author&author={author}"
            f"&count={RECENT_POSTS}&sortBy=CREATED"
        )
        try:
            response = await self.http.get(
                url, headers=self._headers(request) | {"X-RestLi-Method": "FINDER"}
            )
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"LinkedIn: the author's posts could not be read: {exc!r}") from exc
        if response.status_code == 403:
            raise CannotTell(
                "LinkedIn lists an author's posts only for apps granted r_member_social or "
                f"r_organization_social, and refused this one: {_error_message(response)}"
            )
        _raise_for_error(response)
        wanted = {request.content.text, little_text(request.content.text)}
        for post in json_object(response).get("elements") or []:
            if isinstance(post, dict) and post.get("commentary") in wanted and post.get("id"):
                return Published(remote_id=str(post["id"]), remote_url=post_url(str(post["id"])))
        return None

    def _api_base(self) -> str:
        return self.settings.linkedin_api_base.rstrip("/")

    async def _upload(
        self, request: PublishRequest, headers: dict[str, str], item: Media, data: bytes
    ) -> str:
        """Register one picture with the Images API and PUT its bytes; its image URN."""
        initialize = {"initializeUploadRequest": {"owner": author_urn(request.account)}}
        response = await self._send(
            "POST", self._api_base() + INITIALIZE_UPLOAD_PATH, headers, json=initialize
        )
        value = json_object(response).get("value")
        if not isinstance(value, dict) or not value.get("uploadUrl") or not value.get("image"):
            raise OutcomeUnknown(
                "LinkedIn initialized an image upload but named no uploadUrl and image",
                http_status=response.status_code,
            )
        # The upload URL takes the member's token alone, as in the Images API's upload example.
        await self._send(
            "PUT",
            str(value["uploadUrl"]),
            {"Authorization": headers["Authorization"]},
            content=data,
        )
        return str(value["image"])

    async def _send(
        self, method: str, url: str, headers: dict[str, str], **body: Any
    ) -> httpx.Response:
        """One step of a picture's upload, its failures mapped; the caller turns an
        OutcomeUnknown into Transient (a stray image on LinkedIn, never a second post)."""
        try:
            response = await self.http.request(method, url, headers=headers, **body)
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, "LinkedIn", "the picture") from exc
        _raise_for_error(response, "the picture")
        return response

    def _headers(self, request: PublishRequest) -> dict[str, str]:
        token = request.account.access_token
        if not token:
            raise AuthExpired("LinkedIn: the account has no access token; reconnect it")
        return {
            "Authorization": f"Bearer {token}",
            "LinkedIn-Version": self.settings.linkedin_version,
            "X-Restli-Protocol-Version": "2.0.0",
        }


def author_urn(account: AccountCredentials) -> str:
    external_id = account.external_id
    return external_id if external_id.startswith("urn:li:") else f"urn:li:person:{external_id}"


def post_url(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"


def little_text(text: str) -> str:
    """``text`` as plain "little" text: reserved characters backslash-escaped, except inside
    links (so they stay links) and the ``#`` that starts a hashtag (so it stays one)."""
    pieces = []
    position = 0
    for url in extract_urls(text):
        pieces.append(_escape(text[position : url.start]))
        pieces.append(url.text)
        position = url.end
    pieces.append(_escape(text[position:]))
    return "".join(pieces)


def _escape(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if char == "#" and _HASHTAG.match(text, match.start()):
            return char
        return "\\" + char

    return _LITTLE_RESERVED.sub(replace, text)


def _raise_for_error(response: httpx.Response, what: str = "the post") -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    message = _error_message(response)
    if status in (401, 403):
        # 401: expired or revoked token; 403: the token lacks the permission to post.
        raise AuthExpired(
            f"LinkedIn refused the account's token ({status}): {message}", http_status=status
        )
    if status == 429:
        wait = retry_after_seconds(response.headers.get("Retry-After"), clock.now())
        raise RateLimited(
            f"LinkedIn rate limit: {message}",
            retry_after=DEFAULT_RETRY_AFTER_SECONDS if wait is None else wait,
            http_status=status,
        )
    if status == 422 and _DUPLICATE_OF.search(message):
        raise OutcomeUnknown(
            f"LinkedIn refused the post as a duplicate ({message}); an earlier attempt may "
            "have published it",
            http_status=status,
        )
    if status >= 500 or status == 408:
        raise Transient(
            f"LinkedIn answered {status}: {message}",
            http_status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), clock.now()),
        )
    raise Rejected(f"LinkedIn rejected {what} ({status}): {message}", http_status=status)


def _error_message(response: httpx.Response) -> str:
    """LinkedIn's ``{"message", "serviceErrorCode", "status"}`` (Rest.li error), or what a
    proxy sent instead."""
    message = json_object(response).get("message")
    if isinstance(message, str) and message:
        return message
    return response.text.strip()[:200] or response.reason_phrase or str(response.status_code)
