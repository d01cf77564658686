"""Counting post text the way platforms count it: the shared pieces, and Bluesky's facets.

Platforms count in different units: grapheme clusters (what a reader sees as one character:
a family emoji is seven code points and one grapheme), UTF-16 code units (an emoji outside the
basic plane is two), code points (Python's ``len``) or bytes, and most give a link a fixed
weight whatever its length. docs/text-length.md says, per platform, which unit and which rules
Herald follows and where they come from. X's counting (twitter-text) is in
:mod:`herald_common.platforms.twitter_text`, Mastodon's in
:mod:`herald_common.platforms.mastodon_text`.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex  # type: ignore[import-untyped]  # no types-regex in the workspace's dev group

from herald_common.platforms.twitter_tlds import COUNTRY_TLDS, GENERIC_TLDS

# One extended grapheme cluster (UAX #29), what a reader sees as one character.
_GRAPHEME = regex.compile(r"\X")

# twitter-text's latinAccentChars / LATIN_ACCENTS: letters it treats as part of a word in links
# and mentions (twitter_text.py and mastodon_text.py use them too).
LATIN_ACCENTS = (
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259"
    "\u025b\u0263\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)

# An http(s) URL, loosely after twitter-text's ``valid_url``: not glued to a preceding letter,
# digit, @, $ or #; a dotted host on any alphabetic TLD; an optional port; then path and query
# characters from twitter-text's allowed sets. LinkedIn sends these unescaped so they stay
# links (LinkedIn documents no rule of its own); no platform's length counts them.
_URL = regex.compile(
    rf"""
    (?<![A-Za-z0-9@\uff20$#\uff03])
    https?://
    (?:[\p{{L}}\p{{N}}\p{{M}}](?:[\p{{L}}\p{{N}}\p{{M}}_-]*[\p{{L}}\p{{N}}\p{{M}}])?\.)+
    (?:\p{{L}}{{2,63}}|xn--[a-z0-9-]{{1,59}})
    (?![\p{{L}}\p{{N}}\p{{M}}_-])
    (?::[0-9]{{1,5}})?
    (?:[/?\#][a-z0-9{LATIN_ACCENTS}\p{{Cyrillic}}!?*'();:=+,.$/%\#\[\]\-\u2013_~&|@]*)?
    """,
    regex.VERBOSE | regex.IGNORECASE,
)
# twitter-text's valid_url_path_ending_chars / valid_url_query_ending_chars: a URL never ends
# in other punctuation, so "see https://example.com/a." leaves the full stop out of the link.
_URL_ENDING = regex.compile(rf"[a-z0-9{LATIN_ACCENTS}\p{{Cyrillic}}=_#/+\-&]", regex.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TextEntity:
    """A span of a post's text (code-point offsets, ``text[start:end]``)."""

    start: int
    end: int
    text: str


def grapheme_count(text: str) -> int:
    """Characters as a reader counts them: extended grapheme clusters, not code points."""
    return sum(1 for _ in _GRAPHEME.finditer(text))


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as JavaScript and Java count a string."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def extract_urls(text: str) -> list[TextEntity]:
    """Every http/https URL in ``text``, in order, without trailing punctuation."""
    urls = []
    for match in _URL.finditer(text):
        url = _trim_url_ending(match.group())
        urls.append(TextEntity(match.start(), match.start() + len(url), url))
    return urls


def _trim_url_ending(url: str) -> str:
    while url and not _URL_ENDING.match(url[-1]):
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break  # a balanced closing parenthesis belongs to the URL (Wikipedia links)
        url = url[:-1]
    return url


# -- Bluesky ----------------------------------------------------------------------------------
#
# Bluesky counts a post in grapheme clusters (app.bsky.feed.post: text maxGraphemes 300,
# maxLength 3000 UTF-8 bytes) and carries links, mentions and hashtags as "facets" beside the
# text, located by UTF-8 byte offsets. Detection follows the official client's
# RichText.detectFacets (npm @atproto/api, src/rich-text/detection.ts and util.ts).

_BSKY_MENTION = regex.compile(r"(?:^|(?<=[\s(]))@(?P<handle>[a-zA-Z0-9.-]+)(?a:\b)")
_BSKY_URL = regex.compile(
    r"(?:^|(?<=[\s(]))(?P<uri>https?://\S+|(?P<domain>[a-z][a-z0-9]*(?:\.[a-z0-9]+)+)\S*)",
    regex.IGNORECASE | regex.MULTILINE,
)
_BSKY_TAG_INVISIBLE = "\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
_BSKY_TAG = regex.compile(
    rf"(?:^|(?<=\s))[#\uff03](?P<tag>(?!\ufe0f)[^\s{_BSKY_TAG_INVISIBLE}]*"
    rf"[^0-9\s\p{{P}}{_BSKY_TAG_INVISIBLE}]+[^\s{_BSKY_TAG_INVISIBLE}]*)?"
)
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+$")
# A hashtag longer than this (in UTF-16 units, as the client measures) is not tagged.
BLUESKY_MAX_TAG_LENGTH = 64
_KNOWN_TLDS = frozenset(GENERIC_TLDS + COUNTRY_TLDS)


@dataclass(frozen=True, slots=True)
class Facet:
    """A rich-text span of a Bluesky post: ``kind`` is ``link`` (``value`` the URI),
    ``mention`` (``value`` the handle, to be resolved to a DID) or ``tag`` (without ``#``)."""

    byte_start: int
    byte_end: int
    kind: str
    value: str


def bluesky_facets(text: str) -> list[Facet]:
    """The links, mentions and hashtags the Bluesky app would find in ``text``."""
    facets = []
    for match in _BSKY_MENTION.finditer(text):
        handle = match.group("handle")
        if _is_known_domain(handle) or handle.endswith(".test"):
            facets.append(_facet(text, match.start(), match.end(), "mention", handle))
    for match in _BSKY_URL.finditer(text):
        uri, end = match.group("uri"), match.end()
        if not uri.lower().startswith("http"):
            if not _is_known_domain(match.group("domain")):
                continue
            uri = "https://" + uri
        if uri[-1] in ".,;:!?":
            uri, end = uri[:-1], end - 1
        if uri.endswith(")") and "(" not in uri:
            uri, end = uri[:-1], end - 1
        facets.append(_facet(text, match.start(), end, "link", uri))
    for match in _BSKY_TAG.finditer(text):
        tag = _TRAILING_PUNCTUATION.sub("", (match.group("tag") or "").strip())
        if not tag or utf16_length(tag) > BLUESKY_MAX_TAG_LENGTH:
            continue
        facets.append(_facet(text, match.start(), match.start() + 1 + len(tag), "tag", tag))
    return facets


def _facet(text: str, start: int, end: int, kind: str, value: str) -> Facet:
    byte_start = utf8_length(text[:start])
    return Facet(byte_start, byte_start + utf8_length(text[start:end]), kind, value)


def _is_known_domain(name: str) -> bool:
    # @atproto/api's isValidDomain: the name ends in "." plus a known TLD (case-sensitive).
    _, dot, tld = name.rpartition(".")
    return bool(dot) and tld in _KNOWN_TLDS
