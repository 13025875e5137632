"""Every JSON shape the API answers with, built from the core's rows and runtimes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.runtime import Providers
from ..registry import Registry
from ..store.integrations import account_of
from ..store.models import ConnectSession, Event, EventDelivery, Integration, iso_utc


def integration(row: Integration, providers: Providers, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """One integration as the API shows it: never a token, only whether there is one."""
    rt = providers.get(row.provider)
    out: dict[str, Any] = {
        "provider": row.provider,
        "title": rt.info.title if rt else row.provider,
        "status": row.status,
        "statusReason": row.status_reason,
        "account": account_of(row.meta),
        "scopes": list(row.scopes or []),
        "tokenExpiresAt": iso_utc(row.token_expiry),
        "hasCredentials": row.access_token is not None,
        "hasRefreshToken": row.refresh_token is not None,
        "connectedAt": iso_utc(row.created_at),
        "updatedAt": iso_utc(row.updated_at),
        "lastSyncAt": iso_utc(row.last_sync_at),
    }
    if summary is not None:
        out["stats"] = summary
    return out


def catalogue(providers: Providers, registry: Registry) -> dict[str, Any]:
    """The enabled providers, configured or not, with their actions; and the plugins that
    failed to load."""
    out = []
    for name in sorted(providers):
        rt = providers[name]
        info = rt.info
        out.append(
            {
                "name": name,
                "title": info.title,
                "description": info.description,
                "auth": info.auth,
                "configured": rt.configured,
                "problems": rt.problems,
                "scopes": list(rt.provider.scopes),
                "actions": [
                    {
                        "name": a.name,
                        "method": a.method,
                        "path": f"/api/integrations/{name}/{a.path}",
                        "summary": a.summary,
                        "inputSchema": a.input_schema,
                        "outputSchema": a.output_schema,
                        "examples": list(a.examples),
                    }
                    for a in rt.plugin.actions
                ],
            }
        )
    failures = [{"name": f.name, "source": f.source, "error": f.error} for f in registry.failures]
    return {"providers": out, "failures": failures}


def connect_session(row: ConnectSession, status: str, url: str | None = None) -> dict[str, Any]:
    """A connect session as its owner sees it (never its link's secret, except once in
    ``url`` when it is created)."""
    out: dict[str, Any] = {
        "id": row.id,
        "status": status,
        "providers": list(row.providers),
        "returnUrl": row.return_url,
        "openerOrigin": row.opener_origin,
        "connectedProvider": row.connected_provider,
        "createdAt": iso_utc(row.created_at),
        "expiresAt": iso_utc(row.expires_at),
        "openedAt": iso_utc(row.opened_at),
        "finishedAt": iso_utc(row.finished_at),
    }
    if url is not None:
        out["url"] = url
    return out


def event(row: Event, deliveries: Sequence[EventDelivery]) -> dict[str, Any]:
    """An event as the API and the CLI show it: the payload sent, and each delivery's state."""
    return {
        "id": row.event_id,
        "type": row.type,
        "status": row.status,
        "provider": row.provider,
        "createdAt": iso_utc(row.created_at),
        "payload": row.payload,
        "deliveries": [
            {
                "subscriber": d.subscriber,
                "state": d.state,
                "attempts": d.attempts,
                "nextAttemptAt": iso_utc(d.next_attempt_at) if d.state == "PENDING" else None,
                "lastStatus": d.last_status,
                "lastError": d.last_error,
                "deliveredAt": iso_utc(d.delivered_at),
            }
            for d in deliveries
        ],
    }
