"""The OpenAPI 3.1 document of the admin API, built from its route table and its pydantic models.

Nothing here is written by hand per route: a route added to ``ROUTES`` is described, and a model's
change changes its schema (pydantic's JSON Schema is the 2020-12 dialect OpenAPI 3.1 uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .api import PREFIX, Route
from .roles import roles_with
from .schemas import MAX_ID, ErrorView

REF = "#/components/schemas/{model}"
ERRORS = {400: "Not JSON", 401: "No valid token", 403: "The role may not do this", 404: "No such resource",
          409: "Changed meanwhile, or clashes with existing data", 413: "Body too large",
          422: "Invalid input (the field is named)", 428: "If-Match missing", 429: "Too many failed attempts"}


def _errors_of(route: Route) -> list[int]:
    codes = {401, 429}
    if route.permission is not None:
        codes.add(403)
    if route.path_ids or route.query is not None:
        codes.add(404)
    if route.body is not None:
        codes |= {400, 413, 422}
    if route.query is not None:
        codes.add(422)
    if route.method != "GET":
        codes.add(409)
    if route.if_match:
        codes.add(428)
    return sorted(codes)


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without pydantic's ``null`` branch: absent is how a parameter says none."""
    branches = schema.get("anyOf")
    if branches:
        kept = [b for b in branches if b.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            schema = {**rest, **kept[0]}
            if schema.get("default", 0) is None:
                schema.pop("default")
    return {k: v for k, v in schema.items() if k != "title"}


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}} for name in route.path_ids]
    if route.query is not None:
        schema = route.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            param = {"name": name, "in": "query", "required": name in required, "schema": _plain(prop)}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if route.if_match:
        params.append({"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"},
                       "description": "the ETag of the version this edit is based on"})
    return params


def _links(route: Route, routes: Sequence[Route]) -> dict[str, Any]:
    """From a route that makes a resource (201, answers its ``id``) to the routes of that resource, so a
    stateful run (schemathesis) goes on from what it created: read it, edit it with its ETag, delete it."""
    links: dict[str, Any] = {}
    for other in routes:
        if not other.path.startswith(route.path + "/{") or len(other.path_ids) != len(route.path_ids) + 1:
            continue
        params: dict[str, str] = {f"path.{name}": f"$request.path.{name}" for name in route.path_ids}
        params[f"path.{other.path_ids[-1]}"] = "$response.body#/id"
        if other.if_match and route.etag:
            params["header.If-Match"] = "$response.header.ETag"
        links[other.handler.__name__] = {"operationId": other.handler.__name__, "parameters": params}
    return links


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    keys: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorView, "serialization")]
    for route in routes:
        if route.body is not None:
            keys.append((route.body, "validation"))
        if route.answer is not None:
            keys.append((route.answer, "serialization"))
    keys = list(dict.fromkeys(keys))
    refs, defs = models_json_schema(keys, ref_template=REF)
    error_ref = refs[(ErrorView, "serialization")]
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.answer is not None:
            ok: dict[str, Any] = {"description": "OK" if route.status == 200 else "Created",
                                  "content": {"application/json": {"schema": refs[(route.answer, "serialization")]}}}
            if route.etag:
                ok["headers"] = {"ETag": {"description": "send it back as If-Match to edit",
                                          "schema": {"type": "string"}}}
            if route.status == 201 and (links := _links(route, routes)):
                ok["links"] = links
        elif route.media != ("application/json",):
            ok = {"description": "OK", "content": {media: {"schema": {"type": "string"}} for media in route.media}}
        else:
            ok = {"description": "No Content"}
        status = route.status if route.answer is not None or route.media == ("application/json",) else 200
        responses: dict[str, Any] = {str(status): ok}
        for code in _errors_of(route):
            responses[str(code)] = {"description": ERRORS[code],
                                    "content": {"application/json": {"schema": error_ref}}}
        allowed = ", ".join(roles_with(route.permission)) if route.permission else "every role"
        operation: dict[str, Any] = {
            "operationId": route.handler.__name__, "summary": route.summary, "tags": [route.tag],
            "description": f"Roles: {allowed}.", "security": [{"bearer": []}], "responses": responses,
        }
        if params := _parameters(route):
            operation["parameters"] = params
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": refs[(route.body, "validation")]}}}
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "engagebot admin API", "version": "1",
                 "description": "Operators' API: see docs/admin.md. Every call sends Authorization: Bearer <token>."},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@cache
def document() -> dict[str, Any]:
    from .routes import ROUTES

    return build_document(ROUTES)
