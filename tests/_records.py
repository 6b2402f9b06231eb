"""A ready-made ``RequestRecord`` for the access-log and metrics tests."""

from __future__ import annotations

from ingresslib.proxy._actions import RequestRecord


def rec(**kw: object) -> RequestRecord:
    """A proxied GET to ``shop/web`` (200, 30 ms); keyword arguments override fields."""
    base: dict[str, object] = dict(
        method="GET", host="foo.test", path="/api/users/7", query="x=1", rule_path="/api",
        ingress="shop/web", service="web", namespace="shop", canary=False, status=200,
        bytes_in=35, bytes_out=150, upstreams=(("10.0.0.1", 8080),), upstream_status=200,
        upstream_statuses=(200,), start=100.0, upstream_connect=100.002,
        upstream_first_byte=100.02, end=100.03, request_id="abc", client_ip="192.0.2.1",
        http_version="1.1", user_agent="curl/8", referer=None, upstream_response_length=100)
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]
