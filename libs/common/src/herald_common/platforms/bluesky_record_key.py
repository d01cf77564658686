"""Bluesky record keys derived from the target, so every attempt of a post writes the same key.

A PDS refuses to create a record whose key exists, so a retry collides instead of posting
twice, and whether a post landed is an exact ``getRecord`` of its key (bluesky.py).
"""

from __future__ import annotations

import hashlib

from herald_common.platforms.base import PublishRequest

# TID encoding (atproto.com/specs/tid): 13 characters of base32-sortable.
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_TID_LENGTH = 13
_MICROS_BITS = 53
_CLOCK_ID_BITS = 10


def record_key(request: PublishRequest, part: int = 0) -> str:
    """The record key of part ``part`` of the post ``request`` creates: the same for every
    attempt, and a valid TID (atproto.com/specs/tid), the post lexicon's key type, so posts
    made by Herald sort like ordinary ones.

    A TID is 64 bits: a zero, 53 bits of microseconds since the epoch, a 10-bit clock id.
    The time is the target id's UUIDv7 milliseconds (plus the part number in microseconds,
    so a thread's parts sort in order); the clock id comes from a hash of the idempotency
    key, so two targets created in the same millisecond still differ.
    """
    digest = hashlib.sha256(f"{request.idempotency_key}:{part}".encode()).digest()
    target = request.target_id
    if target.version == 7:
        micros = (target.int >> 80) * 1000 + part
    else:
        # No time in the id (only tests build such requests): any fixed 53-bit value works.
        micros = int.from_bytes(digest[:8], "big") >> 11
    clock_id = int.from_bytes(digest[8:10], "big") & ((1 << _CLOCK_ID_BITS) - 1)
    value = ((micros & ((1 << _MICROS_BITS) - 1)) << _CLOCK_ID_BITS) | clock_id
    chars = []
    for _ in range(_TID_LENGTH):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
