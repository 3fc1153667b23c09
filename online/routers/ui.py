"""The playground and dashboard page (/ui: static files from online/ui, no build step) and
the JSON it reads: GET /v1/dashboard and GET /v1/catalog (behind the read token).

The page's source holds no token: the user types them, the page keeps them in
sessionStorage and sends them as bearer headers (the write token only on POST /v1/events)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, RedirectResponse

from online.deps import ReadAuth, ReaderDep, SettingsDep
from online.routers.params import MAX_EXCLUDE, READ_ERRORS, SingleValued
from online.schemas import CatalogResponse
from online.services import dashboard as service
from online.services.common import guarded

UI_DIR = Path(__file__).resolve().parents[1] / "ui"
#: The page's files, by name (nothing else under online/ui is served).
UI_FILES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1", tags=["dashboard"], dependencies=[ReadAuth, SingleValued])


@pages.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@pages.get("/ui/")
async def ui_index() -> FileResponse:
    return _file("index.html")


@pages.get("/ui/{name}")
async def ui_file(name: str) -> FileResponse:
    if name not in UI_FILES:
        raise HTTPException(404, detail="not a file of the page")
    return _file(name)


@pages.get("/ui/reports/{path:path}", dependencies=[ReadAuth])
async def report_image(path: str, settings: SettingsDep) -> FileResponse:
    """One plot of a report (a path the dashboard lists in ``report_images``); behind the
    read token like the dashboard, so the page fetches it with the token and shows a blob."""
    found = service.report_file(settings, path)
    if found is None:
        raise HTTPException(404, detail="no such report image")
    return FileResponse(found)


def _file(name: str) -> FileResponse:
    # no-cache: a redeployed page is picked up on the next load (the files are tiny)
    return FileResponse(
        UI_DIR / name, media_type=UI_FILES[name], headers={"Cache-Control": "no-cache"}
    )


@api.get("/dashboard", responses=READ_ERRORS)
async def dashboard(reader: ReaderDep, settings: SettingsDep) -> dict[str, Any]:
    """The live publication (version, model, ds, weights, users, items), the streaming
    job's last batch per query (lag, freshness), Redis memory, and from MLflow the last
    nightly's step times, the last evaluation's metrics per model and the last experiment
    results per variant (with confidence intervals); ``report_images``: plots to fetch from
    /ui/reports/{path} (same token). A part with nothing to show is null or empty."""
    return await guarded(
        service.dashboard(reader, settings), max(settings.api_redis_deadline_seconds, 10.0)
    )


ItemIds = Annotated[
    str,
    Query(
        min_length=1,
        # bounded so the whole request line stays under the HTTP server's limit (uvicorn
        # answers an oversized one itself, with an undocumented 400)
        max_length=1200,
        description=f"Comma-separated item ids (at most {MAX_EXCLUDE}, 1200 characters).",
    ),
]


@api.get("/catalog", response_model=CatalogResponse, responses=READ_ERRORS)
async def catalog(ids: ItemIds, reader: ReaderDep, settings: SettingsDep) -> dict[str, Any]:
    """Catalog entries (title, category, available, price) of the given items as served:
    the live publication's, or what PUT /v1/items put over them since; an item neither
    knows maps to null."""
    items = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if not items or len(items) > MAX_EXCLUDE:
        raise HTTPException(422, detail=f"give 1 to {MAX_EXCLUDE} item ids")
    return await guarded(service.catalog(reader, items), settings.api_redis_deadline_seconds)


router = APIRouter()
router.include_router(pages)
router.include_router(api)
