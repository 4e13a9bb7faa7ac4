"""Webhooks: which URLs a caller may name, and POSTing a run's final state to them.

A webhook URL comes from whoever may create runs, and the server sends the request from
inside its own network, so the target is checked twice: when the run (or cron) is created,
where a refusal is a 422 the caller sees, and again just before each delivery, since DNS
may answer differently by then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

from skeino import serde
from skeino.config import ConfigError, Settings
from skeino.errors import Invalid
from skeino.storage.base import Record, Storage

logger = logging.getLogger("skeino.webhooks")

_LOCALHOST_NAMES = {"localhost", "localhost.localdomain", "host.docker.internal"}
# Never a sensible webhook target, whatever the settings say (cloud metadata lives in link-local).
_ALWAYS_REFUSED = ("link-local", "multicast", "reserved", "unspecified")
_TEMPLATE = re.compile(r"\$\{\{\s*env\.([A-Za-z0-9_]+)\s*\}\}")


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _kind(ip: Address) -> str | None:
    """Why an address is special ('loopback', 'private', ...), or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip in ipaddress.ip_network("100.64.0.0/10") or ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    return None


@dataclass(frozen=True)
class WebhookPolicy:
    """The rules from SKEINO_WEBHOOK_ALLOWED_HOSTS and langgraph.json `webhooks.url`."""

    allowed_hosts: tuple[str, ...] = ()
    allow_loopback: bool = False
    allow_private: bool = False
    require_https: bool = False
    allowed_ports: tuple[int, ...] = ()
    max_url_length: int = 4096

    @classmethod
    def from_config(cls, settings: Settings, webhooks: dict[str, Any]) -> "WebhookPolicy":
        url = webhooks.get("url") or {}
        hosts = settings.webhook_allowed_hosts or tuple(h.strip().lower() for h in url.get("allowed_domains") or ())
        return cls(
            allowed_hosts=tuple(hosts),
            # Explicit opt-ins only: the official server's own flags, read the same way.
            allow_loopback=url.get("disable_loopback") is False,
            allow_private=url.get("disable_private_ips") is False,
            require_https=bool(url.get("require_https", False)),
            allowed_ports=tuple(int(p) for p in url.get("allowed_ports") or ()),
            max_url_length=int(url.get("max_url_length") or 4096),
        )

    def _listed(self, host: str) -> bool:
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self.allowed_hosts)

    async def check(self, url: str) -> None:
        """Raise Invalid (422) naming the reason when the server must not call `url`."""
        if len(url) > self.max_url_length:
            raise Invalid(f"Webhook URL is longer than {self.max_url_length} characters")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise Invalid(f"Webhook URL {url!r} must be an absolute http:// or https:// URL")
        if self.require_https and scheme != "https":
            raise Invalid("Webhook URL must use https")
        host = (parts.hostname or "").lower()
        if not host:
            raise Invalid(f"Webhook URL {url!r} has no host")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise Invalid(f"Webhook URL {url!r} has an invalid port") from None
        if self.allowed_ports and port not in self.allowed_ports:
            raise Invalid(f"Webhook port {port} is not allowed")
        if self.allowed_hosts:
            if not self._listed(host):
                raise Invalid(f"Webhook host {host!r} is not in the allowed hosts")
            return  # an operator named this host: trusted wherever it points
        if host in _LOCALHOST_NAMES and not self.allow_loopback:
            raise Invalid(f"Webhook host {host!r} is refused: loopback addresses are not allowed")
        for ip in await _resolve(host, port):
            kind = _kind(ip)
            refused = kind in _ALWAYS_REFUSED or (kind == "loopback" and not self.allow_loopback) or (
                kind == "private" and not self.allow_private)
            if refused:
                raise Invalid(f"Webhook host {host!r} is refused: {kind} addresses are not allowed "
                              "(allow the host with SKEINO_WEBHOOK_ALLOWED_HOSTS)")


async def _resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=5)
    except (OSError, TimeoutError):
        raise Invalid(f"Webhook host {host!r} could not be resolved") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _headers(webhooks: dict[str, Any]) -> dict[str, str]:
    """Static headers; `${{ env.NAME }}` is filled from the environment (NAME must start with env_prefix)."""
    prefix = webhooks.get("env_prefix") or "LG_WEBHOOK_"

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith(prefix):
            raise ConfigError(f"webhooks.headers may only read variables starting with {prefix!r}, not {name!r}")
        return os.environ.get(name, "")

    return {str(k): _TEMPLATE.sub(fill, str(v)) for k, v in (webhooks.get("headers") or {}).items()}


class WebhookSender:
    """Delivers webhooks in background tasks it owns; `stop` waits for them briefly, then cancels."""

    def __init__(self, policy: WebhookPolicy, storage: Storage, webhooks: dict[str, Any], *, disabled: bool = False,
                 timeout: float = 10.0, attempts: int = 5, backoff: float = 0.5) -> None:
        self.policy = policy
        self._storage = storage
        self._headers = _headers(webhooks)
        self._fields = set(webhooks.get("allowed_fields") or ())
        self._disabled = disabled
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def check(self, url: str | None) -> None:
        if url:
            await self.policy.check(url)

    def run_ended(self, run: Record, status: str, result: Any, started_at: str) -> None:
        """Hook for the end of every executed run: deliver its webhook, if it named one."""
        url = run["kwargs"].get("webhook")
        if not url or self._disabled:
            return
        ended_at = datetime.now(timezone.utc).isoformat()
        task = asyncio.get_running_loop().create_task(
            self._deliver(url, run, status, result, started_at, ended_at), name=f"skeino-webhook-{run['run_id']}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _payload(self, run: Record, status: str, result: Any, started_at: str, ended_at: str) -> Record:
        # As the official server sends it: the run, its final status and the thread's values
        # (plus `error` when it failed).
        error = result.get("__error__") if isinstance(result, dict) else None
        if error is None:
            values = {k: v for k, v in result.items() if not k.startswith("__")} if isinstance(result, dict) else result
        else:
            thread = await self._storage.thread_get(run["thread_id"])
            values = thread.get("values") if thread else None
        payload = {**run, "status": status, "updated_at": ended_at, "run_started_at": started_at,
                   "run_ended_at": ended_at, "webhook_sent_at": datetime.now(timezone.utc).isoformat(),
                   "values": values}
        if error is not None:
            payload["error"] = error
        return {k: v for k, v in payload.items() if k in self._fields} if self._fields else payload

    async def _deliver(self, url: str, run: Record, status: str, result: Any, started_at: str, ended_at: str) -> None:
        run_id = run["run_id"]
        try:
            body = serde.dumps(await self._payload(run, status, result, started_at, ended_at))
            for attempt in range(1, self._attempts + 1):
                try:
                    await self.policy.check(url)
                except Invalid as exc:
                    logger.warning("webhook for run %s not sent: %s", run_id, exc.detail)
                    return
                outcome = await self._post(url, body)
                retry = outcome is None or outcome >= 500
                logger.log(logging.WARNING if retry else logging.INFO, "webhook for run %s to %s, attempt %d/%d: %s",
                           run_id, url, attempt, self._attempts,
                           "connection failed" if outcome is None else f"HTTP {outcome}")
                if not retry:
                    return
                if attempt < self._attempts:
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            logger.warning("webhook for run %s to %s gave up after %d attempts", run_id, url, self._attempts)
        except Exception:  # a broken webhook must never take anything else down
            logger.exception("webhook for run %s failed", run_id)

    async def _post(self, url: str, body: bytes) -> int | None:
        """The response status, or None when no response came (connection error, timeout)."""
        if self._client is None:
            # No redirects: a public URL could otherwise bounce the request into the network.
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        try:
            response = await self._client.post(
                url, content=body, headers={**self._headers, "Content-Type": "application/json"})
        except httpx.HTTPError:
            return None
        return response.status_code

    async def stop(self, grace: float = 5.0) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
