"""/runs/crons and /threads/{thread_id}/runs/crons routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from skeino.api.deps import CURSOR, paged, runtime
from skeino.api.inputs import JsonRoute
from skeino.api.responses import errors
from skeino.runtime.core import Runtime
from skeino.schemas import CronCount, CronCreate, CronPatch, CronSearch, ThreadCronCreate

router = APIRouter(tags=["crons"], route_class=JsonRoute, responses=errors(400, 404, 409, 501))


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(thread_id: str, body: ThreadCronCreate, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.crons.create(thread_id, body.data())


@router.post("/runs/crons")
async def create_cron(body: CronCreate, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.crons.create(None, body.data())


@router.post("/runs/crons/search")
async def search_crons(body: CronSearch, response: Response, cursor: str | None = CURSOR,
                       rt: Runtime = Depends(runtime)) -> Any:
    return paged(await rt.crons.search(body.data(), cursor), response)


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.crons.count(body.data())


@router.get("/runs/crons/{cron_id}")
async def get_cron(cron_id: str, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.crons.get(cron_id)


@router.patch("/runs/crons/{cron_id}")
async def patch_cron(cron_id: str, body: CronPatch, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.crons.patch(cron_id, body.data())


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: str, rt: Runtime = Depends(runtime)) -> Response:
    await rt.crons.delete(cron_id)
    return Response(status_code=204)
