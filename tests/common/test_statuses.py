"""A post's status is derived from its targets; transitions are listed in one place."""

from __future__ import annotations

import pytest

from herald_common.statuses import (
    CLAIMABLE,
    TRANSITIONS,
    IllegalTransition,
    PostStatus,
    TargetStatus,
    check_transition,
    derive_post_status,
    sources_of,
)

T = TargetStatus


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([T.PENDING, T.ENQUEUED], PostStatus.SCHEDULED),
        ([T.PUBLISHED, T.ENQUEUED], PostStatus.PUBLISHING),
        ([T.RETRYING], PostStatus.PUBLISHING),
        ([T.PUBLISHED, T.PUBLISHED], PostStatus.PUBLISHED),
        ([T.PUBLISHED, T.CANCELLED], PostStatus.PUBLISHED),
        ([T.PUBLISHED, T.FAILED], PostStatus.PARTIALLY_PUBLISHED),
        ([T.UNKNOWN], PostStatus.NEEDS_ATTENTION),
        ([T.PUBLISHED, T.UNKNOWN], PostStatus.NEEDS_ATTENTION),
        ([T.FAILED, T.UNKNOWN], PostStatus.NEEDS_ATTENTION),
        ([T.UNKNOWN, T.CANCELLED], PostStatus.NEEDS_ATTENTION),
        ([T.UNKNOWN, T.ENQUEUED], PostStatus.SCHEDULED),
        ([T.UNKNOWN, T.RETRYING], PostStatus.PUBLISHING),
        ([T.FAILED, T.FAILED], PostStatus.FAILED),
        ([T.CANCELLED, T.CANCELLED], PostStatus.CANCELLED),
    ],
)
def test_post_status_summarises_targets(targets: list[TargetStatus], expected: PostStatus) -> None:
    assert derive_post_status(targets) is expected


def test_a_draft_stays_a_draft() -> None:
    assert derive_post_status([T.PENDING], draft=True) is PostStatus.DRAFT


def test_published_is_final_and_only_claims_lead_to_publishing() -> None:
    assert TRANSITIONS[T.PUBLISHED] == frozenset()
    assert sources_of(T.PUBLISHING) == CLAIMABLE
    assert sources_of(T.PUBLISHED) == {T.PUBLISHING, T.UNKNOWN}


def test_illegal_moves_are_refused_in_one_place() -> None:
    check_transition("enqueued", T.PENDING)
    check_transition("cancelled", T.CANCELLED)
    with pytest.raises(IllegalTransition):
        check_transition("published", T.PENDING)
    with pytest.raises(IllegalTransition):
        check_transition("publishing", T.CANCELLED)
