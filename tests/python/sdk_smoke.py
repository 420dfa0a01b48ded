"""Drives the server with the official MCP Python SDK (a client we did not write), in both
lifecycles, against a recording loopback portal. Exits non-zero on the first broken promise.

Usage: sdk_smoke.py <path to the server binary>
"""

import asyncio
import json
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mcp import Client, StdioServerParameters, types

SECRET = "pyS3cretW3bhook99"
RECEIVED: list[tuple[str, dict]] = []
ANSWERS = {
    "landing.site.getRights": {"result": ["read", "edit"]},
    "landing.site.setRights": {"result": True},
    "sonet_group.feature.access": {"error": "", "error_description": f"Wrong operation (/rest/1/{SECRET}/)"},
    "tasks.task.getaccess": {"result": {"allowedActions": []}},
    # The reads that guard landing.site.setRights: extended model, every code known.
    "landing.role.isEnabled": {"result": False},
}


class Portal(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        method = self.path.rsplit("/", 1)[-1].removesuffix(".json")
        RECEIVED.append((method, body))
        if method == "access.name":
            answer = {"result": {code: {"name": code, "provider": "", "provider_id": "other"} for code in body["ACCESS"]}}
        else:
            answer = ANSWERS[method]
        payload = json.dumps(answer).encode()
        self.send_response(400 if "error" in answer else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAIL: {message}")


def server_params(binary: str, url: str) -> StdioServerParameters:
    # Its own ledger file: the smoke test never writes the user's real state directory.
    ledger = os.path.join(tempfile.mkdtemp(prefix="b24-smoke-"), "ledger.sqlite3")
    return StdioServerParameters(
        command=binary,
        # Every tool, not only the default set: the SDK checks each one's schema.
        env={"BITRIX24_WEBHOOK_URL": url, "RUST_LOG": "warn", "BITRIX24_LEDGER": ledger, "BITRIX24_TOOLSETS": "all"},
    )


async def run(binary: str, url: str, mode: str) -> None:
    RECEIVED.clear()
    params = server_params(binary, url)
    async with Client(params, mode=mode) as client:
        check(client.instructions and "Bitrix24" in client.instructions, f"{mode}: instructions")
        expected_version = "2026-07-28" if mode == "auto" else None
        check(expected_version in (None, client.protocol_version), f"{mode}: negotiated {client.protocol_version}")
        tools = (await client.list_tools()).tools
        names = {t.name for t in tools}
        check({"landing_site_get_rights", "landing_site_set_rights", "sonet_group_feature_access",
               "tasks_task_get_access"} <= names, f"{mode}: seed tools listed: {names}")
        for t in tools:
            a = t.annotations
            check(t.title and t.output_schema and t.output_schema.get("type") == "object", f"{t.name}: title/outputSchema")
            check(None not in (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint),
                  f"{t.name}: all hints set")

        calls = [
            ("landing_site_get_rights", "landing.site.getRights", {"id": 645}, {"result": ["read", "edit"]}),
            ("tasks_task_get_access", "tasks.task.getaccess", {"taskId": 8017, "users": [503]}, {"result": {"allowedActions": {}}}),
        ]
        for name, method, args, expected in calls:
            before = len(RECEIVED)
            result = await client.call_tool(name, args)
            check(not result.is_error, f"{mode} {name}: {result}")
            check(result.structured_content == expected, f"{mode} {name}: {result.structured_content}")
            sent = [body for m, body in RECEIVED[before:] if m == method]
            check(sent == [args], f"{mode} {name}: forwarded once, verbatim: {sent}")

        # This client declared no elicitation: a write is never sent unasked; the user gets a link.
        before = len(RECEIVED)
        unasked = await client.call_tool("landing_site_set_rights", {"id": 645, "rights": {"AU": ["read"]}})
        text = unasked.content[0].text
        check(unasked.is_error and "/approve/" in text and "nothing has been sent" in text,
              f"{mode}: a client that cannot ask gets an approval link: {text}")
        check(SECRET not in text, f"{mode}: secret leaked: {text}")
        writes = [m for m, _ in RECEIVED[before:] if m == "landing.site.setRights"]
        check(writes == [], f"{mode}: a write reached the portal nobody approved: {writes}")

        before = len(RECEIVED)
        bad = await client.call_tool("tasks_task_get_access", {"taskId": "x"})
        check(bad.is_error and "taskId" in bad.content[0].text, f"{mode}: bad argument → tool error naming it")
        check(len(RECEIVED) == before, f"{mode}: bad argument reached the portal")

        err = await client.call_tool("sonet_group_feature_access", {"GROUP_ID": 1, "FEATURE": "chat", "OPERATION": "x"})
        text = err.content[0].text
        check(err.is_error and "What to do" in text, f"{mode}: portal error is actionable: {text}")
        check(SECRET not in text, f"{mode}: secret leaked: {text}")
        version = client.protocol_version
    print(f"python-sdk {mode}: ok (protocol {version}, {len(RECEIVED)} portal requests)")


async def confirm(binary: str, url: str, mode: str, action: str, apply: bool | None) -> None:
    """A client whose user answers the server's confirmation: only accept + apply writes."""
    RECEIVED.clear()
    asked: list[str] = []

    async def elicitation_callback(context, params):
        asked.append(params.message)
        check(params.requested_schema["properties"]["apply"]["type"] == "boolean", f"{mode}: form has apply")
        content = None if apply is None else {"apply": apply}
        return types.ElicitResult(action=action, content=content)

    async with Client(server_params(binary, url), mode=mode, elicitation_callback=elicitation_callback) as client:
        args = {"id": 645, "rights": {"AU": ["read"], "U1": ["read", "edit"]}}
        result = await client.call_tool("landing_site_set_rights", args)
        writes = [body for m, body in RECEIVED if m == "landing.site.setRights"]
        accepted = action == "accept" and apply is True
        check(len(asked) == 1, f"{mode} {action}: asked once: {asked}")
        check("every code not listed loses" in asked[0], f"{mode}: the message says what is lost: {asked[0]}")
        check(writes == ([args] if accepted else []), f"{mode} {action}/{apply}: writes {writes}")
        check(result.is_error != accepted, f"{mode} {action}: {result}")
        if not accepted:
            check("nothing was written" in result.content[0].text, f"{mode}: decline text {result.content[0].text}")
        history = await client.call_tool("permission_history", {})
        rows = history.structured_content["changes"]
        check([r["outcome"] for r in rows] == ["ok" if accepted else "declined"], f"{mode}: ledger {rows}")
    print(f"python-sdk {mode} elicitation {action}/{apply}: ok ({len(writes)} write)")


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/rest/1/{SECRET}/"
    for mode in ("legacy", "auto"):
        asyncio.run(run(sys.argv[1], url, mode))
        for action, apply in (("accept", True), ("accept", False), ("decline", None), ("cancel", None)):
            asyncio.run(confirm(sys.argv[1], url, mode, action, apply))
    server.shutdown()


if __name__ == "__main__":
    main()
