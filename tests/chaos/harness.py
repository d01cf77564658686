"""The chaos run: real schedulers and publishers as OS processes, killed with SIGKILL again and
again, Redis restarted empty once, and platforms that fail, stall, drop connections and rate
limit, while a few thousand targets come due.

Three platforms take part, one of each delivery kind:

- ``mastodon`` over real HTTP to the fake Mastodon (it honours Idempotency-Key): random 5xx,
  answers slower than the client's timeout, accept-then-drop, 429 bursts;
- ``sandbox``, which has no idempotency at all and keeps a row per publish call, so a double
  publish shows up as two rows: reconciliation there is a lookup of its own record;
- ``telegram`` over real HTTP to the fake Bot API, which cannot be asked at all (bots cannot
  list what they sent): with the same faults, every request that may have landed and got no
  answer ends ``unknown``, and so does every one in flight when its publisher is killed.

The verdict comes from each platform's own record, not from Herald's tables. The report
says how many targets ended ``unknown`` and why; an unknown whose request never reached its
platform is allowed only for a request a killed publisher had marked as about to leave.
"""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.crypto import TokenCipher
from herald_common.db.models import (
    Notification,
    Post,
    PostTarget,
    PublishAttempt,
    SandboxPublication,
    SocialAccount,
)
from herald_common.ids import new_id
from herald_common.settings import Settings
from herald_dev.embedded_redis import server_binary
from herald_publisher.publish import ATTEMPT_CUT_OFF
from tests.conftest import free_port
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.telegram import FakeTelegram
from tests.services import service_env, spawn, stop

TERMINAL = ("published", "failed", "unknown", "cancelled")
PLATFORMS = ("mastodon", "sandbox", "telegram")
# At most this many targets per Telegram chat, under the 20 a minute a bot may send to one
# (herald_common.platforms.telegram), so the run is not a wait for the chat limit.
TARGETS_PER_CHAT = 15
# Why a target ended unknown, read from the start of its error (herald_publisher.publish).
CUT_OFF = "cut off after sending"
UNKNOWN_REASONS = (
    (ATTEMPT_CUT_OFF, CUT_OFF),
    ("no more retries", "asking kept failing"),
    ("forgets idempotency keys", "Mastodon's key window closed"),
    ("may have received", "answer lost after sending"),
)


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    targets: int = 200
    accounts_per_platform: int = 10
    publishers: int = 2
    schedulers: int = 2
    kill_every_seconds: float = 1.5
    kills: int = 4
    due_within_seconds: float = 3.0
    timeout_seconds: float = 150.0
    seed: int = 7


@dataclass
class ChaosReport:
    targets: int = 0
    published: int = 0
    duplicates: int = 0
    lost: int = 0
    unknown: int = 0
    failed: int = 0
    silent: int = 0  # failed/unknown without a notification
    kills: int = 0
    redis_restarts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    # (platform, why) of each unknown target, and those its platform never received, by why.
    unknown_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    unknown_never_received: Counter[str] = field(default_factory=Counter)
    # Claims never recorded (their publisher was killed, or its job timed out), and how the
    # targets they held ended, per platform: on Telegram, each that ended published had not
    # sent its request when it was cut off, and was sent without asking.
    claims_lost: Counter[tuple[str, str]] = field(default_factory=Counter)

    def table(self) -> str:
        rows: list[tuple[str, object]] = [
            ("targets", self.targets),
            ("published", self.published),
            ("duplicates", self.duplicates),
            ("lost", self.lost),
            ("unknown", self.unknown),
            *(
                (f"unknown: {platform}, {why}", count)
                for (platform, why), count in sorted(self.unknown_reasons.items())
            ),
            *(
                (f"unknown, never received: {why}", count)
                for why, count in sorted(self.unknown_never_received.items())
            ),
            ("failed", self.failed),
            ("without notification", self.silent),
            ("publishers killed", self.kills),
            *(
                (f"claims cut off: {platform}, ended {status}", count)
                for (platform, status), count in sorted(self.claims_lost.items())
            ),
            ("redis restarts", self.redis_restarts),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:>{width}}  {value}" for name, value in rows)


class RedisServer:
    """A Redis of the chaos run's own, on a free port, that can be killed and restarted empty."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or str(server_binary())
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    async def wait_ready(self) -> None:
        client = Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except (OSError, RedisConnectionError):
                    await asyncio.sleep(0.05)
            raise RuntimeError("chaos Redis did not start")
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True, slots=True)
class Seeded:
    target_ids: list[uuid.UUID]
    texts: dict[uuid.UUID, str]  # what each target posts: how Telegram's record names it
    platforms: dict[uuid.UUID, str]


async def _insert_targets(
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: uuid.UUID,
    plan: ChaosPlan,
    fake: FakeMastodon,
    telegram: FakeTelegram,
    cipher: TokenCipher,
) -> Seeded:
    now = clock.now()
    accounts: dict[str, list[dict[str, object]]] = {platform: [] for platform in PLATFORMS}
    for i in range(plan.accounts_per_platform):
        token = f"chaos-token-{i}"
        fake.add_account(token, f"user{i}")
        accounts["mastodon"].append(
            {"id": new_id(), "workspace_id": workspace_id, "platform": "mastodon",
             "external_id": fake.account_for(token).id, "handle": f"user{i}@mastodon.test",
             "instance_url": fake.base_url, "access_token_enc": cipher.encrypt(token)}
        )  # fmt: skip
        accounts["sandbox"].append(
            {"id": new_id(), "workspace_id": workspace_id, "platform": "sandbox",
             "external_id": f"chaos-{i}", "handle": f"chaos-{i}"}
        )  # fmt: skip
    chats = max(plan.accounts_per_platform, math.ceil(plan.targets / 3 / TARGETS_PER_CHAT))
    for i in range(chats):
        bot, chat = f"{7000 + i}:chaos-bot", f"-100{7000 + i}"
        telegram.add_bot(bot, chat)
        accounts["telegram"].append(
            {"id": new_id(), "workspace_id": workspace_id, "platform": "telegram",
             "external_id": chat, "handle": f"chaos-chat-{i}",
             "access_token_enc": cipher.encrypt(bot)}
        )  # fmt: skip
    posts, targets = [], []
    seeded = Seeded([], {}, {})
    rng = random.Random(plan.seed)
    for i in range(plan.targets):
        platform = PLATFORMS[i % len(PLATFORMS)]
        account = accounts[platform][(i // len(PLATFORMS)) % len(accounts[platform])]
        due = now + timedelta(seconds=1 + rng.random() * plan.due_within_seconds)
        post_id, target_id, text = new_id(), new_id(), f"chaos post {i}"
        posts.append(
            {"id": post_id, "workspace_id": workspace_id, "content": text,
             "scheduled_at": due, "status": "scheduled"}
        )  # fmt: skip
        targets.append(
            {"id": target_id, "workspace_id": workspace_id, "post_id": post_id,
             "account_id": account["id"], "platform": platform,
             "scheduled_at": due, "status": "pending"}
        )  # fmt: skip
        seeded.target_ids.append(target_id)
        seeded.texts[target_id] = text
        seeded.platforms[target_id] = platform
    async with sessions.begin() as session:
        await session.execute(
            insert(SocialAccount), [a for group in accounts.values() for a in group]
        )
        await session.execute(insert(Post), posts)
        await session.execute(insert(PostTarget), targets)
    return seeded


def _env(settings: Settings, redis_url: str, telegram_base: str) -> dict[str, str]:
    return service_env(
        settings.model_copy(update={"redis_url": redis_url}),
        HERALD_TELEGRAM_API_BASE=telegram_base,
        HERALD_PUBLISHER_PLATFORMS=",".join(PLATFORMS),
        HERALD_PUBLISHER_JOB_TIMEOUT_SECONDS="5",
        HERALD_PUBLISHER_CLAIM_LEASE_SECONDS="7",
        HERALD_PUBLISHER_RETRY_DELAYS_SECONDS="1,2,3",
        HERALD_SCHEDULER_REPAIR_GRACE_SECONDS="3",
        HERALD_SCHEDULER_REPAIR_INTERVAL_SECONDS="1",
        HERALD_HTTP_TIMEOUT_SECONDS="2",
        HERALD_SANDBOX_LATENCY_MS="30",
        HERALD_SANDBOX_FAILURE_RATE="0.05",
    )


async def run_chaos(
    plan: ChaosPlan,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: uuid.UUID,
    workdir: Path,
) -> ChaosReport:
    report = ChaosReport(targets=plan.targets)
    rng = random.Random(plan.seed)
    redis = RedisServer(workdir)
    redis.start()
    try:
        await redis.wait_ready()
    except BaseException:
        redis.kill()
        raise
    with FakeMastodon(tokens={}, domain="mastodon.test") as fake, FakeTelegram() as telegram:
        fake.chaos(seed=plan.seed, fail=0.05, slow=0.03, drop=0.03, rate_limit=0.02)
        telegram.chaos(seed=plan.seed + 1, fail=0.05, slow=0.03, drop=0.03, rate_limit=0.02)
        cipher = TokenCipher.from_settings(settings)
        seeded = await _insert_targets(sessions, workspace_id, plan, fake, telegram, cipher)
        target_ids = seeded.target_ids
        env = _env(settings, redis.url, telegram.base_url)
        schedulers = [spawn("herald-scheduler", env) for _ in range(plan.schedulers)]
        publishers = [spawn("herald-publisher", env) for _ in range(plan.publishers)]
        try:
            await _wreak_havoc(plan, rng, redis, env, publishers, schedulers, report)
            await _wait_until_settled(sessions, target_ids, plan.timeout_seconds)
        finally:
            stop(publishers + schedulers)
            redis.kill()
        fake.clear_faults()
        telegram.clear_faults()
        await _judge(sessions, seeded, fake, telegram, report)
    return report


async def _wreak_havoc(
    plan: ChaosPlan,
    rng: random.Random,
    redis: RedisServer,
    env: dict[str, str],
    publishers: list[subprocess.Popen[bytes]],
    schedulers: list[subprocess.Popen[bytes]],
    report: ChaosReport,
) -> None:
    """Kill a random publisher with SIGKILL every few seconds (and start a fresh one), and
    restart Redis empty once, halfway through."""
    for round_ in range(plan.kills):
        await asyncio.sleep(plan.kill_every_seconds)
        victim = rng.randrange(len(publishers))
        publishers[victim].kill()
        publishers[victim].wait()
        publishers[victim] = spawn("herald-publisher", env)
        report.kills += 1
        if round_ == plan.kills // 2:
            redis.kill()
            redis.start()
            await redis.wait_ready()
            report.redis_restarts += 1
        # A process that died of the Redis restart is replaced, as its pod would be.
        for group, name in ((publishers, "herald-publisher"), (schedulers, "herald-scheduler")):
            for i, process in enumerate(group):
                if process.poll() is not None:
                    group[i] = spawn(name, env)


async def _wait_until_settled(
    sessions: async_sessionmaker[AsyncSession], target_ids: list[uuid.UUID], timeout: float
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async with sessions() as session:
            unsettled = await session.scalar(
                select(func.count())
                .select_from(PostTarget)
                .where(PostTarget.id.in_(target_ids), PostTarget.status.not_in(TERMINAL))
            )
        if not unsettled:
            return
        await asyncio.sleep(0.5)


async def _judge(
    sessions: async_sessionmaker[AsyncSession],
    seeded: Seeded,
    fake: FakeMastodon,
    telegram: FakeTelegram,
    report: ChaosReport,
) -> None:
    """Compare Herald's view with each platform's own record."""
    target_ids = seeded.target_ids
    on_platform: Counter[str] = Counter(
        s.idempotency_key for s in fake.statuses if s.idempotency_key
    )
    sent_texts = Counter(m.text for m in telegram.messages)
    for target_id, text in seeded.texts.items():
        if seeded.platforms[target_id] == "telegram":
            on_platform[f"herald-{target_id}"] += sent_texts[text]
    async with sessions() as session:
        sandbox_rows = await session.execute(
            select(SandboxPublication.idempotency_key, func.count()).group_by(
                SandboxPublication.idempotency_key
            )
        )
        for key, count in sandbox_rows.all():
            on_platform[key] += count
        rows = (
            await session.execute(
                select(
                    PostTarget.id, PostTarget.status, PostTarget.platform, PostTarget.attempts,
                    PostTarget.error,
                ).where(PostTarget.id.in_(target_ids))
            )
        ).all()  # fmt: skip
        noted = set(
            await session.scalars(
                select(Notification.target_id).where(Notification.target_id.in_(target_ids))
            )
        )
        recorded = (
            await session.execute(
                select(PublishAttempt.target_id, func.count(func.distinct(PublishAttempt.attempt)))
                .where(PublishAttempt.target_id.in_(target_ids))
                .group_by(PublishAttempt.target_id)
            )
        ).all()
    attempts_recorded = dict(recorded)
    for target_id, status, platform, attempts, error in rows:
        report.statuses[status] += 1
        # Every claim but those cut off ends in an audit row of its attempt number.
        cut_off = max(0, attempts - attempts_recorded.get(target_id, 0))
        if cut_off:
            report.claims_lost[(platform, status)] += cut_off
        copies = on_platform[f"herald-{target_id}"]
        report.duplicates += max(0, copies - 1)
        if status == "published":
            report.published += 1
            report.lost += copies == 0  # Herald says published, the platform has nothing
        elif status in ("failed", "unknown"):
            report.failed += status == "failed"
            report.unknown += status == "unknown"
            report.silent += target_id not in noted
            # A failed target the platform did publish would be a post lost from view.
            report.lost += status == "failed" and copies > 0
            if status == "unknown":
                why = why_unknown(error or "")
                report.unknown_reasons[(platform, why)] += 1
                if copies == 0:
                    report.unknown_never_received[why] += 1
        else:
            report.lost += 1  # never settled


def why_unknown(error: str) -> str:
    """Why a target ended unknown, in the report's words (``other`` when unexplained)."""
    return next((why for start, why in UNKNOWN_REASONS if start in error), "other")
