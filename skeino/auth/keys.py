"""API keys with scopes, from SKEINO_API_KEYS or a keys file.

Keys are kept only as SHA-256 digests and compared in constant time, so neither the
process's memory dump nor a timing probe gives a key away.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from skeino.config import ConfigError

SCOPES = frozenset({
    "assistants:read", "assistants:write", "threads:read", "threads:write",
    "runs:read", "runs:write", "runs:cancel", "store:read", "store:write",
    "crons:read", "crons:write", "admin",
})


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _scopes(raw: object, where: str) -> frozenset[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        raise ConfigError(f"{where}: 'scopes' must be a non-empty list of scope names")
    unknown = sorted(set(raw) - SCOPES)
    if unknown:
        raise ConfigError(f"{where}: unknown scope {unknown[0]!r} (known: {', '.join(sorted(SCOPES))})")
    return frozenset(raw)


class KeyRing:
    """The configured keys; empty when API keys are not in use."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = keys

    def __bool__(self) -> bool:
        return bool(self._keys)

    def lookup(self, secret: str) -> ApiKey | None:
        digest = _digest(secret)
        found = None
        for key in self._keys:  # every key is compared, so the time does not say which matched
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found

    @classmethod
    def parse_env(cls, value: str) -> list[ApiKey]:
        """`key` (all scopes) or `key=scope,scope`, entries separated by `;`."""
        keys = []
        for n, entry in enumerate(filter(None, (e.strip() for e in value.split(";"))), start=1):
            secret, _, scopes = entry.partition("=")
            where = f"SKEINO_API_KEYS entry {n}"
            if len(secret.strip()) < 16:
                raise ConfigError(f"{where}: a key must be at least 16 characters")
            parsed = _scopes([s.strip() for s in scopes.split(",") if s.strip()], where) if scopes else frozenset({"admin"})
            keys.append(ApiKey(name=f"key-{n}", digest=_digest(secret.strip()), scopes=parsed))
        return keys

    @classmethod
    def parse_file(cls, path: Path) -> list[ApiKey]:
        """A JSON list of {"name", "key" or "sha256", "scopes"}."""
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"SKEINO_API_KEYS_FILE {path}: {exc}") from None
        if not isinstance(entries, list):
            raise ConfigError(f"SKEINO_API_KEYS_FILE {path}: must be a JSON list of keys")
        keys = []
        for n, entry in enumerate(entries, start=1):
            where = f"SKEINO_API_KEYS_FILE {path} entry {n}"
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ConfigError(f"{where}: each key needs a 'name'")
            if isinstance(entry.get("sha256"), str):
                try:
                    digest = bytes.fromhex(entry["sha256"])
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise ConfigError(f"{where}: 'sha256' must be 64 hex digits")
            elif isinstance(entry.get("key"), str) and len(entry["key"]) >= 16:
                digest = _digest(entry["key"])
            else:
                raise ConfigError(f"{where}: needs 'key' (16+ characters) or 'sha256'")
            keys.append(ApiKey(name=entry["name"], digest=digest, scopes=_scopes(entry.get("scopes"), where)))
        return keys

    @classmethod
    def from_settings(cls, env_value: str | None, file: Path | None) -> "KeyRing":
        keys = cls.parse_env(env_value) if env_value else []
        if file is not None:
            keys += cls.parse_file(file)
        return cls(keys)
