"""Session 25's features, as the docs tell a new user about them.

docs/recipes.md has a recipe for CORS, rate limiting, a custom default backend, server aliases
and upstream-vhost (tests/test_docs_recipes.py runs every block of the page; here: the recipes
exist, are linked from the page's table, load with ``ingresslib check`` without a warning and
run). docs/asgi.md says what ``IngressASGI`` does with the same annotations: each claim is
checked here through ``IngressASGI``; docs/router.md documents ``RouteTable.alias_of``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib import IngressASGI
from ingresslib._cli import main as cli_main
from ingresslib.proxy import ProxySettings

from test_docs_recipes import PAGE, RECIPES, run_recipe

ROOT = Path(__file__).resolve().parent.parent
NEW = ("cors", "rate-limit", "default-backend", "server-alias", "upstream-vhost")


def manifests(name: str) -> str:
    first = RECIPES[name][0]
    assert first.lang == "yaml"
    return first.code


def resources(name: str) -> ingresslib.Resources:
    return ingresslib.parse_manifests(manifests(name))


def test_the_new_recipes_are_on_the_page_and_in_its_table() -> None:
    assert set(NEW) <= set(RECIPES)
    text = PAGE.read_text(encoding="utf-8")
    table = text[:text.index("<!-- recipe: helpers -->")]
    for anchor in ("#cross-origin-requests-cors", "#rate-limiting", "#a-custom-default-backend",
                   "#server-aliases", "#the-host-redirects-and-cookies-the-backend-sees-upstream-vhost"):
        assert f"]({anchor})" in table, anchor


@pytest.mark.parametrize("name", NEW)
def test_recipe_manifests_pass_check_without_a_warning(name: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(manifests(name), encoding="utf-8")
    assert cli_main(["check", "-f", str(path)]) == 0
    out = capsys.readouterr()
    # The default-backend recipe's rule Service has no ready endpoint on purpose: check says
    # that the default-backend Service serves its requests (one warning).
    expected = 1 if name == "default-backend" else 0
    assert f", {expected} warning(s)" in out.out, out
    if not expected:
        assert "warning:" not in out.out + out.err
    else:
        assert "the default-backend Service" in out.out + out.err


@pytest.mark.parametrize("name", NEW)
def test_recipe_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_recipe(name, tmp_path, capsys) >= 1


# --- docs/asgi.md's claims, through IngressASGI -------------------------------------------------


def call(app: IngressASGI, method: str, host: str, path: str,
         headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, dict[str, str]]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("192.0.2.10", 40000),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", host.encode())] + [(k.encode(), v.encode()) for k, v in headers]}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], {k.decode(): v.decode() for k, v in sent[0]["headers"]}


class Backend:
    """An ASGI app that records the scopes it gets and answers with the given headers."""

    def __init__(self, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.headers = list(headers)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": b""})

    def got(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.scopes[-1]["headers"] if k == name]


def test_asgi_cors_preflight_is_answered_without_the_app() -> None:
    api = Backend()
    app = IngressASGI(resources("cors"), {"shop/api:80": api})
    status, headers = call(app, "OPTIONS", "api.example.test", "/items",
                           (("origin", "https://app.example.test"),))
    assert status == 204 and not api.scopes
    assert headers["access-control-allow-origin"] == "https://app.example.test"
    assert "content-length" not in headers
    status, headers = call(app, "OPTIONS", "api.example.test", "/items",
                           (("origin", "https://evil.example.com"),))
    assert status == 200 and len(api.scopes) == 1
    assert not any(k.startswith("access-control-") for k in headers)


def test_asgi_rate_limit_status_is_the_settings() -> None:
    search = Backend()
    app = IngressASGI(resources("rate-limit"), {"shop/search:80": search},
                      settings=ProxySettings(limit_req_status_code=429))
    app.limit_clock = lambda: 100.0
    assert [call(app, "GET", "shop.example.test", "/search")[0] for _ in range(6)] == [200] * 5 + [429]
    assert len(search.scopes) == 5


@pytest.mark.parametrize("key", ["shop/maintenance:80", "shop/maintenance"])
def test_asgi_default_backend_app_gets_the_headers(key: str) -> None:
    shop, maintenance = Backend(), Backend()
    app = IngressASGI(resources("default-backend"), {"shop/shop:80": shop, key: maintenance})
    status, _ = call(app, "GET", "shop.example.test", "/cart", (("accept", "text/html"),))
    assert status == 200 and not shop.scopes and maintenance.scopes
    for name, value in ((b"x-code", b"503"), (b"x-format", b"text/html"), (b"x-namespace", b"shop"),
                        (b"x-ingress-name", b"shop"), (b"x-service-name", b"shop"),
                        (b"x-service-port", b"80")):
        assert maintenance.got(name) == [value], name


def test_asgi_upstream_vhost_and_response_rewrite() -> None:
    legacy = Backend(((b"location", b"http://legacy.internal/account"),
                      (b"set-cookie", b"sid=1; Domain=legacy.internal; Path=/")))
    app = IngressASGI(resources("upstream-vhost"), {"shop/legacy:80": legacy})
    status, headers = call(app, "GET", "shop.example.test", "/login")
    assert status == 200
    assert legacy.got(b"host") == [b"legacy.internal"]
    assert legacy.got(b"x-forwarded-host") == [b"shop.example.test"]
    assert legacy.scopes[-1]["server"] == ("127.0.0.1", 8000)
    assert headers["location"] == "https://shop.example.test/account"
    assert headers["set-cookie"] == "sid=1; Domain=shop.example.test; Path=/"


def test_asgi_and_router_pages_name_the_new_public_names() -> None:
    asgi = (ROOT / "docs" / "asgi.md").read_text(encoding="utf-8")
    for needle in ("limit_req_status_code", "app.rate_limits", "limit_clock", "default-backend",
                   "upstream-vhost", "cors-allow-origin"):
        assert needle in asgi, needle
    router = (ROOT / "docs" / "router.md").read_text(encoding="utf-8")
    assert "`RouteTable.alias_of(host)`" in router
