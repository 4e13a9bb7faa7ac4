"""`skeino serve` and `skeino dev`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from skeino import __version__
from skeino.config import Config, ConfigError, Settings, load_config
from skeino.auth.guard import Guard, is_loopback_name
from skeino.logs import LOG_FORMATS, configure as configure_logging

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skeino", description="Agent server for LangGraph graphs.")
    parser.add_argument("--version", action="version", version=f"skeino {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("serve", "serve the API"), ("dev", "serve with auto-reload and a banner")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", default="langgraph.json", help="path to langgraph.json (default: ./langgraph.json)")
        p.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="port (default 2024)")
        p.add_argument("--db", default=None, help="SQLite file (default .skeino/skeino.db next to the config)")
        p.add_argument("--database-url", default=None,
                       help="postgresql://... to keep everything in Postgres (default: the SQLite file); "
                            "same as SKEINO_DATABASE_URL")
        p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        p.add_argument("--log-format", default=os.environ.get("SKEINO_LOG_FORMAT", "text"), choices=LOG_FORMATS,
                       help="text, or json: one JSON object per line with request and run ids")
        p.add_argument("--insecure", action="store_true",
                       help="serve a non-loopback address with no authentication (anyone who can reach it has full access)")
        p.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate (with --ssl-keyfile)")
        p.add_argument("--ssl-keyfile", default=None, help="the certificate's private key (with --ssl-certfile)")
        if name == "dev":
            _dev_flags(p)
        else:
            p.add_argument("--workers", type=int, default=1, metavar="N",
                           help="serve with N processes on one port; each is a replica, so this needs "
                                "SKEINO_DATABASE_URL (Postgres) and SKEINO_REDIS_URL")
    return parser


def _dev_flags(p: argparse.ArgumentParser) -> None:
    """The `langgraph dev` flags tutorials use: each is acted on, or refused by name (never silently ignored)."""
    p.add_argument("--no-reload", action="store_true", help="do not restart when code or config changes")
    p.add_argument("--no-browser", action="store_true",
                   help="accepted: skeino dev never opens a browser (the banner prints the Studio's address)")
    p.add_argument("--n-jobs-per-worker", type=int, default=None, metavar="N",
                   help="runs executed at once (same as SKEINO_MAX_CONCURRENT_RUNS)")
    p.add_argument("--allow-blocking", action="store_true",
                   help="accepted: skeino never raises on blocking calls in graph code")
    p.add_argument("--studio-url", default=None, metavar="URL",
                   help="a hosted Studio: printed with this server as its baseUrl, and its origin allowed to post")
    p.add_argument("--server-log-level", type=str.lower, default=None, choices=["debug", "info", "warning", "error"],
                   help="same as --log-level")
    p.add_argument("--debug-port", type=int, default=None, help="listen for a debugger (debugpy) on this port")
    p.add_argument("--wait-for-client", action="store_true",
                   help="with --debug-port: start serving only once a debugger attached")
    p.add_argument("--tunnel", action="store_true", help="not supported by skeino: refused")


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse, in one line naming the flag, what cannot work here."""
    if getattr(args, "tunnel", False):
        raise ConfigError("--tunnel is not supported: skeino opens no public tunnel; run one yourself (e.g. "
                          "cloudflared) and add its host name to SKEINO_ALLOWED_HOSTS")
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise ConfigError("--ssl-certfile and --ssl-keyfile must be given together")
    for flag, value in (("--ssl-certfile", args.ssl_certfile), ("--ssl-keyfile", args.ssl_keyfile)):
        if value is not None and not Path(value).is_file():
            raise ConfigError(f"{flag} {value}: file not found")
    if getattr(args, "n_jobs_per_worker", None) is not None and args.n_jobs_per_worker < 1:
        raise ConfigError("--n-jobs-per-worker must be at least 1")
    if getattr(args, "wait_for_client", False) and getattr(args, "debug_port", None) is None:
        raise ConfigError("--wait-for-client needs --debug-port")
    if getattr(args, "debug_port", None) is not None:
        try:
            import debugpy  # noqa: F401
        except ImportError:
            raise ConfigError("--debug-port needs debugpy, which is not installed (pip install debugpy)") from None
    if getattr(args, "studio_url", None):
        parts = urlsplit(args.studio_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--studio-url {args.studio_url!r} is not an http(s) URL")


def _start_debugger(port: int, wait: bool) -> None:
    """Listen for a debugger in the process that runs the graphs (the reloader's worker under reload)."""
    import debugpy

    debugpy.listen(("127.0.0.1", port))
    if wait:
        print(f"skeino: waiting for a debugger on port {port}", file=sys.stderr, flush=True)
        debugpy.wait_for_client()


def _load(args: argparse.Namespace) -> Config:
    settings = Settings.from_env()
    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.db:
        settings.db_path = Path(args.db).resolve()
    database_url = getattr(args, "database_url", None)
    if database_url:
        if not database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"--database-url must be a postgresql:// URL, not {database_url.split(':')[0]!r}")
        settings.database_url = database_url
    if getattr(args, "n_jobs_per_worker", None):
        settings.max_concurrent_runs = args.n_jobs_per_worker
    if getattr(args, "studio_url", None):
        settings.studio_url = args.studio_url.rstrip("/")
    settings.dev = getattr(args, "command", None) == "dev"
    settings.insecure = bool(getattr(args, "insecure", False))
    config = load_config(args.config, settings)
    # The graphs see langgraph.json's env as their process environment.
    for key, value in config.env.items():
        os.environ.setdefault(key, value)
    return config


def _banner(config: Config, tls: bool = False) -> str:
    from skeino.api.security import cors_options, describe_cors

    settings = config.settings
    base = f"{'https' if tls else 'http'}://{settings.host}:{settings.port}"
    hosted = f"  Hosted Studio: {settings.studio_url}/studio/?baseUrl={base}\n" if settings.studio_url else ""
    return (
        f"\n  skeino {__version__} serving {len(config.graphs)} graph(s) from {config.config_path}\n"
        f"  API:    {base}\n  Docs:   {base}/docs\n  Studio: {base}/studio/\n{hosted}"
        f"  Data:   {config.data_location}\n  Runs:   up to {settings.max_concurrent_runs} at once\n"
        f"  CORS:   {describe_cors(cors_options(config))}\n"
    )


def _check_data_folder(config: Config) -> None:
    """The SQLite file's folder exists or can be made (a read-only mount of the project, say)."""
    if config.settings.database_url:
        return
    folder = config.db_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {folder} for the SQLite database ({exc.strerror}): point SKEINO_DB "
                          "(or --db) at a writable path, or use --database-url") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{folder} is not writable, and the SQLite database lives there: point SKEINO_DB "
                          "(or --db) at a writable path, or use --database-url")


def _refuse_exposure(config: Config, guard: Guard) -> None:
    """No authentication on a non-loopback address is a choice the operator states (--insecure)."""
    settings = config.settings
    if is_loopback_name(settings.host) or guard.authenticating or config.auth.get("path"):
        return
    if settings.insecure:
        logging.getLogger("skeino").warning(
            "serving %s with no authentication (--insecure): anyone who can reach it has full access", settings.host)
        return
    raise ConfigError(f"refusing to serve {settings.host} with no authentication: set SKEINO_API_KEYS (see "
                      "docs/security.md), bind 127.0.0.1, or pass --insecure")


def app_factory():  # type: ignore[no-untyped-def]
    """Entry point for uvicorn's reloader: rebuilds the app from the environment."""
    from skeino.api.app import create_app

    configure_logging(os.environ.get("SKEINO_LOG_LEVEL", "info"), os.environ.get("SKEINO_LOG_FORMAT", "text"))
    # Only `skeino dev` reloads, so the rebuilt app is a development one.
    args = argparse.Namespace(config=os.environ["SKEINO_CONFIG"], host=None, port=None, db=None, command="dev")
    if os.environ.get("SKEINO_DEBUG_PORT"):
        _start_debugger(int(os.environ["SKEINO_DEBUG_PORT"]), os.environ.get("SKEINO_WAIT_FOR_CLIENT") == "1")
    return create_app(_load(args))


def serve_factory():  # type: ignore[no-untyped-def]
    """Entry point of each `skeino serve --workers N` process: one replica, named after its process."""
    from skeino.api.app import create_app

    configure_logging(os.environ.get("SKEINO_LOG_LEVEL", "info"), os.environ.get("SKEINO_LOG_FORMAT", "text"))
    base = os.environ.get("SKEINO_REPLICA_ID") or f"{socket.gethostname()}:{os.environ.get('SKEINO_PORT', '')}"
    os.environ["SKEINO_REPLICA_ID"] = f"{base}:{os.getpid()}"
    args = argparse.Namespace(config=os.environ["SKEINO_CONFIG"], host=None, port=None, db=None, command="serve")
    return create_app(_load(args))


# Seconds uvicorn waits for open streams beyond the shutdown grace: cancelled runs
# record their end (at most 5 s) and their streams close.
_STREAM_END_MARGIN = 7


def _serve_workers(args: argparse.Namespace, config: Config, common: dict[str, Any]) -> int:
    """Hand the port to uvicorn's N worker processes, each building its own app from the environment."""
    import uvicorn

    settings = config.settings
    env = {"SKEINO_CONFIG": str(config.config_path), "SKEINO_HOST": settings.host, "SKEINO_PORT": str(settings.port),
           "SKEINO_DATABASE_URL": settings.database_url or "", "SKEINO_LOG_FORMAT": args.log_format,
           # N processes on one database are replicas: without Redis, Postgres is their bus.
           "SKEINO_BUS": settings.bus or "postgres",
           "SKEINO_LOG_LEVEL": args.log_level, "SKEINO_MAX_CONCURRENT_RUNS": str(settings.max_concurrent_runs)}
    os.environ.update(env)
    # Each worker sets up its own logging (serve_factory); a logging config object does not
    # survive the trip to a spawned process.
    common = {k: v for k, v in common.items() if k != "log_config"}
    # A worker imports every graph before it answers the supervisor's health checks; the
    # default 5 s would have a busy machine kill workers that are only starting.
    uvicorn.run("skeino.cli:serve_factory", factory=True, workers=args.workers, timeout_worker_healthcheck=60,
                **common)  # type: ignore[arg-type]
    return 0


def _check_workers(args: argparse.Namespace, config: Config) -> None:
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    if workers > 1 and not config.settings.database_url:
        raise ConfigError("--workers N starts N replicas, which need a shared database: "
                          "set SKEINO_DATABASE_URL (postgresql://...)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "server_log_level", None):
        args.log_level = args.server_log_level
    log_config = configure_logging(args.log_level, args.log_format)
    try:
        _check_flags(args)
        config = _load(args)
        from skeino.api.app import create_app
        from skeino.graphs import GraphRegistry

        _check_workers(args, config)
        _check_data_folder(config)
        guard = Guard.from_config(config)
        _refuse_exposure(config, guard)
        registry = GraphRegistry.load(config)
        # Built here so a bad store.index (an embedding function that fails to load) is a
        # one-line refusal like every other configuration problem.
        app = create_app(config, registry, guard)
    except ConfigError as exc:
        print(f"skeino: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    import uvicorn

    settings = config.settings
    # A long keep-alive: clients (the SDK included) reuse pooled connections, and a
    # server closing one at the moment the client reuses it fails that request.
    common = dict(host=settings.host, port=settings.port, log_level=args.log_level,
                  **({"log_config": log_config} if log_config else {}),
                  timeout_graceful_shutdown=int(settings.shutdown_grace) or None, timeout_keep_alive=75,
                  ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    tls = args.ssl_certfile is not None
    reload = args.command == "dev" and not args.no_reload
    if args.command == "dev" and args.debug_port is not None and not reload:
        _start_debugger(args.debug_port, args.wait_for_client)
    if reload:
        print(_banner(config, tls), flush=True)
        os.environ["SKEINO_CONFIG"] = str(config.config_path)
        os.environ["SKEINO_HOST"] = settings.host  # the reloaded app checks Host names against it
        guard.audit.close()
        os.environ["SKEINO_LOG_FORMAT"], os.environ["SKEINO_LOG_LEVEL"] = args.log_format, args.log_level
        if args.db:
            os.environ["SKEINO_DB"] = str(settings.db_path)
        if settings.database_url:
            os.environ["SKEINO_DATABASE_URL"] = settings.database_url
        # The reloaded worker rebuilds its settings from the environment.
        os.environ["SKEINO_MAX_CONCURRENT_RUNS"] = str(settings.max_concurrent_runs)
        if settings.studio_url:
            os.environ["SKEINO_STUDIO_URL"] = settings.studio_url
        if args.debug_port is not None:
            os.environ["SKEINO_DEBUG_PORT"] = str(args.debug_port)
            os.environ["SKEINO_WAIT_FOR_CLIENT"] = "1" if args.wait_for_client else "0"
        # Reload on code and config edits, never on the database the server itself writes.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        uvicorn.run("skeino.cli:app_factory", factory=True, reload=True, reload_dirs=[str(config.base_dir)],
                    reload_includes=["*.py", "*.json", ".env"], reload_excludes=[".skeino/*", "*.db*"],
                    **common)  # type: ignore[arg-type]
        return 0
    print(_banner(config, tls), flush=True)
    if getattr(args, "workers", 1) > 1:
        guard.audit.close()
        return _serve_workers(args, config, common)
    _serve_draining(app, common)
    return 0


def _serve_draining(app: Any, options: dict[str, Any]) -> None:
    """Serve with uvicorn, telling the runtime as soon as a stop signal arrives.

    uvicorn first waits (up to its graceful timeout) for open connections and only then
    runs the app's shutdown. Told at the signal, the runtime stops taking runs and gives
    the running ones the grace period at once, so their open streams get the rest of
    their events and end with a complete body before uvicorn's timeout, which is set a
    little after the grace period.
    """
    import uvicorn

    runtime = app.state.runtime
    grace = runtime.settings.shutdown_grace
    options = {**options, "timeout_graceful_shutdown": int(grace) + _STREAM_END_MARGIN if grace else None}

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            loop = asyncio.get_event_loop()
            loop.call_soon_threadsafe(runtime.begin_shutdown)
            super().handle_exit(sig, frame)

    DrainingServer(uvicorn.Config(app, **options)).run()


if __name__ == "__main__":
    sys.exit(main())
