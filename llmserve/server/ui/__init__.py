"""`GET /ui`: a chat page over the OpenAI API this app serves, with the engine's facts.

Static files shipped in the package (static/: index.html, app.js, style.css; no build step,
no CDN: the page works on a machine without network). The browser does the work: it streams
`POST /v1/chat/completions`, reads `GET /info` and `GET /v1/models`. The routes are left out
of the OpenAPI schema (they serve files, not the API); a name that is not one of the shipped
files is the app's usual 404 ({"error": "no such path: ..."}), raised as Starlette's
HTTPException so that the app's handler answers it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent / "static"
# The files the page is made of, with their types: only these names are served (no path from
# the request ever reaches the filesystem).
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page and its assets change with the installed package: the browser revalidates them
# (ETag / Last-Modified from FileResponse) instead of running a stale app.js.
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter()


@router.get("/ui", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                        headers=NO_CACHE)


@router.get("/ui/static/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404)  # the app's handler: {"error": "no such path: ..."}
    return FileResponse(STATIC / name, media_type=media_type, headers=NO_CACHE)
