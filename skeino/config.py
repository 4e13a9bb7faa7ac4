"""langgraph.json + environment settings → one typed Config."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("skeino")

# Keys of langgraph.json that skeino reads; any other key is warned about, never fatal.
KNOWN_KEYS = {
    "graphs", "env", "dependencies", "store", "checkpointer", "auth", "http",
    # Read by the official CLI for image builds; meaningless for a local server.
    "python_version", "node_version", "dockerfile_lines", "pip_config_file",
    "image_distro", "pip_installer", "$schema", "api_version", "base_image",
    "keep_pkg_tools", "ui", "ui_config", "webhooks", "encryption",
}


# `http` keys skeino honours; any other is refused so no setting is silently dropped.
HTTP_KEYS = {
    "cors", "disable_assistants", "disable_threads", "disable_runs", "disable_store", "disable_meta",
    "disable_ui", "disable_mcp", "disable_a2a", "disable_webhooks", "webhooks",
}


# Options of the CORS middleware `http.cors` is handed to.
CORS_KEYS = {"allow_origins", "allow_methods", "allow_headers", "allow_credentials", "allow_origin_regex",
             "expose_headers", "max_age", "allow_private_network"}


class ConfigError(Exception):
    """A configuration problem the user must fix; the message names the file and key."""


@dataclass(frozen=True)
class GraphSpec:
    """One `graphs` entry: where to import the graph from."""

    graph_id: str
    path: str  # "./x.py:attr" or "pkg.module:attr"
    description: str | None = None


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ConfigError(f"environment variable {name} must be a positive number, not {value}")
    return value


def _not_negative(name: str, value: int) -> int:
    if value < 0:
        raise ConfigError(f"environment variable {name} must be 0 (no bound) or more, not {value}")
    return value


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no", "off")


@dataclass
class Settings:
    """Runtime settings from the environment (SKEINO_*), overridable by the CLI."""

    host: str = "127.0.0.1"
    port: int = 2024
    db_path: Path | None = None
    # postgresql://... selects the Postgres backend (several replicas may share it); SQLite otherwise.
    database_url: str | None = None
    database_pool_size: int = 20
    redis_url: str | None = None  # live events and cancel signals between replicas
    # What replicas share events, cancels and wake-ups through: "redis" (implied by redis_url),
    # "postgres" (LISTEN/NOTIFY on the database), or None: this server serves the database alone.
    bus: str | None = None
    replica_id: str | None = None  # names this process in run leases; host:port when unset
    run_lease_seconds: float = 30.0  # a replica that stops renewing loses its runs this long after
    max_concurrent_runs: int = 2048
    # Pending runs accepted before creation is refused (503 server-wide, 429 for one thread); 0: no bound.
    max_queued_runs: int = 10_000
    max_queued_runs_per_thread: int = 100
    run_timeout: float | None = None
    shutdown_grace: float = 10.0
    stream_keep_seconds: float = 10.0
    heartbeat_seconds: float = 15.0
    recovery: str = "error"  # what to do with runs found running after a crash: error | retry
    welcome_message: str = "Welcome to skeino: a LangGraph Platform-compatible agent server."
    # Large enough for a few images in a chat message; a 50 MB input would otherwise sit in memory.
    max_body_bytes: int = 10 * 1024 * 1024
    metrics: bool = True
    dev: bool = False  # `skeino dev`: open docs, the development CORS and origin defaults
    insecure: bool = False  # serve a non-loopback address with no authentication (--insecure)
    studio_url: str | None = None  # a hosted Studio (`skeino dev --studio-url`): its origin may post
    api_keys: str | None = None
    api_keys_file: Path | None = None
    rate_limit: str | None = None  # "N/second|minute|hour" per caller
    audit: str = "log"  # log | off | path of a JSON-lines file
    public_docs: bool = False  # /docs and /openapi.json without a key when keys are configured
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback ones, when bound to loopback
    # Hosts webhooks may reach; when set, only these ("*.example.com" matches subdomains).
    webhook_allowed_hosts: tuple[str, ...] = ()
    # Shifts the cron scheduler's clock: lets tests reach a schedule's next tick without waiting.
    clock_offset_seconds: float = 0.0
    # How long an Idempotency-Key is remembered after its request (a day, as payment APIs do).
    idempotency_ttl_seconds: float = 24 * 3600.0

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] = os.environ) -> "Settings":
        """Read SKEINO_* variables; invalid values raise ConfigError naming the variable."""

        def num(name: str, conv: Any, default: Any) -> Any:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                return conv(raw)
            except ValueError:
                raise ConfigError(f"environment variable {name}={raw!r} is not a valid number") from None

        recovery = env.get("SKEINO_RECOVERY", "error")
        if recovery not in ("error", "retry"):
            raise ConfigError(f"SKEINO_RECOVERY must be 'error' or 'retry', not {recovery!r}")
        db = env.get("SKEINO_DB")
        database_url = env.get("SKEINO_DATABASE_URL") or None
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"SKEINO_DATABASE_URL must be a postgresql:// URL, not {database_url.split(':')[0]!r}")
        lease = num("SKEINO_RUN_LEASE_SECONDS", float, cls.run_lease_seconds)
        redis_url = env.get("SKEINO_REDIS_URL") or None
        bus = (env.get("SKEINO_BUS") or "").strip().lower() or ("redis" if redis_url else None)
        if bus not in (None, "redis", "postgres"):
            raise ConfigError(f"SKEINO_BUS must be 'postgres' or 'redis', not {bus!r}")
        if bus == "redis" and not redis_url:
            raise ConfigError("SKEINO_BUS=redis needs SKEINO_REDIS_URL")
        if bus == "postgres" and redis_url:
            raise ConfigError("SKEINO_BUS=postgres and SKEINO_REDIS_URL name two buses: set one")
        if lease < 1:
            raise ConfigError(f"SKEINO_RUN_LEASE_SECONDS must be at least 1, not {lease}")
        return cls(
            host=env.get("SKEINO_HOST", cls.host),
            port=num("SKEINO_PORT", int, cls.port),
            db_path=Path(db) if db else None,
            database_url=database_url,
            database_pool_size=num("SKEINO_DATABASE_POOL_SIZE", int, cls.database_pool_size),
            redis_url=redis_url,
            bus=bus,
            replica_id=env.get("SKEINO_REPLICA_ID") or None,
            run_lease_seconds=lease,
            max_concurrent_runs=num("SKEINO_MAX_CONCURRENT_RUNS", int, cls.max_concurrent_runs),
            max_queued_runs=_not_negative("SKEINO_MAX_QUEUED_RUNS",
                                          num("SKEINO_MAX_QUEUED_RUNS", int, cls.max_queued_runs)),
            max_queued_runs_per_thread=_not_negative(
                "SKEINO_MAX_QUEUED_RUNS_PER_THREAD",
                num("SKEINO_MAX_QUEUED_RUNS_PER_THREAD", int, cls.max_queued_runs_per_thread)),
            run_timeout=num("SKEINO_RUN_TIMEOUT", float, None),
            shutdown_grace=num("SKEINO_SHUTDOWN_GRACE", float, cls.shutdown_grace),
            stream_keep_seconds=num("SKEINO_STREAM_KEEP_SECONDS", float, cls.stream_keep_seconds),
            heartbeat_seconds=num("SKEINO_HEARTBEAT_SECONDS", float, cls.heartbeat_seconds),
            recovery=recovery,
            welcome_message=env.get("SKEINO_WELCOME_MESSAGE") or cls.welcome_message,
            max_body_bytes=num("SKEINO_MAX_BODY_BYTES", int, cls.max_body_bytes),
            metrics=_flag(env.get("SKEINO_METRICS", "1")),
            api_keys=env.get("SKEINO_API_KEYS") or None,
            api_keys_file=Path(env["SKEINO_API_KEYS_FILE"]) if env.get("SKEINO_API_KEYS_FILE") else None,
            rate_limit=env.get("SKEINO_RATE_LIMIT") or None,
            audit=env.get("SKEINO_AUDIT") or cls.audit,
            public_docs=_flag(env.get("SKEINO_PUBLIC_DOCS", "0")),
            allowed_hosts=tuple(h.strip().lower() for h in env.get("SKEINO_ALLOWED_HOSTS", "").split(",") if h.strip()),
            webhook_allowed_hosts=tuple(
                h.strip().lower() for h in env.get("SKEINO_WEBHOOK_ALLOWED_HOSTS", "").split(",") if h.strip()
            ),
            clock_offset_seconds=num("SKEINO_CLOCK_OFFSET_SECONDS", float, 0.0),
            studio_url=env.get("SKEINO_STUDIO_URL") or None,
            idempotency_ttl_seconds=_positive("SKEINO_IDEMPOTENCY_TTL_SECONDS",
                                              num("SKEINO_IDEMPOTENCY_TTL_SECONDS", float, cls.idempotency_ttl_seconds)),
        )


@dataclass
class Config:
    """Everything the server needs to start, resolved and validated."""

    config_path: Path
    base_dir: Path
    graphs: list[GraphSpec]
    env: dict[str, str] = field(default_factory=dict)
    dependencies: list[Path] = field(default_factory=list)
    store: dict[str, Any] = field(default_factory=dict)
    checkpointer: dict[str, Any] = field(default_factory=dict)
    auth: dict[str, Any] = field(default_factory=dict)
    http: dict[str, Any] = field(default_factory=dict)
    webhooks: dict[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)

    @property
    def db_path(self) -> Path:
        """SQLite file: the setting if given, else `.skeino/skeino.db` next to langgraph.json."""
        if self.settings.db_path is not None:
            return self.settings.db_path
        return self.base_dir / ".skeino" / "skeino.db"

    @property
    def data_location(self) -> str:
        """Where the data lives, for humans: the Postgres server (no password) or the SQLite file."""
        url = self.settings.database_url
        if not url:
            return str(self.db_path)
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
        return f"postgresql://{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def _read_env(value: Any, base_dir: Path, path: Path) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        env_file = (base_dir / value).resolve()
        if not env_file.is_file():
            # As `langgraph dev` does: templates ship only `.env.example`, and must still start.
            logger.warning("%s: 'env' names %r, which does not exist; starting without it", path, value)
            return {}
        from dotenv import dotenv_values

        return {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    raise ConfigError(f"{path}: 'env' must be a path to a .env file or a mapping")


def _minutes(value: Any, where: str, path: Path) -> None:
    """TTLs and sweep intervals are minutes; fractions are allowed (short ones help tests)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ConfigError(f"{path}: '{where}' must be a positive number of minutes, got {value!r}")


def _check_store(store: dict[str, Any], path: Path) -> None:
    index = store.get("index")
    if index:
        if not isinstance(index, dict):
            raise ConfigError(f"{path}: 'store.index' must be an object with 'dims' and 'embed'")
        dims = index.get("dims")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
            raise ConfigError(f"{path}: 'store.index.dims' must be a positive integer, got {dims!r}")
        if not isinstance(index.get("embed"), str) or not index["embed"]:
            raise ConfigError(f"{path}: 'store.index.embed' must be 'provider:model' or './file.py:function'")
        fields = index.get("fields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
            raise ConfigError(f"{path}: 'store.index.fields' must be a list of strings")
    ttl = store.get("ttl")
    if ttl is not None:
        if not isinstance(ttl, dict):
            raise ConfigError(f"{path}: 'store.ttl' must be an object")
        for key in ("default_ttl", "sweep_interval_minutes"):
            _minutes(ttl.get(key), f"store.ttl.{key}", path)


def _check_thread_ttl(ttl: Any, path: Path) -> None:
    if ttl is None:
        return
    if not isinstance(ttl, dict):
        raise ConfigError(f"{path}: 'checkpointer.ttl' must be an object")
    strategy = ttl.get("strategy", "delete")
    if strategy != "delete":
        # keep_latest (prune instead of delete on expiry) is not implemented: refuse, never ignore.
        raise ConfigError(f"{path}: 'checkpointer.ttl.strategy' {strategy!r} is not supported; use 'delete'")
    for key in ("default_ttl", "sweep_interval_minutes"):
        _minutes(ttl.get(key), f"checkpointer.ttl.{key}", path)


def _check_cors(cors: Any, path: Path) -> None:
    if cors is None:
        return
    if not isinstance(cors, dict):
        raise ConfigError(f"{path}: 'http.cors' must be an object")
    unknown = sorted(set(cors) - CORS_KEYS)
    if unknown:
        known = ", ".join(sorted(CORS_KEYS))
        raise ConfigError(f"{path}: 'http.cors.{unknown[0]}' is not a CORS option (known: {known})")
    origins = cors.get("allow_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError(f"{path}: 'http.cors.allow_origins' must be a list of origins")
    if "*" in origins and cors.get("allow_credentials"):
        # With both, the middleware echoes any caller's origin and lets it send the user's credentials.
        raise ConfigError(f"{path}: 'http.cors' cannot allow every origin ('*') together with allow_credentials")


def load_config(path: str | os.PathLike[str], settings: Settings | None = None) -> Config:
    """Parse and validate langgraph.json; raise ConfigError with one clear line on any problem."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object")
    base_dir = path.parent

    for key in raw:
        if key not in KNOWN_KEYS:
            logger.warning("%s: unknown key %r ignored", path, key)

    graphs_raw = raw.get("graphs")
    if not isinstance(graphs_raw, dict) or not graphs_raw:
        raise ConfigError(f"{path}: 'graphs' must map at least one graph id to 'path.py:attr'")
    graphs: list[GraphSpec] = []
    for graph_id, spec in graphs_raw.items():
        description = None
        if isinstance(spec, dict):
            description = spec.get("description")
            spec = spec.get("path")
        if not isinstance(spec, str) or ":" not in spec:
            raise ConfigError(f"{path}: graph {graph_id!r} must be 'path.py:attr' or 'module:attr', got {spec!r}")
        graphs.append(GraphSpec(graph_id=graph_id, path=spec, description=description))

    deps_raw = raw.get("dependencies") or []
    if not isinstance(deps_raw, list):
        raise ConfigError(f"{path}: 'dependencies' must be a list")
    dependencies = []
    for dep in deps_raw:
        if not isinstance(dep, str):
            raise ConfigError(f"{path}: 'dependencies' entries must be strings")
        candidate = (base_dir / dep).resolve()
        # Entries that are not local paths are package names the user installs; nothing to add.
        if dep.startswith(".") or dep.startswith("/") or candidate.exists():
            dependencies.append(candidate)

    for key in ("store", "checkpointer", "auth", "http", "webhooks"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], dict):
            raise ConfigError(f"{path}: '{key}' must be an object")
    http = raw.get("http") or {}
    unsupported_http = sorted(set(http) - HTTP_KEYS)
    if unsupported_http:
        raise ConfigError(f"{path}: 'http.{unsupported_http[0]}' is not supported by this skeino version")
    _check_cors(http.get("cors"), path)
    store = raw.get("store") or {}
    checkpointer = raw.get("checkpointer") or {}
    _check_store(store, path)
    _check_thread_ttl(checkpointer.get("ttl"), path)
    auth = raw.get("auth") or {}
    unsupported_auth = sorted(set(auth) - {"path", "disable_studio_auth"})
    if unsupported_auth:
        raise ConfigError(f"{path}: 'auth.{unsupported_auth[0]}' is not supported by this skeino version")
    if "path" in auth and (not isinstance(auth["path"], str) or ":" not in auth["path"]):
        raise ConfigError(f"{path}: 'auth.path' must name the Auth object, like './auth.py:auth'")

    return Config(
        config_path=path,
        base_dir=base_dir,
        graphs=graphs,
        env=_read_env(raw.get("env"), base_dir, path),
        dependencies=dependencies,
        store=store,
        checkpointer=checkpointer,
        auth=auth,
        http=http,
        # The official CLI reads a top-level `webhooks`; `http.webhooks` is accepted as well.
        webhooks=raw.get("webhooks") or http.get("webhooks") or {},
        settings=settings or Settings.from_env(),
    )
