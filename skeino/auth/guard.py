"""The access policy of one server: keys, rate limits, audit, hosts and origins, from its settings."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from skeino.auth.audit import Audit
from skeino.auth.custom import CustomAuth
from skeino.auth.keys import ApiKey, KeyRing
from skeino.auth.ratelimit import RateLimiter
from skeino.config import Config, ConfigError

# The hosted Studio sends JSON as text/plain, i.e. without a preflight; it must keep working in dev.
DEV_ORIGINS = ("https://smith.langchain.com", "https://eu.smith.langchain.com")
# Content types a browser sends cross-site without asking first (a "simple" request).
_SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")


def is_loopback_name(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def _loopback_host(host_header: str) -> bool:
    """Whether a Host header names this machine; asked on every request with the same few values."""
    return is_loopback_name(hostname(host_header))


def hostname(host_header: str) -> str:
    """The name in a Host header, without the port (IPv6 literals keep no brackets)."""
    return (urlsplit(f"//{host_header}").hostname or "").lower()


@dataclass
class Guard:
    keys: KeyRing
    limiter: RateLimiter | None
    audit: Audit
    loopback_only: bool  # answer only loopback Host names (DNS-rebinding defence)
    allowed_hosts: frozenset[str]
    allowed_origins: frozenset[str]
    open_docs: bool
    custom: CustomAuth | None = None  # langgraph.json auth.path

    @classmethod
    def from_config(cls, config: Config) -> "Guard":
        s = config.settings
        keys = KeyRing.from_settings(s.api_keys, s.api_keys_file)
        custom = CustomAuth.load(config)
        if custom is not None and keys:
            # Two answers to "who is calling" would make every decision ambiguous.
            raise ConfigError("custom auth (auth.path) and API keys (SKEINO_API_KEYS / SKEINO_API_KEYS_FILE) "
                              "cannot be combined: custom auth decides who a caller is; remove one of them")
        cors = config.http.get("cors") or {}
        origins = {o for o in cors.get("allow_origins", []) if o != "*"}
        if s.dev:
            origins.update(DEV_ORIGINS)
        if s.studio_url:
            parts = urlsplit(s.studio_url)
            origins.add(f"{parts.scheme}://{parts.netloc}")
        return cls(
            keys=keys,
            limiter=RateLimiter.parse(s.rate_limit),
            audit=Audit(s.audit),
            loopback_only=is_loopback_name(s.host),
            allowed_hosts=frozenset(s.allowed_hosts),
            allowed_origins=frozenset(origins),
            open_docs=s.dev or s.public_docs or not (keys or custom),
            custom=custom,
        )

    @property
    def authenticating(self) -> bool:
        return bool(self.keys) or self.custom is not None

    def host_allowed(self, host_header: str | None) -> bool:
        if not self.loopback_only or host_header is None:
            return True
        return _loopback_host(host_header) or hostname(host_header) in self.allowed_hosts

    def cross_site_refused(self, method: str, origin: str | None, content_type: str | None,
                           host_header: str | None) -> bool:
        """A state-changing request a browser sent from a foreign page without a preflight."""
        if method != "POST" or origin is None:
            return False
        mime = (content_type or "text/plain").split(";", 1)[0].strip().lower()
        if mime not in _SIMPLE_TYPES:
            return False  # a browser preflighted it, and CORS decided
        if origin in self.allowed_origins:
            return False
        origin_host = (urlsplit(origin).hostname or "").lower()
        if host_header is not None and urlsplit(origin).netloc.lower() == host_header.lower():
            return False  # same origin
        return not is_loopback_name(origin_host)

    def authenticate(self, api_key: str | None) -> ApiKey | None:
        return self.keys.lookup(api_key) if api_key else None
