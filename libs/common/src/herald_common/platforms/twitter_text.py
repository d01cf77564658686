"""twitter-text: how X counts a post, and the link grammar Mastodon borrows from it.

X measures a post with twitter-text's ``parseTweet`` and its v3 configuration (npm
twitter-text 3.1.0, ``dist/configs.js`` "defaults"; the same library X's apps count with):

- the text is NFC-normalized, then read in UTF-16 code units, as JavaScript does;
- every link counts ``transformedURLLength`` = 23, whatever its length (it becomes a t.co
  link). A link is what ``extractUrlsWithIndices`` finds: a domain on a TLD twitter-text knows,
  with or without a scheme, no label longer than 63 characters once punycoded, and at most
  4,096 characters in all;
- every emoji twemoji-parser 11.0.2 recognises counts 2, however many code points it has
  (:mod:`herald_common.platforms.twemoji_regex`); a newer emoji it does not know is counted
  by its parts;
- every other code point weighs 1 inside the ranges below and 2 outside them (so CJK, Hangul
  and most symbols weigh 2);
- the limit is 280, and a text containing U+FFFE, U+FEFF or U+FFFF is invalid at any length.

Offsets in the :class:`~herald_common.platforms.text.TextEntity` values here are code points;
:class:`XParsedText` ranges are UTF-16 units, as twitter-text reports them.
"""

from __future__ import annotations

import math
import sys
import unicodedata
from array import array
from dataclasses import dataclass
from functools import cache
from typing import Any

import regex  # type: ignore[import-untyped]  # no types-regex in the workspace's dev group

from herald_common.platforms.text import LATIN_ACCENTS, TextEntity, grapheme_count, utf16_length
from herald_common.platforms.twemoji_regex import TWEMOJI_PATTERN
from herald_common.platforms.twitter_tlds import COUNTRY_TLDS, GENERIC_TLDS

# -- The pieces twitter-text's JavaScript (dist/regexp/*.js) and Ruby (lib/twitter-text/
# regex.rb, 3.1.0, the gem Mastodon loads) implementations share -------------------------------

# spacesGroup / UNICODE_SPACES.
SPACES = "\t-\r \x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# invalidCharsGroup / INVALID_CHARACTERS: a post holding one of these is invalid.
INVALID_CHARACTERS = "\ufffe\ufeff\uffff"
# directionalMarkersGroup / DIRECTIONAL_CHARACTERS.
DIRECTIONAL_CHARACTERS = "\u202a-\u202e\u061c\u200e\u200f\u2066\u2067\u2068\u2069"
CYRILLIC = "\u0400-\u04ff"
# A TLD must not run on into more domain-ish characters ("example.community" is not ".com").
_TLD_END = "(?=[^0-9a-zA-Z@+-]|$)"
GTLD = "(?:(?:" + "|".join(map(regex.escape, GENERIC_TLDS)) + ")" + _TLD_END + ")"
CCTLD = "(?:(?:" + "|".join(map(regex.escape, COUNTRY_TLDS)) + ")" + _TLD_END + ")"
# validUrlPrecedingChars: a link is not glued to a letter, digit, @, $, # or invalid character.
URL_PRECEDING = (
    "(?:[^A-Za-z0-9@\uff20$#\uff03" + INVALID_CHARACTERS + "]|[" + DIRECTIONAL_CHARACTERS + "]|^)"
)
# validTcoUrl's slug: MAX_TCO_SLUG_LENGTH (a longer one is no t.co link) and MAX_URL_LENGTH.
MAX_TCO_SLUG_LENGTH = 40
MAX_URL_LENGTH = 4096
DEFAULT_PROTOCOL = "https://"
MAX_DOMAIN_LABEL_LENGTH = 63


def domain_pattern(domain_char: str, punycode: str) -> str:
    """validDomain: subdomains (which may hold ``_``), a name (which may not), a known TLD."""
    subdomain = f"(?:(?:{domain_char}(?:[_-]|{domain_char})*)?{domain_char}\\.)"
    name = f"(?:(?:{domain_char}(?:-|{domain_char})*)?{domain_char}\\.)"
    return f"(?:{subdomain}*{name}(?:{GTLD}|{CCTLD}|{punycode}))"


def balanced_parens(path_char: str) -> str:
    """validUrlBalancedParens: ``(...)`` in a path, nested one level (Wikipedia links)."""
    return rf"\((?:{path_char}+|(?:{path_char}*\({path_char}+\){path_char}*))\)"


# -- X: npm twitter-text 3.1.0 --------------------------------------------------------------

X_MAX_WEIGHTED_LENGTH = 280
X_URL_LENGTH = 23
# configs.js v3 "ranges" (weight 100 on "scale" 100: 1 character) and "defaultWeight" 200
# (2 characters). Every weight is whole characters, so Herald adds characters, not hundredths.
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_X_DEFAULT_WEIGHT = 2
# The weight of every UTF-16 code unit, looked up rather than compared range by range.
_X_UNIT_WEIGHTS = bytearray([_X_DEFAULT_WEIGHT]) * 0x10000
for _low, _high in _X_LIGHT_RANGES:
    _X_UNIT_WEIGHTS[_low : _high + 1] = bytes([1]) * (_high + 1 - _low)

_X_PUNCT = r"!'#%&'\(\)*\+,\\\-\./:;<=>\?@\[\]\^_{|}~\$"
_X_DOMAIN_CHAR = "[^" + _X_PUNCT + SPACES + INVALID_CHARACTERS + DIRECTIONAL_CHARACTERS + "]"
_X_PUNYCODE = r"(?:xn--[\-0-9a-z]+)"
_X_PATH_CHAR = "[a-z" + CYRILLIC + r"0-9!\*';:=\+,\.\$/%#\[\]\-\u2013_~@\|&" + LATIN_ACCENTS + "]"
_X_BALANCED_PARENS = balanced_parens(_X_PATH_CHAR)
_X_PATH_ENDING = r"[\+\-a-z" + CYRILLIC + "0-9=_#/" + LATIN_ACCENTS + f"]|(?:{_X_BALANCED_PARENS})"
_X_PATH = (
    f"(?:(?:{_X_PATH_CHAR}*(?:{_X_BALANCED_PARENS}{_X_PATH_CHAR}*)*{_X_PATH_ENDING})"
    f"|(?:@{_X_PATH_CHAR}+/))"
)
_X_QUERY_CHAR = r"[a-z0-9!?\*'@\(\);:&=\+\$/%#\[\]\-_\.,~|]"
_X_QUERY_ENDING = r"[a-z0-9\-_&=#/]"


# The large patterns (every TLD, every emoji) are compiled on first use, not when a service
# that never counts an X post imports this module.
@cache
def _x_url() -> Any:
    """extractUrl.js"""
    return regex.compile(
        f"(?P<before>{URL_PRECEDING})"
        "(?P<url>(?P<protocol>https?://)?"
        f"(?P<domain>{domain_pattern(_X_DOMAIN_CHAR, _X_PUNYCODE)})"
        "(?::[0-9]+)?"
        f"(?P<path>/{_X_PATH}*)?"
        f"(?:\\?{_X_QUERY_CHAR}*{_X_QUERY_ENDING})?)",
        regex.IGNORECASE,
    )


@cache
def _x_ascii_domain() -> Any:
    """validAsciiDomain.js"""
    return regex.compile(
        f"(?:(?:[\\-a-z0-9{LATIN_ACCENTS}]+)\\.)+(?:{GTLD}|{CCTLD}|{_X_PUNYCODE})",
        regex.IGNORECASE,
    )


@cache
def _twemoji() -> Any:
    return regex.compile(TWEMOJI_PATTERN)


_X_INVALID_BEFORE_SCHEMELESS = regex.compile(r"[-_./]$")
_X_TCO_URL = regex.compile(
    rf"^https?://t\.co/([a-z0-9]+)(?:\?{_X_QUERY_CHAR}*{_X_QUERY_ENDING})?", regex.IGNORECASE
)
# punycode 1.4.1 (twitter-text's dependency): label separators, and what it encodes.
_PUNYCODE_SEPARATORS = regex.compile("[\u3002\uff0e\uff61]")
_PUNYCODE_NEEDED = regex.compile(r"[^\x20-\x7e]")
_INVALID_UNITS = frozenset(map(ord, INVALID_CHARACTERS))
# array("H") reads code units in the machine's byte order. The emoji pattern, written for
# JavaScript strings, is matched against one character per code unit (astral characters as
# two surrogates), so it matches as it does there.
_UTF16_NATIVE = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"
_HIGH_SURROGATES = range(0xD800, 0xDC00)
_LOW_SURROGATES = range(0xDC00, 0xE000)
# Removed from a post before X sees it: see x_publishable_text.
_BYTE_ORDER_MARK = "\ufeff"
_NONCHARACTERS = {"\ufffe": "U+FFFE", "\uffff": "U+FFFF"}


@dataclass(frozen=True, slots=True)
class XParsedText:
    """What twitter-text's ``parseTweet`` answers (its ranges in UTF-16 units, inclusive)."""

    weighted_length: int
    valid: bool
    permillage: int
    valid_range_start: int
    valid_range_end: int
    display_range_start: int
    display_range_end: int


def x_extract_urls(text: str) -> list[TextEntity]:
    """Every link X turns into a t.co link, as twitter-text's ``extractUrlsWithIndices``.

    A link needs no scheme: "herald.dev" is one when its TLD is one twitter-text knows.
    """
    if "." not in text:
        return []
    urls: list[TextEntity] = []
    for match in _x_url().finditer(text):
        url, domain, protocol = match.group("url"), match.group("domain"), match.group("protocol")
        start, end = match.start("url"), match.end("url")
        if not _x_is_valid_url(url, protocol or DEFAULT_PROTOCOL, domain):
            continue  # plain text: every character counts
        if protocol:
            tco = _X_TCO_URL.match(url)
            if tco:
                # A t.co link ends at its slug: nothing after it can be part of it.
                if len(tco.group(1)) > MAX_TCO_SLUG_LENGTH:
                    continue
                end = start + len(tco.group())
            urls.append(TextEntity(start, end, text[start:end]))
            continue
        # Without a scheme only the ASCII domains inside count, and not right after - _ . /
        if _X_INVALID_BEFORE_SCHEMELESS.search(match.group("before")):
            continue
        found: list[TextEntity] = []
        searched_to = 0
        for ascii_domain in _x_ascii_domain().finditer(domain):
            at = domain.index(ascii_domain.group(), searched_to)
            searched_to = at + len(ascii_domain.group())
            found.append(TextEntity(start + at, start + searched_to, ascii_domain.group()))
        if found and match.group("path"):
            # The path belongs to the last domain found.
            last = found.pop()
            found.append(TextEntity(last.start, end, text[last.start : end]))
        urls.extend(found)
    return urls


def _x_is_valid_url(url: str, protocol: str, domain: str) -> bool:
    """extractUrlsWithIndices.js ``isValidUrl`` with lib/idna.js ``toAscii``: a punycode
    domain must hold an ASCII domain; every label, punycoded, is 1 to 63 characters (a longer
    one makes the whole link plain text); and the link, with the scheme counted once more, is
    at most 4,096 UTF-16 units (toAscii hands back the domain unchanged, so its punycode length
    does not count)."""
    if domain.startswith("xn--") and not _x_ascii_domain().search(domain):
        return False
    for label in domain.split("."):
        if not 1 <= _punycode_length(label) <= MAX_DOMAIN_LABEL_LENGTH:
            return False
    return utf16_length(protocol) + utf16_length(url) <= MAX_URL_LENGTH


def _punycode_length(label: str) -> int:
    """The length of punycode.toASCII(label) (punycode 1.4.1): parts between the ideographic
    full stops are encoded on their own, as ``xn--`` + RFC 3492, when not printable ASCII."""
    parts = _PUNYCODE_SEPARATORS.split(label)
    encoded = [
        4 + len(part.encode("punycode")) if _PUNYCODE_NEEDED.search(part) else len(part)
        for part in parts
    ]
    return sum(encoded) + len(parts) - 1


def x_parse(text: str) -> XParsedText:
    """twitter-text's ``parseTweet(text)`` with the v3 configuration, step for step.

    It walks the NFC text in UTF-16 units: a link's first unit adds 23 and skips the link, an
    emoji's adds 2 and skips the emoji, any other character adds its weight (a surrogate pair
    is read as one, weighing 2). The text stays valid while no unit it stops on is an invalid
    character; ``valid_range_end`` is the last unit still within 280.
    """
    normalized = unicodedata.normalize("NFC", text)
    codes = array("H", normalized.encode(_UTF16_NATIVE, "surrogatepass"))
    to_unit = _utf16_offsets(normalized)
    url_ends = {to_unit[url.start]: to_unit[url.end] for url in x_extract_urls(normalized)}
    emoji_ends: dict[int, int] = {}
    for match in _twemoji().finditer("".join(map(chr, codes))):
        emoji_ends.setdefault(match.start(), match.end())
    weighted = 0
    valid = True
    valid_display_index = 0
    index = 0
    while index < len(codes):
        if index in url_ends:
            weighted += X_URL_LENGTH
            index = url_ends[index] - 1
        elif index in emoji_ends:
            weighted += _X_DEFAULT_WEIGHT
            index = emoji_ends[index] - 1
        else:
            if _is_surrogate_pair(codes, index):
                index += 1  # twitter-text then weighs the low surrogate: 2
            weighted += _X_UNIT_WEIGHTS[codes[index]]
        if valid:
            valid = codes[index] not in _INVALID_UNITS
        if valid and weighted <= X_MAX_WEIGHTED_LENGTH:
            valid_display_index = index
        index += 1
    weighted_length = weighted
    text_units = utf16_length(text)
    return XParsedText(
        weighted_length=weighted_length,
        valid=valid and 0 < weighted_length <= X_MAX_WEIGHTED_LENGTH,
        permillage=math.floor(weighted_length / X_MAX_WEIGHTED_LENGTH * 1000),
        valid_range_start=0,
        valid_range_end=valid_display_index + text_units - len(codes),
        display_range_start=0,
        display_range_end=max(text_units - 1, 0),
    )


def x_weighted_length(text: str) -> int:
    """The weighted length X checks against 280."""
    return x_parse(text).weighted_length


def x_publishable_text(text: str) -> str:
    """``text`` as Herald sends it to X: without U+FEFF.

    twitter-text refuses a post holding U+FEFF (the byte order mark, or zero width no-break
    space), which pasted text often carries at its start; it shows nothing, so Herald removes
    it rather than refuse the post. U+FFFE and U+FFFF, which no text should hold, are refused
    instead (:func:`x_noncharacters`).
    """
    return text.replace(_BYTE_ORDER_MARK, "")


def x_noncharacters(text: str) -> list[tuple[str, int]]:
    """Each U+FFFE / U+FFFF in ``text``, named, with its position as a reader counts
    characters (grapheme clusters, from 1)."""
    return [
        (name, grapheme_count(text[:index]) + 1)
        for index, character in enumerate(text)
        if (name := _NONCHARACTERS.get(character)) is not None
    ]


def _utf16_offsets(text: str) -> list[int]:
    """For each code-point offset of ``text`` (and its end), the UTF-16 offset."""
    offsets = [0]
    for character in text:
        offsets.append(offsets[-1] + (2 if ord(character) > 0xFFFF else 1))
    return offsets


def _is_surrogate_pair(codes: array[int], index: int) -> bool:
    return (
        index + 1 < len(codes)
        and codes[index] in _HIGH_SURROGATES
        and codes[index + 1] in _LOW_SURROGATES
    )
