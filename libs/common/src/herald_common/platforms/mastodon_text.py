"""How a Mastodon server counts a status: ``StatusLengthValidator``, not the web composer.

mastodon/mastodon ``app/validators/status_length_validator.rb`` checks
``[spoiler_text, countable_text(text)].join`` against 500 (``MAX_CHARS``; instances may raise
it) in grapheme clusters (``each_grapheme_cluster.size``):

- the content warning (``spoiler_text``) counts as written, links and mentions included;
- in the text (0 when it is blank), every link becomes a 23-character placeholder and every
  mention ``@user@domain`` becomes ``@user``; of overlapping entities the first wins
  (twitter-text's ``remove_overlapping_entities``).

Links are what twitter-text's Ruby gem 3.1.0 extracts (``extract_urls_with_indices`` with
``extract_url_without_protocol: false``: only links with a scheme), through the gem's
``valid_url`` as Mastodon's ``config/initializers/twitter_regex.rb`` redefines it: more schemes
(dat, dweb, ipfs, ipns, ssb, gopher, gemini), any non-space character in a path, its own set of
characters a path may not end with, and any non-ASCII character in a query. The domain rules
stay the gem's: a TLD on its list, no ``_`` outside subdomains, and a domain that IDNA 2003
(libidn's ``toASCII``, through idn-ruby) accepts; the link, domain punycoded, at most 4,096
characters. Mentions follow ``Account::MENTION_RE`` (``app/models/account.rb``) as Mastodon's
``app/lib/extractor.rb`` applies it.
"""

from __future__ import annotations

import stringprep
from functools import cache
from typing import Any

import regex  # type: ignore[import-untyped]  # no types-regex in the workspace's dev group

from herald_common.platforms.text import LATIN_ACCENTS, TextEntity, grapheme_count
from herald_common.platforms.twitter_text import (
    DIRECTIONAL_CHARACTERS,
    INVALID_CHARACTERS,
    MAX_TCO_SLUG_LENGTH,
    MAX_URL_LENGTH,
    SPACES,
    URL_PRECEDING,
    balanced_parens,
    domain_pattern,
)

# StatusLengthValidator::URL_PLACEHOLDER_CHARS, also published by the instance API as
# configuration.statuses.characters_reserved_per_url.
MASTODON_URL_LENGTH = 23
_URL_PLACEHOLDER = "x" * MASTODON_URL_LENGTH

# -- The gem's pieces (lib/twitter-text/regex.rb 3.1.0) --------------------------------------

# DOMAIN_VALID_CHARS: not a directional mark, ASCII punctuation (PUNCTUATION_CHARS, whose
# escapes leave the backslash out), a space or control character, or an invalid character.
_DOMAIN_CHAR = (
    "[^"
    + DIRECTIONAL_CHARACTERS
    + r"""!"#$%&'()*+,\-./:;<=>?@\[\]^_`{|}~"""
    + r"\x00-\x1f\x7f"
    + INVALID_CHARACTERS
    + SPACES
    + "]"
)
_PUNYCODE = r"(?:xn--[0-9a-z]+)"
# valid_general_url_path_chars of the gem: still inside the path-ending rule below, because
# the initializer builds that rule from the gem's balanced parentheses before redefining them.
_GEM_PATH_CHAR = (
    r"[a-z\p{Script=Cyrillic}0-9!\*';:=\+,\.\$/%#\[\]\p{Pd}_~&\|@" + LATIN_ACCENTS + "]"
)

# -- Mastodon's config/initializers/twitter_regex.rb ---------------------------------------------

_PATH_CHAR = r"[^\p{White_Space}<>()?]"
_PATH_ENDING = (
    r"""(?:[^\p{White_Space}()?!*"'「」<>;:=,.$%\[\]~&|@]|(?:"""
    + balanced_parens(_GEM_PATH_CHAR)
    + "))"
)
_BALANCED_PARENS = balanced_parens(_PATH_CHAR)
_PATH = (
    f"(?:(?:{_PATH_CHAR}*(?:{_BALANCED_PARENS}{_PATH_CHAR}*)*{_PATH_ENDING})|(?:{_PATH_CHAR}+/))"
)
# UCHARS: the non-ASCII characters RFC 3987 allows in an IRI.
_UCHARS = (
    r"\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef\U00010000-\U0001fffd\U00020000-\U0002fffd"
    r"\U00030000-\U0003fffd\U00040000-\U0004fffd\U00050000-\U0005fffd\U00060000-\U0006fffd"
    r"\U00070000-\U0007fffd\U00080000-\U0008fffd\U00090000-\U0009fffd\U000a0000-\U000afffd"
    r"\U000b0000-\U000bfffd\U000c0000-\U000cfffd\U000d0000-\U000dfffd\U000e1000-\U000efffd"
    r"\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
)
_QUERY_CHAR = r"[a-z0-9!?*'();:&=+$/%#\[\]\-_.,~|@\^" + _UCHARS + "]"
_QUERY_ENDING = r"[a-z0-9_&=#/\-" + _UCHARS + "]"


@cache
def _url() -> Any:
    """The gem's valid_url as the initializer redefines it (compiled on first use: it holds
    every TLD)."""
    return regex.compile(
        f"(?:{URL_PRECEDING})"
        "(?P<url>(?P<protocol>(?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://)?"
        f"(?P<domain>{domain_pattern(_DOMAIN_CHAR, _PUNYCODE)})"
        "(?::[0-9]+)?"
        f"(?:/{_PATH}*)?"
        f"(?:\\?{_QUERY_CHAR}*{_QUERY_ENDING})?)",
        regex.IGNORECASE,
    )


# The gem's valid_tco_url: a t.co link ends at its slug (no query, unlike twitter-text's JS).
_TCO_URL = regex.compile(r"^https?://t\.co/([a-z0-9]+)", regex.IGNORECASE)

# Account::USERNAME_RE (case-insensitive) and Account::MENTION_RE. Ruby's [[:word:]] is
# letters, marks, decimal digits and connector punctuation (Python's \w adds the joiners).
_WORD = r"\p{Alpha}\p{M}\p{Nd}\p{Pc}"
_USERNAME = r"(?i:[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)"
_MENTION = regex.compile(
    rf"(?<![=/{_WORD}])@(?P<name>(?P<user>{_USERNAME})(?:@[{_WORD}]+(?:[.-]+[{_WORD}]+)*)?)"
)
# twitter-text's end_mention_match: a mention followed by another at sign, an accented latin
# letter or "://" is not one.
_MENTION_INVALID_AFTER = regex.compile(rf"[@\uff20{LATIN_ACCENTS}]|://", regex.IGNORECASE)
_BLANK = regex.compile(r"\p{White_Space}*")


def mastodon_length(text: str, content_warning: str = "") -> int:
    """What StatusLengthValidator measures: the content warning as written, then the text
    with links as 23 characters and mentions without their domain, in grapheme clusters."""
    return grapheme_count(content_warning + _countable_text(text))


def extract_mastodon_urls(text: str) -> list[TextEntity]:
    """Every link Mastodon counts as 23 characters in a status's text."""
    if ":" not in text:
        return []
    urls = []
    for match in _url().finditer(text):
        protocol = match.group("protocol")
        if not protocol:
            continue  # extract_url_without_protocol: false
        url, start = match.group("url"), match.start("url")
        tco = _TCO_URL.match(url)
        if tco:
            if len(tco.group(1)) > MAX_TCO_SLUG_LENGTH:
                continue
            url = tco.group()
        if _is_valid_domain(len(url), match.group("domain")):
            urls.append(TextEntity(start, start + len(url), url))
    return urls


def extract_mastodon_mentions(text: str) -> list[TextEntity]:
    """Every ``@user`` / ``@user@domain`` Mastodon's Extractor finds in ``text``."""
    if "@" not in text and "\uff20" not in text:
        return []
    mentions = []
    for match in _MENTION.finditer(text):
        if _MENTION_INVALID_AFTER.match(text, match.end()):
            continue
        mentions.append(TextEntity(match.start(), match.end(), match.group()))
    return mentions


def _countable_text(text: str) -> str:
    """StatusLengthValidator#countable_text."""
    if _BLANK.fullmatch(text):
        return ""
    entities = [(url, _URL_PLACEHOLDER) for url in extract_mastodon_urls(text)]
    entities += [
        (mention, "@" + mention.text[1:].split("@", 1)[0])
        for mention in extract_mastodon_mentions(text)
    ]
    countable: list[str] = []
    position = 0
    for entity, counts_as in sorted(entities, key=lambda pair: pair[0].start):
        if entity.start < position:
            continue  # overlaps an entity already kept (remove_overlapping_entities)
        countable += (text[position : entity.start], counts_as)
        position = entity.end
    countable.append(text[position:])
    return "".join(countable)


def _is_valid_domain(url_length: int, domain: str) -> bool:
    """The gem's ``is_valid_domain``: IDNA 2003 must accept the domain, and the link, with the
    domain's punycode when longer, is at most 4,096 characters."""
    ascii_domain = _idna2003_to_ascii(domain)
    if ascii_domain is None:
        return False
    return url_length + max(len(ascii_domain) - len(domain), 0) <= MAX_URL_LENGTH


def _idna2003_to_ascii(domain: str) -> str | None:
    """libidn's ``idna_to_ascii_8z`` with no flags, as idn-ruby calls it: RFC 3490 ToASCII
    (Python's ``idna`` codec), which also refuses code points unassigned in Unicode 3.2
    (AllowUnassigned off; the codec alone lets them through)."""
    if any(stringprep.in_table_a1(character) for character in domain):
        return None
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
