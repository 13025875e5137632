"""The composition root: builds the hub's parts from the config, starts and stops them,
and hands out the services the web layer, the CLI and the tests use.

Nothing here does the work itself. Each use case lives in its own room:
:class:`~hub.core.connect.Connector` (connecting accounts),
:class:`~hub.core.manage.Manager` (refresh, status, disconnect, delete),
:class:`~hub.core.actions.ActionRunner` (provider actions) and
:class:`~hub.core.reports.Reports` (integrations, logs, statistics).
"""

from __future__ import annotations

from ..activity import ActivityWriter, Recorder
from ..events import EventService
from ..infra.auth import Caller, JWTVerifier
from ..infra.config import HubConfig
from ..infra.crypto import KeyRing
from ..infra.secrets import Secrets
from ..registry import Registry
from ..store.engine import create_engine, ping, sessionmaker, upgrade
from ..store.idempotency import IdempotencyStore
from ..store.integrations import IntegrationStore
from ..store.rowread import IntegrationReader
from ..store.sessions import ConnectSessionStore
from ..store.states import StateStore
from ..upstream import Upstream, UpstreamSettings
from .actions import ActionRunner
from .connect import Connector
from .idempotency import Idempotency
from .manage import Manager
from .proxy import ProxyRunner
from .hookcalls import IntegrationHooks
from .refresher import RefreshAhead
from .renewals import Renewals
from .reports import Reports
from .runtime import Providers
from .sessions import ConnectSessions
from .tokens import TokenSessions
from .tools import Tools
from .upkeep import ActivityUpkeep
from .webhooks import WebhookReceiver


class Hub:
    def __init__(self, config: HubConfig, registry: Registry, secrets_: Secrets) -> None:
        self.config = config
        self.registry = registry
        self.keyring = KeyRing.parse(secrets_.encryption_keys)
        auth = config.auth
        self.jwt = JWTVerifier(
            secret=secrets_.jwt_secret,
            public_key=auth.jwt_public_key,
            algorithms=auth.algorithms,
            issuer=auth.issuer,
            audience=auth.audience,
            leeway=auth.leeway_seconds,
        )
        db = config.database
        self.engine = create_engine(db.url, pool_size=db.pool_size, echo=db.echo)
        self.sessions = sessionmaker(self.engine)
        self.reader = IntegrationReader(db.url, pool_size=db.pool_size)
        up = config.upstream
        self.upstream = Upstream(
            UpstreamSettings(
                connect_timeout=up.connect_timeout,
                total_timeout=up.total_timeout,
                max_retries=up.max_retries,
                max_retry_wait=up.max_retry_wait,
                max_response_bytes=up.max_response_bytes,
                max_concurrency=up.max_concurrency,
                max_queue_wait=up.max_queue_wait,
            )
        )
        self.providers = Providers(config, registry, self.upstream)
        act = config.activity
        self.activity = ActivityWriter(self.sessions, flush_interval=act.flush_interval_ms / 1000, batch_size=act.batch_size, buffer_limit=act.buffer_limit)
        self.recorder = Recorder(
            self.activity, max_payload_bytes=act.max_payload_bytes, secrets=self.providers.secret_values, redaction=self.providers.redaction
        )
        self.upkeep = ActivityUpkeep(
            self.sessions, months_ahead=act.partition_months_ahead, retention_days=act.retention_days,
            prune=act.prune_in_background, interval_seconds=act.upkeep_interval_seconds,
        )
        self.store = IntegrationStore(self.sessions, self.reader, self.keyring)
        self.states = StateStore(
            self.sessions, self.keyring, ttl_seconds=config.security.state_ttl_seconds, max_per_user=config.security.max_pending_states
        )
        self.events = EventService(config.events, self.sessions, self.activity)
        self.tokens = TokenSessions(
            self.store, self.recorder, registry, self.events.outbox, refresh_margin_seconds=config.security.refresh_margin_seconds
        )
        ahead = config.refresh
        self.refresh_ahead = RefreshAhead(
            self.providers, self.store, self.tokens, ahead_seconds=ahead.ahead_seconds, interval_seconds=ahead.interval_seconds,
            batch_size=ahead.batch_size, concurrency=ahead.concurrency,
        )
        cs = config.connect_sessions
        session_store = ConnectSessionStore(self.sessions, ttl_seconds=cs.ttl_seconds, max_open_per_user=cs.max_open_per_user)
        self.connect = Connector(config, self.providers, registry, self.store, self.states, self.recorder, session_store, self.events.outbox)
        self.connect_sessions = ConnectSessions(config, self.providers, self.connect, session_store)
        self.hooks = IntegrationHooks(registry, self.tokens, self.recorder, lambda: config.public_url)
        rn = config.renewals
        self.renewals = Renewals(
            self.providers, self.store, self.hooks, ahead_seconds=rn.ahead_seconds, interval_seconds=rn.interval_seconds,
            lease_seconds=rn.lease_seconds, batch_size=rn.batch_size, concurrency=rn.concurrency,
        )
        self.manage = Manager(self.providers, registry, self.store, self.tokens, self.recorder, self.hooks)
        self.actions = ActionRunner(self.providers, registry, self.store, self.tokens, self.recorder)
        self.actions.public_url = lambda: config.public_url
        self.proxy = ProxyRunner(self.providers, registry, self.store, self.tokens, self.recorder)
        self.webhooks = WebhookReceiver(self.providers, registry, self.sessions, self.events.outbox, self.hooks)
        self.reports = Reports(self.providers, self.store, self.sessions, self.activity)
        idem = config.idempotency
        self.idempotency = Idempotency(
            IdempotencyStore(self.sessions, self.keyring, ttl_seconds=idem.ttl_seconds, lease_seconds=idem.lease_seconds),
            prune_interval=idem.prune_interval_seconds,
        )
        self.tools = Tools(self.providers, self.store, self.actions, self.connect_sessions, self.idempotency)

    async def start(self, *, migrate: bool = True) -> None:
        if migrate:
            await upgrade(self.engine)
        await self.upstream.start()
        await self.activity.start()
        await self.upkeep.start()
        await self.idempotency.start()
        await self.refresh_ahead.start()
        await self.renewals.start()
        await self.events.start()
        await self.connect_sessions.start_pruning()

    async def stop(self) -> None:
        await self.connect_sessions.stop_pruning()
        await self.events.stop()
        await self.renewals.stop()
        await self.refresh_ahead.stop()
        await self.idempotency.stop()
        await self.upkeep.stop()
        await self.activity.stop(timeout=self.config.server.shutdown_timeout)
        await self.upstream.close()
        await self.reader.close()
        await self.engine.dispose()

    async def ready(self) -> None:
        await ping(self.engine)

    def authenticate(self, header: str | None) -> Caller:
        return self.jwt.verify(header)

    def secret_values(self) -> list[str]:
        return self.providers.secret_values()

    async def integration_counts(self) -> dict[tuple[str, str], int]:
        return await self.store.counts()
