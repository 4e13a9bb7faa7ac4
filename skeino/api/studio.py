"""Serve the bundled Studio single-page app at /studio."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Scope
from starlette.responses import Response


def studio_dir() -> Path | None:
    try:
        path = Path(str(resources.files("skeino.studio")))
    except (ModuleNotFoundError, TypeError):
        return None
    return path if (path / "index.html").is_file() else None


def available() -> bool:
    return studio_dir() is not None


class _StudioFiles(StaticFiles):
    """Static files that browsers revalidate (ETag) on every load.

    Asset names carry no content hash, so a cached module could outlive an upgrade and
    mix with a fresh index.html; a revalidation costs one 304.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(app: FastAPI) -> None:
    folder = studio_dir()
    if folder is not None:
        app.mount("/studio", _StudioFiles(directory=folder, html=True), name="studio")
