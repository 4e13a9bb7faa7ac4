"""`skeino serve` and `skeino dev`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

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
    return parser


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
    settings.dev = getattr(args, "command", None) == "dev"
    settings.insecure = bool(getattr(args, "insecure", False))
    config = load_config(args.config, settings)
    # The graphs see langgraph.json's env as their process environment.
    for key, value in config.env.items():
        os.environ.setdefault(key, value)
    return config


def _banner(config: Config) -> str:
    base = f"http://{config.settings.host}:{config.settings.port}"
    return (
        f"\n  skeino {__version__} serving {len(config.graphs)} graph(s) from {config.config_path}\n"
        f"  API:    {base}\n  Docs:   {base}/docs\n  Studio: {base}/studio/\n"
        f"  Data:   {config.data_location}\n"
    )


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
    args = argparse.Namespace(config=os.environ["SKEINO_CONFIG"], host=None, port=None, db=None)
    return create_app(_load(args))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log_config = configure_logging(args.log_level, args.log_format)
    try:
        config = _load(args)
        from skeino.api.app import create_app
        from skeino.graphs import GraphRegistry

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
                  timeout_graceful_shutdown=int(settings.shutdown_grace) or None, timeout_keep_alive=75)
    if args.command == "dev":
        print(_banner(config), flush=True)
        os.environ["SKEINO_CONFIG"] = str(config.config_path)
        os.environ["SKEINO_HOST"] = settings.host  # the reloaded app checks Host names against it
        guard.audit.close()
        os.environ["SKEINO_LOG_FORMAT"], os.environ["SKEINO_LOG_LEVEL"] = args.log_format, args.log_level
        if args.db:
            os.environ["SKEINO_DB"] = str(settings.db_path)
        if settings.database_url:
            os.environ["SKEINO_DATABASE_URL"] = settings.database_url
        # Reload on code and config edits, never on the database the server itself writes.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        uvicorn.run("skeino.cli:app_factory", factory=True, reload=True, reload_dirs=[str(config.base_dir)],
                    reload_includes=["*.py", "*.json", ".env"], reload_excludes=[".skeino/*", "*.db*"],
                    **common)  # type: ignore[arg-type]
        return 0
    print(_banner(config), flush=True)
    uvicorn.run(app, **common)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
