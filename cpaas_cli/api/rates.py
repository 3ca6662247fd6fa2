"""Rates through the API (RIM-14, TEN-13): a reseller's users export the prices
they buy at, edit them, and import them into a plan their company owns.

``GET /v1/rates/export`` answers the coverage rows of one agreement
(``catalog.coverage``, as ``cpaas rates export``) as CSV, with the columns a
rate sheet import maps, or JSON. ``ownership.may_export`` decides what a caller
sees: an agreement of a company outside the key's scope is 404. Permission
``rates.export`` on the BackOffice side; a portal (client) user needs
``finance.view`` (the prices it buys at are finance data; the portal has no
``rates`` area).

``POST /v1/rates/import`` takes the sheet as the raw request body (CSV, TSV or
XLSX; its kind from ``filename``'s suffix, else from ``Content-Type``) and runs
``catalog.importer.run`` with the caller as principal: the service is looked up
among the ones the caller sees (404 otherwise), ``ownership.may_import`` refuses
one its company does not own (403). Permission ``rates.import`` (BackOffice only:
a portal user is 403). A replace that removes destinations needs
``confirm_removal=true`` (409 otherwise: the CLI asks, an API cannot); rows with
errors and nothing written are 422 with the errors; ``dry_run`` writes nothing.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.api.auth import Caller, CallerDep, require, session
from cpaas_cli.api.problems import ProblemError
from cpaas_cli.catalog import coverage, importer, ownership
from cpaas_cli.errors import Conflict, InvalidInput, Problem
from cpaas_cli.timeutil import TimeError, iso, parse_time

router = APIRouter(tags=["rates"])

# The route's own cap on a sheet; the ``[api] max_body_bytes`` limit of every request applies first.
MAX_SHEET_BYTES = 20 * 1024 * 1024
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Content-Type → suffix of the temporary file the importer reads (its readers go by suffix).
MEDIA_SUFFIX = {
    "text/csv": ".csv",
    "application/csv": ".csv",
    "text/tab-separated-values": ".tsv",
    XLSX_TYPE: ".xlsx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
}
SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".xls", ".ods")
PERMISSION = "rates.import"  # BackOffice only: the portal has no rates area
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@router.get(
    "/v1/rates/export",
    summary="The price of every destination of an agreement (as `cpaas rates export`), CSV or JSON",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export(
    request: Request,
    c: CallerDep,
    agreement: str = Query(max_length=64, description="Agreement code (or id)."),
    channel: str = Query("sms", max_length=32, description="Service domain: sms, rcs, whatsapp, ..."),
    at: str | None = Query(None, max_length=40, description="Prices in force at this time, UTC (default now)."),
    format: Literal["csv", "json"] = Query("csv", description="csv: the columns `rates import` maps; json: rows."),
) -> Any:
    when = clock.now()
    if at is not None:
        try:
            when = parse_time(at, "UTC")
        except TimeError as exc:
            raise InvalidInput(f"at: {exc}", problems=[Problem("at", str(exc))]) from exc
    with session(request, c) as s:
        ag = agreements.get(s, agreement)
        ownership.may_export(s, c.principal, ag)  # out of the key's scope: 404
        require(c, c.pick("rates.export", "finance.view"), ag.company_id, session=s)
        rows = coverage.rows(s, ag, when, channel.lower())
        code = ag.code
    if format == "json":
        return {"agreement": code, "at": iso(when), "channel": channel.lower(), "rows": rows}
    name = _SAFE_NAME.sub("_", code)[:60] or "agreement"
    return Response(
        coverage.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="coverage-{name}.csv"'},
    )


@router.post(
    "/v1/rates/import",
    summary="Import a rate sheet (the request body) under a node of a plan the caller's company owns",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def import_(
    request: Request,
    c: CallerDep,
    service: str = Query(max_length=200, description="Service (plan) name or id."),
    node: str = Query(max_length=500, description="Target node path, e.g. sms/sms_message/mt."),
    map_: list[str] = Query(
        alias="map",
        description="ATTR=COLUMN, repeated (as `rates import --map`): country, network, mccmnc, mcc, mnc, price, "
        "billing_rule, quantity_rule.",
    ),
    mode: Literal["merge", "replace"] = Query("merge"),
    duplicates: Literal["first", "last", "error"] = Query("error"),
    dry_run: bool = Query(False, description="Answer the change per destination; write nothing."),
    skip_invalid: bool = Query(False, description="Import the valid rows even if some are invalid."),
    confirm_removal: bool = Query(False, description="Needed when mode=replace removes destinations (409 else)."),
    scope: int | None = Query(None, description="Scope id; default the current (or only) scope."),
    sheet: str | None = Query(None, max_length=100, description="Worksheet name (XLSX); default the first."),
    header_row: int | None = Query(None, ge=1, le=1000, description="Row holding the column names."),
    create_node: bool = Query(False, description="Build `node` if missing (DOMAIN/RESOURCE/mt|mo)."),
    billing_rule: str = Query("submitted", max_length=20, description="With create_node."),
    quantity_rule: str = Query("segments", max_length=20, description="With create_node."),
    filename: str | None = Query(None, max_length=200, description="The sheet's file name; its suffix wins."),
) -> Any:
    if not c.principal.allows(PERMISSION):  # refused (and audited) before the body is read
        await run_in_threadpool(_check, request, c)
    suffix, name = _kind(request.headers.get("content-type"), filename)
    body = await _read(request)
    args = {
        "service_ref": service,
        "scope_id": scope,
        "node_path": node,
        "maps": importer.parse_maps(map_),
        "header_row": header_row,
        "duplicates": duplicates,
        "sheet": sheet,
        "mode": mode,
        "create_node": create_node,
        "billing_rule": billing_rule,
        "quantity_rule": quantity_rule,
        "dry_run": dry_run,
        "skip_invalid": skip_invalid,
    }
    return await run_in_threadpool(_import, request, c, body, name, suffix, confirm_removal, args)


def _check(request: Request, c: Caller) -> None:
    with session(request, c) as s:
        require(c, PERMISSION, c.company_id, session=s)


def _kind(content_type: str | None, filename: str | None) -> tuple[str, str]:
    """(suffix, file name) of the sheet: ``filename``'s suffix, else the media type's; 415 otherwise."""
    if filename:
        name = _SAFE_NAME.sub("_", Path(filename.replace("\\", "/")).name).lstrip(".")[:100]
        suffix = Path(name).suffix.lower()
        if suffix not in SUFFIXES:
            raise ProblemError(415, "unsupported-media-type", f"filename: a rate sheet is one of {', '.join(SUFFIXES)}")
        return suffix, name
    media = (content_type or "").split(";")[0].strip().lower()
    suffix = MEDIA_SUFFIX.get(media)
    if suffix is None:
        raise ProblemError(
            415,
            "unsupported-media-type",
            f"Content-Type {media or '(none)'!r}: send text/csv or {XLSX_TYPE}, or give filename=NAME.csv|.xlsx",
        )
    return suffix, f"upload{suffix}"


async def _read(request: Request) -> bytes:
    """The body, refused (413) as soon as it passes MAX_SHEET_BYTES."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_SHEET_BYTES:
            raise ProblemError(413, "payload-too-large", f"a rate sheet is at most {MAX_SHEET_BYTES} bytes")
        chunks.append(chunk)
    if not size:
        raise InvalidInput("body: the rate sheet is empty", problems=[Problem("body", "empty")])
    return b"".join(chunks)


def _import(
    request: Request, c: Caller, body: bytes, name: str, suffix: str, confirmed: bool, args: dict[str, Any]
) -> JSONResponse:
    def confirm(n: int) -> None:
        if not confirmed:
            exc = Conflict(
                f"mode=replace removes {n} destination{'s' if n != 1 else ''} that the sheet does not name; "
                "send confirm_removal=true to remove them (dry_run=true shows them); nothing was written"
            )
            exc.problem_fields = {"removed": n}  # type: ignore[attr-defined]
            raise exc

    with tempfile.TemporaryDirectory(prefix="cpaas-rates-") as tmp:
        path = Path(tmp) / (name if name.lower().endswith(suffix) else name + suffix)
        path.write_bytes(body)
        with session(request, c) as s:
            require(c, PERMISSION, c.company_id, session=s)
            result = importer.run(
                s, path=path, confirm_removal=confirm, actor=c.principal.actor, principal=c.principal, **args
            )
            if not result.written:
                s.rollback()  # a dry run (or rows refused) leaves nothing, not even a node it built
    data = result.as_dict()
    if result.errors and not result.written and not args["skip_invalid"]:
        problems = [Problem(str(e["column"]), str(e["reason"]), e["row"]) for e in result.errors[:100]]
        exc = InvalidInput.from_problems(problems, "rate sheet")
        exc.problem_fields = {"result": data}  # type: ignore[attr-defined]
        raise exc
    return JSONResponse(data, status_code=200)
