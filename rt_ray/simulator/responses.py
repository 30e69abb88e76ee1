"""What the simulator's routes share: the app's state key and the OpenAI-shaped error body."""

from __future__ import annotations

from aiohttp import web

STATE = web.AppKey("state", object)


def error_response(status: int, message: str, headers: dict | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "simulated", "code": status}}
    return web.json_response(body, status=status, headers=headers)
