"""Counting post text the way platforms count it: grapheme clusters, URLs, mentions.

Platforms do not count ``len(str)`` (code points): a family emoji is seven code points and one
character to a reader. Most count extended grapheme clusters and give every link a fixed
weight, so a long URL costs the same as a short one. This module holds the shared pieces and
Mastodon's rule; other platforms' rules (weighted lengths and so on) belong beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex  # type: ignore[import-untyped]  # no types-regex in the workspace's dev group

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
