"""The embedding server's HTTP reference, rendered from its own OpenAPI schema.

``server_openapi()`` builds the FastAPI app with ``create_app`` exactly as
`deepimage serve` does (SqueezeNet on the CPU, loopback, no tokens) and asks it for
``app.openapi()``. Building the app only checks settings: the networks load in its
lifespan, which never runs here, so nothing is loaded, downloaded or started.
``render_openapi_reference()`` writes every path and method as Markdown: summary,
description, authentication, parameters, request body, responses, then the schemas.
"""
from __future__ import annotations

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def server_openapi() -> dict:
    """The OpenAPI document of a default server app (nothing loaded)."""
    from orangecontrib.deepimage.server.app import create_app
    from orangecontrib.deepimage.server.config import Settings
    # every field that could come from DEEPIMAGE_SERVER_* is given, so the
    # environment of whoever builds the docs changes nothing
    settings = Settings(host="127.0.0.1", models=["squeezenet"], weights=[], device="cpu",
                        tokens=[], token_file=None, random_weights=False)
    return create_app(settings).openapi()


def operations(spec: dict) -> "list[tuple[str, str, dict]]":
    """(path, METHOD, operation) for every operation in ``spec``, in schema order."""
    return [(path, method.upper(), item[method])
            for path, item in spec.get("paths", {}).items()
            for method in METHODS if method in item]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, no bare pipes)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _anchor(name: str) -> str:
    return "schema-" + name.lower()


def type_text(schema: "dict | None") -> str:
    """A short type for people: `string`, `array of number`, [ModelList](#schema-...)."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(type_text(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return "array of " + type_text(schema.get("items"))
    if kind == "string" and schema.get("format") == "binary":
        return "binary (file bytes)"
    if kind == "object" and schema.get("properties"):
        fields = ", ".join(f"`{name}`: {type_text(sub)}"
                           for name, sub in schema["properties"].items())
        return "object {" + fields + "}"
    return f"`{kind}`" if kind else "any"


def _parameters(operation: dict) -> "list[str]":
    params = operation.get("parameters") or []
    if not params:
        return []
    lines = ["**Parameters**", "", "| name | in | required | type | description |",
             "|---|---|---|---|---|"]
    for p in params:
        description = p.get("description") or p.get("schema", {}).get("description", "")
        lines.append(f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} "
                     f"| {_cell(type_text(p.get('schema')))} | {_cell(description)} |")
    return lines + [""]


def _request_body(operation: dict) -> "list[str]":
    body = operation.get("requestBody")
    if not body:
        return []
    lines = [f"**Request body** ({'required' if body.get('required') else 'optional'})", ""]
    if body.get("description"):
        lines += [body["description"], ""]
    for media, content in body.get("content", {}).items():
        schema = content.get("schema") or {}
        lines.append(f"- `{media}`: {type_text(schema)}")
        for name, sub in (schema.get("properties") or {}).items():
            required = "required" if name in schema.get("required", ()) else "optional"
            note = f": {sub['description']}" if sub.get("description") else ""
            lines.append(f"  - part `{name}` ({required}): {type_text(sub)}{note}")
    return lines + [""]


def _responses(operation: dict) -> "list[str]":
    responses = operation.get("responses") or {}
    if not responses:
        return []
    lines = ["**Responses**", "", "| status | meaning | body |", "|---|---|---|"]
    for status, response in responses.items():
        bodies = [f"`{media}`: {type_text(content.get('schema'))}"
                  for media, content in (response.get("content") or {}).items()]
        lines.append(f"| {status} | {_cell(response.get('description', ''))} "
                     f"| {_cell('; '.join(bodies) or '-')} |")
    return lines + [""]


def _auth(operation: dict, spec: dict) -> "list[str]":
    schemes = [name for requirement in operation.get("security") or () for name in requirement]
    if not schemes:
        return ["**Authentication**: none.", ""]
    described = []
    for name in schemes:
        scheme = spec.get("components", {}).get("securitySchemes", {}).get(name, {})
        if scheme.get("scheme") == "bearer":
            described.append("`Authorization: Bearer <token>`")
        else:
            described.append(f"`{name}`")
    return [f"**Authentication**: {', '.join(described)} when the server has access tokens.",
            ""]


def _operation(path: str, method: str, operation: dict, spec: dict) -> "list[str]":
    lines = [f"### `{method} {path}`", ""]
    if operation.get("summary"):
        lines += [operation["summary"].rstrip(".") + ".", ""]
    if operation.get("description"):
        lines += [operation["description"], ""]
    lines += _auth(operation, spec)
    lines += _parameters(operation)
    lines += _request_body(operation)
    lines += _responses(operation)
    return lines


def _schemas(spec: dict) -> "list[str]":
    schemas = spec.get("components", {}).get("schemas", {})
    if not schemas:
        return []
    lines = ["## Schemas", ""]
    for name, schema in schemas.items():
        lines += [f"({_anchor(name)})=", f"### {name}", ""]
        if schema.get("description"):
            lines += [schema["description"], ""]
        properties = schema.get("properties") or {}
        if properties:
            lines += ["| field | type | required | description |", "|---|---|---|---|"]
            for field, sub in properties.items():
                required = "yes" if field in schema.get("required", ()) else "no"
                lines.append(f"| `{field}` | {_cell(type_text(sub))} | {required} "
                             f"| {_cell(sub.get('description', ''))} |")
            lines.append("")
        else:
            lines += [f"Type: {type_text(schema)}.", ""]
    return lines


def render_openapi_reference(spec: "dict | None" = None) -> str:
    """Markdown for every operation of ``spec`` (the server's own by default), by tag."""
    spec = spec if spec is not None else server_openapi()
    info = spec.get("info", {})
    lines = [f"{info.get('description', '')}", "",
             f"Generated from the OpenAPI {spec.get('openapi', '')} schema of "
             f"*{info.get('title', 'the server')}* {info.get('version', '')}; a running server "
             f"serves the same schema at `/openapi.json` and an interactive page at `/docs`.",
             ""]
    by_tag: "dict[str, list]" = {}
    for path, method, operation in operations(spec):
        tag = (operation.get("tags") or ["Other"])[0]
        by_tag.setdefault(tag, []).append((path, method, operation))
    for tag, items in by_tag.items():
        lines += [f"## {tag}", ""]
        for path, method, operation in items:
            lines += _operation(path, method, operation, spec)
    lines += _schemas(spec)
    return "\n".join(lines)
