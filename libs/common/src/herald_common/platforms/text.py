"""Counting post text the way platforms count it: grapheme clusters, URLs, mentions.

Platforms do not count ``len(str)`` (code points): a family emoji is seven code points and one
character to a reader. Most count extended grapheme clusters and give every link a fixed
weight, so a long URL costs the same as a short one. This module holds the shared pieces and
the rules of Mastodon (below), X (twitter-text's weighted length) and Bluesky (facets with
UTF-8 byte offsets).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import regex  # type: ignore[import-untyped]  # no types-regex in the workspace's dev group

from herald_common.platforms.twitter_tlds import COUNTRY_TLDS, GENERIC_TLDS

# One extended grapheme cluster (UAX #29), what a reader sees as one character.
_GRAPHEME = regex.compile(r"\X")

# twitter-text's LATIN_ACCENTS: letters it treats as part of a word in URLs and mentions.
_LATIN_ACCENTS = (
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259"
    "\u025b\u0263\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)

# An http(s) URL, after twitter-text's ``valid_url`` (which Mastodon uses through its
# Extractor): not glued to a preceding letter, digit, @, $ or #; a dotted host; an optional
# port; then path and query characters from twitter-text's allowed sets. Differences, kept on
# purpose: any alphabetic TLD is accepted (twitter-text checks a list of TLDs), and IP
# addresses are not URLs (as in twitter-text).
_URL = regex.compile(
    rf"""
    (?<![A-Za-z0-9@\uff20$#\uff03])
    https?://
    (?:[\p{{L}}\p{{N}}\p{{M}}](?:[\p{{L}}\p{{N}}\p{{M}}_-]*[\p{{L}}\p{{N}}\p{{M}}])?\.)+
    (?:\p{{L}}{{2,63}}|xn--[a-z0-9-]{{1,59}})
    (?![\p{{L}}\p{{N}}\p{{M}}_-])
    (?::[0-9]{{1,5}})?
    (?:[/?\#][a-z0-9{_LATIN_ACCENTS}\p{{Cyrillic}}!?*'();:=+,.$/%\#\[\]\-\u2013_~&|@]*)?
    """,
    regex.VERBOSE | regex.IGNORECASE,
)
# twitter-text's valid_url_path_ending_chars / valid_url_query_ending_chars: a URL never ends
# in other punctuation, so "see https://example.com/a." leaves the full stop out of the link.
_URL_ENDING = regex.compile(rf"[a-z0-9{_LATIN_ACCENTS}\p{{Cyrillic}}=_#/+\-&]", regex.IGNORECASE)

# Mastodon's Account::USERNAME_RE and Account::MENTION_RE (app/models/account.rb):
# ``@user`` or ``@user@domain``, not preceded by ``=``, ``/`` or a word character (so e-mail
# addresses and profile URLs are not mentions).
_USERNAME = r"[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*"
_MENTION = regex.compile(
    rf"(?<![=/\w])@(?P<name>(?P<user>{_USERNAME})(?:@\w+(?:[.-]+\w+)*)?)",
    regex.IGNORECASE,
)
# twitter-text's end_mention_match: a mention followed by another at sign, an accented latin
# letter or "://" is not a mention.
_MENTION_INVALID_AFTER = regex.compile(rf"[@\uff20{_LATIN_ACCENTS}]|://")

# Mastodon StatusLengthValidator::URL_PLACEHOLDER_CHARS (app/validators/status_length_validator.rb),
# also published by the instance API as configuration.statuses.characters_reserved_per_url.
MASTODON_URL_LENGTH = 23
_URL_PLACEHOLDER = "x" * MASTODON_URL_LENGTH


@dataclass(frozen=True, slots=True)
class TextEntity:
    """A span of a post's text (code-point offsets, ``text[start:end]``)."""

    start: int
    end: int
    text: str


def grapheme_count(text: str) -> int:
    """Characters as a reader counts them: extended grapheme clusters, not code points."""
    return sum(1 for _ in _GRAPHEME.finditer(text))


def extract_urls(text: str) -> list[TextEntity]:
    """Every http/https URL in ``text``, in order, without trailing punctuation."""
    urls = []
    for match in _URL.finditer(text):
        url = _trim_url_ending(match.group())
        urls.append(TextEntity(match.start(), match.start() + len(url), url))
    return urls


def extract_mentions(text: str) -> list[TextEntity]:
    """Every ``@user`` / ``@user@domain`` mention Mastodon would recognise in ``text``."""
    mentions = []
    for match in _MENTION.finditer(text):
        if _MENTION_INVALID_AFTER.match(text, match.end()):
            continue
        mentions.append(TextEntity(match.start(), match.end(), match.group()))
    return mentions


def mastodon_length(text: str) -> int:
    """The length Mastodon's StatusLengthValidator gives ``text`` (checked against 500).

    Follows app/validators/status_length_validator.rb in mastodon/mastodon: blank text counts
    0; every URL is replaced by a 23-character placeholder; every mention is replaced by its
    ``@user`` part (a remote ``@user@domain`` costs only ``@user``); of overlapping entities
    the one that starts first wins (twitter-text's remove_overlapping_entities); the result is
    measured in grapheme clusters (``each_grapheme_cluster.size``), not code points.
    """
    if not text.strip():
        return 0
    # (start, end, what the span counts as)
    replacements = [(url.start, url.end, _URL_PLACEHOLDER) for url in extract_urls(text)]
    replacements += [
        (mention.start, mention.end, "@" + mention.text[1:].split("@", 1)[0])
        for mention in extract_mentions(text)
    ]
    countable: list[str] = []
    position = 0
    for start, end, counts_as in sorted(replacements):
        if start < position:
            continue  # overlaps an entity already kept
        countable += (text[position:start], counts_as)
        position = end
    countable.append(text[position:])
    return grapheme_count("".join(countable))


def _trim_url_ending(url: str) -> str:
    while url and not _URL_ENDING.match(url[-1]):
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break  # a balanced closing parenthesis belongs to the URL (Wikipedia links)
        url = url[:-1]
    return url


# -- X (twitter-text v3) ----------------------------------------------------------------------
#
# X measures a post with twitter-text's parseTweet and its v3 configuration (dist/configs.js in
# npm twitter-text 3.1.0, "defaults"): the text is NFC-normalized; every URL counts
# transformedURLLength = 23, whatever its length (it becomes a t.co link); every emoji counts 2,
# however many code points it is made of; every other code point weighs 1 inside the ranges
# below and 2 outside them (so CJK, Hangul and most symbols weigh 2). The limit is 280.

X_MAX_WEIGHTED_LENGTH = 280
X_URL_LENGTH = 23
# twitter-text v3 config "ranges" (weight 100 = 1 character; defaultWeight 200 = 2).
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_X_HEAVY_WEIGHT = 2

# The pieces of twitter-text's URL regex (dist/regexp/*.js), translated one to one.
_TT_PUNCT = r"!'#%&'\(\)*\+,\\\-\./:;<=>\?@\[\]\^_{|}~\$"
_TT_SPACES = "\t-\r \x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_TT_INVALID = "\ufffe\ufeff\uffff"
_TT_DIRECTIONAL = "\u202a-\u202e\u061c\u200e\u200f\u2066\u2067\u2068\u2069"
_TT_CYRILLIC = "\u0400-\u04ff"
_TT_DOMAIN_CHAR = "[^" + _TT_PUNCT + _TT_SPACES + _TT_INVALID + _TT_DIRECTIONAL + "]"
_TT_SUBDOMAIN = f"(?:(?:{_TT_DOMAIN_CHAR}(?:[_-]|{_TT_DOMAIN_CHAR})*)?{_TT_DOMAIN_CHAR}\\.)"
_TT_DOMAIN_NAME = f"(?:(?:{_TT_DOMAIN_CHAR}(?:-|{_TT_DOMAIN_CHAR})*)?{_TT_DOMAIN_CHAR}\\.)"
# A TLD must not run on into more domain-ish characters ("example.community" is not ".com").
_TT_TLD_END = "(?=[^0-9a-zA-Z@+-]|$)"
_TT_GTLD = "(?:(?:" + "|".join(map(regex.escape, GENERIC_TLDS)) + ")" + _TT_TLD_END + ")"
_TT_CCTLD = "(?:(?:" + "|".join(map(regex.escape, COUNTRY_TLDS)) + ")" + _TT_TLD_END + ")"
_TT_PUNYCODE = r"(?:xn--[\-0-9a-z]+)"
_TT_DOMAIN = f"(?:{_TT_SUBDOMAIN}*{_TT_DOMAIN_NAME}(?:{_TT_GTLD}|{_TT_CCTLD}|{_TT_PUNYCODE}))"
_TT_PATH_CHAR = (
    "[a-z" + _TT_CYRILLIC + r"0-9!\*';:=\+,\.\$/%#\[\]\-\u2013_~@\|&" + _LATIN_ACCENTS + "]"
)
_TT_BALANCED_PARENS = (
    rf"\((?:{_TT_PATH_CHAR}+|(?:{_TT_PATH_CHAR}*\({_TT_PATH_CHAR}+\){_TT_PATH_CHAR}*))\)"
)
_TT_PATH_ENDING = (
    r"[\+\-a-z" + _TT_CYRILLIC + "0-9=_#/" + _LATIN_ACCENTS + f"]|(?:{_TT_BALANCED_PARENS})"
)
_TT_PATH = (
    f"(?:(?:{_TT_PATH_CHAR}*(?:{_TT_BALANCED_PARENS}{_TT_PATH_CHAR}*)*{_TT_PATH_ENDING})"
    f"|(?:@{_TT_PATH_CHAR}+/))"
)
_TT_QUERY_CHAR = r"[a-z0-9!?\*'@\(\);:&=\+\$/%#\[\]\-_\.,~|]"
_TT_QUERY_ENDING = r"[a-z0-9\-_&=#/]"
_TT_PRECEDING = "(?:[^A-Za-z0-9@\uff20$#\uff03" + _TT_INVALID + "]|[" + _TT_DIRECTIONAL + "]|^)"
_TT_URL = regex.compile(
    f"(?P<before>{_TT_PRECEDING})"
    "(?P<url>(?P<protocol>https?://)?"
    f"(?P<domain>{_TT_DOMAIN})"
    "(?::[0-9]+)?"
    f"(?P<path>/{_TT_PATH}*)?"
    f"(?:\\?{_TT_QUERY_CHAR}*{_TT_QUERY_ENDING})?)",
    regex.IGNORECASE,
)
_TT_ASCII_DOMAIN = regex.compile(
    f"(?:(?:[\\-a-z0-9{_LATIN_ACCENTS}]+)\\.)+(?:{_TT_GTLD}|{_TT_CCTLD}|{_TT_PUNYCODE})",
    regex.IGNORECASE,
)
_TT_INVALID_BEFORE_SCHEMELESS = regex.compile(r"[-_./]$")
_TT_TCO_URL = regex.compile(
    rf"^https?://t\.co/([a-z0-9]+)(?:\?{_TT_QUERY_CHAR}*{_TT_QUERY_ENDING})?", regex.IGNORECASE
)
# extractUrlsWithIndices.js: MAX_URL_LENGTH, MAX_TCO_SLUG_LENGTH, DEFAULT_PROTOCOL.
_TT_MAX_URL_LENGTH = 4096
_TT_MAX_TCO_SLUG_LENGTH = 40
_TT_DEFAULT_PROTOCOL = "https://"

# One emoji as twitter-text counts it (it asks twemoji-parser, whose list follows Unicode's
# emoji sequences, UTS #51): a keycap, a flag (two regional indicators), a subdivision flag
# (black flag + tag characters), or elements joined by ZWJ, where an element is a modifier
# base with its skin tone, an emoji-presentation character, or a text-presentation one made
# emoji by U+FE0F. A text-presentation character without FE0F ("©") is text, and FE0F after
# an emoji-presentation character is not part of it (twemoji's list has neither).
# Where the grammar allows more than the list (emoji newer than the list, a skin tone after a
# ZWJ family, a pair of regional indicators that is no country) Herald counts one emoji and
# the npm package counts the parts; X's servers run a newer list than the package's.
_EMOJI_ELEMENT = (
    r"(?:\p{Emoji_Modifier_Base}\p{Emoji_Modifier}"
    r"|\p{Emoji_Presentation}"
    r"|\p{Extended_Pictographic}\ufe0f)"
)
_EMOJI = regex.compile(
    r"[0-9#*]\ufe0f?\u20e3"
    r"|\p{Regional_Indicator}{2}"
    r"|\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"
    rf"|{_EMOJI_ELEMENT}(?:\u200d{_EMOJI_ELEMENT})*"
)


def x_extract_urls(text: str) -> list[TextEntity]:
    """Every URL X turns into a t.co link, as twitter-text's ``extractUrlsWithIndices``.

    Unlike :func:`extract_urls`, a link needs no scheme: "herald.dev" is a URL when its TLD is
    one twitter-text knows. Offsets are code points (twitter-text's are UTF-16 units).
    """
    if "." not in text:
        return []
    urls: list[TextEntity] = []
    for match in _TT_URL.finditer(text):
        url, domain = match.group("url"), match.group("domain")
        start, end = match.start("url"), match.end("url")
        if not _x_url_not_too_long(url, match.group("protocol"), domain):
            continue
        if match.group("protocol"):
            tco = _TT_TCO_URL.match(url)
            if tco:
                # A t.co link ends at its slug: nothing after it can be part of it.
                if len(tco.group(1)) > _TT_MAX_TCO_SLUG_LENGTH:
                    continue
                end = start + len(tco.group())
            urls.append(TextEntity(start, end, text[start:end]))
            continue
        # Without a scheme only the ASCII domains inside count, and not right after - _ . /
        if _TT_INVALID_BEFORE_SCHEMELESS.search(match.group("before")):
            continue
        found: list[TextEntity] = []
        searched_to = 0
        for ascii_domain in _TT_ASCII_DOMAIN.finditer(domain):
            at = domain.index(ascii_domain.group(), searched_to)
            searched_to = at + len(ascii_domain.group())
            found.append(TextEntity(start + at, start + searched_to, ascii_domain.group()))
        if found and match.group("path"):
            # The path belongs to the last domain found.
            last = found.pop()
            found.append(TextEntity(last.start, end, text[last.start : end]))
        urls.extend(found)
    return urls


def x_weighted_length(text: str) -> int:
    """The weighted length X checks against 280 (twitter-text v3's ``parseTweet``)."""
    normalized = unicodedata.normalize("NFC", text)
    url_ends = {url.start: url.end for url in x_extract_urls(normalized)}
    emoji_ends = {match.start(): match.end() for match in _EMOJI.finditer(normalized)}
    length = 0
    position = 0
    while position < len(normalized):
        if position in url_ends:
            length += X_URL_LENGTH
            position = url_ends[position]
        elif position in emoji_ends and emoji_ends[position] - position > 1:
            length += _X_HEAVY_WEIGHT
            position = emoji_ends[position]
        else:
            # A one-code-point emoji weighs what its code point weighs: 2, except the
            # text-presentation ones inside the light ranges, which the emoji rule skips.
            length += _x_code_point_weight(normalized[position])
            position += 1
    return length


def _x_code_point_weight(character: str) -> int:
    code_point = ord(character)
    if any(low <= code_point <= high for low, high in _X_LIGHT_RANGES):
        return 1
    return _X_HEAVY_WEIGHT


def _x_url_not_too_long(url: str, protocol: str | None, domain: str) -> bool:
    """twitter-text's ``isValidUrl``: at most 4,096 characters with the domain in punycode."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_domain = domain  # the limit is what matters here, not the exact encoding
    length = len(protocol or _TT_DEFAULT_PROTOCOL) + len(url) + len(ascii_domain) - len(domain)
    return length <= _TT_MAX_URL_LENGTH


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
        if not tag or _utf16_length(tag) > BLUESKY_MAX_TAG_LENGTH:
            continue
        facets.append(_facet(text, match.start(), match.start() + 1 + len(tag), "tag", tag))
    return facets


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def _facet(text: str, start: int, end: int, kind: str, value: str) -> Facet:
    byte_start = utf8_length(text[:start])
    return Facet(byte_start, byte_start + utf8_length(text[start:end]), kind, value)


def _is_known_domain(name: str) -> bool:
    # @atproto/api's isValidDomain: the name ends in "." plus a known TLD (case-sensitive).
    _, dot, tld = name.rpartition(".")
    return bool(dot) and tld in _KNOWN_TLDS


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
