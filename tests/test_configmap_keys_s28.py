"""Session 28, K1: ingress-nginx ConfigMap keys ingresslib ignored (warned "does not
implement") and now implements: ``block-user-agents``, ``block-referers`` (nginx.tmpl ``map
$http_user_agent $block_ua`` / ``$block_ref`` and ``if ($block_ua) { return 403; }`` in every
server block), ``skip-access-log-urls`` (``map $request_uri $loggable``) and
``disable-access-log`` (``access_log off;``). Each through the ConfigMap reader, the proxy core
(``Proxy.connection``), IngressASGI where it applies (the block lists: IngressASGI writes no
access log) and ``ProxyServer`` on 127.0.0.1 for the access log.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib._accesslog import AccessLog
from ingresslib._config import parse_config_data
from ingresslib._errors import ValidationError
from ingresslib.proxy import ProxySettings

from _budget import examples
from _proxy_harness import ProxyPair, status_of
from _upstream_helpers import TrackedUpstream, exchange, start_proxy
from test_perf_guards_s25 import python_calls

P = "nginx.ingress.kubernetes.io/"

M = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default, annotations: {ANN}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""


def manifests(annotations: dict[str, str] | None = None) -> str:
    ann = ", ".join(f'"{k}": "{v}"' for k, v in (annotations or {}).items())
    return M.replace("{ANN}", "{" + ann + "}")


def settings(data: dict[str, str]) -> ProxySettings:
    cfg = parse_config_data(data)
    assert cfg.warnings == ()
    return cfg.settings


def core(s: ProxySettings, head: str, ann: dict[str, str] | None = None,
         tls_hosts: tuple[str, ...] = ()) -> tuple[int, ProxyPair]:
    pair = ProxyPair(router=Router(parse_manifests(manifests(ann)), seed=1), settings=s,
                     tls_hosts=tls_hosts)
    out = pair.send((head + "\r\n\r\n").encode())
    return status_of(out), pair


def asgi(s: ProxySettings, path: str, headers: list[tuple[bytes, bytes]],
         ann: dict[str, str] | None = None, host: bytes = b"app.test") -> int:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    ingress = IngressASGI(parse_manifests(manifests(ann)), {"default/web": app}, settings=s)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "server": ("127.0.0.1", 80), "client": ("10.1.1.1", 4321), "scheme": "http",
             "method": "GET", "root_path": "", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [(b"host", host), *headers]}
    asyncio.run(ingress(scope, receive, send))
    return int(sent[0]["status"])


def both(s: ProxySettings, ua: str | None = None, referer: str | None = None,
         path: str = "/a", ann: dict[str, str] | None = None, host: str = "app.test") -> int:
    """The status of the proxy core and of IngressASGI (asserted equal)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    headers: list[tuple[bytes, bytes]] = []
    if ua is not None:
        lines.append(f"User-Agent: {ua}")
        headers.append((b"user-agent", ua.encode()))
    if referer is not None:
        lines.append(f"Referer: {referer}")
        headers.append((b"referer", referer.encode()))
    status, _ = core(s, "\r\n".join(lines), ann)
    other = asgi(s, path, headers, ann, host.encode())
    assert status == other, (status, other)
    return status


def _ua() -> ProxySettings:
    return settings({"block-user-agents": "~*bot, curl/7.1 , ~^Wget"})


# --- block-user-agents ----------------------------------------------------------------------


def test_block_user_agents_regex_and_exact_items_answer_403() -> None:
    UA = _ua()
    assert both(UA, ua="Mozilla/5.0 (compatible; Googlebot/2.1)") == 403
    assert both(UA, ua="GOOGLEBOT") == 403        # ~* ignores case
    assert both(UA, ua="CURL/7.1") == 403         # exact strings: ASCII case ignored (nginx hash)
    assert both(UA, ua="Wget/1.21") == 403
    assert both(UA, ua="Mozilla/5.0") == 200


def test_block_user_agents_exact_item_is_the_whole_value_and_tilde_is_case_sensitive() -> None:
    UA = _ua()
    assert both(UA, ua="curl/7.10") == 200        # exact, not a prefix
    assert both(UA, ua="wget/1.21") == 200        # ~ (not ~*): case-sensitive
    assert both(UA, ua="x Wget") == 200           # ^ anchors: unanchored search otherwise
    assert both(UA) == 200                        # no User-Agent: the empty value


def test_a_quoted_empty_item_blocks_requests_without_user_agent() -> None:
    s = settings({"block-user-agents": '""'})
    assert both(s) == 403
    assert both(s, ua="x") == 200


def test_block_comes_before_everything_of_the_server_block() -> None:
    UA = _ua()
    # nginx: the server block's "if ($block_ua)" (server rewrite phase) runs before the
    # location is found: before the 404 of an unknown host, the 413 of proxy-body-size and
    # force-ssl-redirect's 308 (and the access phase: auth, allow lists, block-cidrs).
    assert both(UA, ua="bot", host="other.test") == 403
    assert both(UA, ua="ok", host="other.test") == 404
    redirect = {P + "force-ssl-redirect": "true"}
    assert both(UA, ua="bot", ann=redirect) == 403
    assert both(UA, ua="ok", ann=redirect) == 308
    status, _ = core(UA, "POST /a HTTP/1.1\r\nHost: app.test\r\nUser-Agent: bot\r\n"
                         "Content-Length: 99999999", {P + "proxy-body-size": "1k"})
    assert status == 403
    assert both(UA, ua="bot", ann={P + "auth-type": "basic", P + "auth-secret": "nope"}) == 403
    assert both(UA, ua="ok", ann={P + "auth-type": "basic", P + "auth-secret": "nope"}) != 200


def test_block_referers() -> None:
    s = settings({"block-referers": r"~*://evil\.test(/|$), http://spam.test/"})
    assert both(s, referer="https://EVIL.test/page") == 403
    assert both(s, referer="http://spam.test/") == 403
    assert both(s, referer="http://spam.test/x") == 200
    assert both(s, referer="https://good.test/") == 200
    assert both(s, ua="bot") == 200  # the lists are separate


def test_second_user_agent_line_is_not_read_referer_lines_are_joined() -> None:
    # $http_user_agent is the first line (ngx_http_process_user_agent keeps the first);
    # $http_referer joins repeated lines with ", " (nginx >= 1.23).
    s = settings({"block-user-agents": "~bot", "block-referers": "a, b"})
    status, _ = core(s, "GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: ok\r\nUser-Agent: bot")
    assert status == 200
    status, _ = core(s, "GET / HTTP/1.1\r\nHost: app.test\r\nReferer: a\r\nReferer: b")
    assert status == 200  # "a, b" is no item: "a" and "b" are two exact items
    s2 = ProxySettings(block_referers=('"a, b"',))
    status, _ = core(s2, "GET / HTTP/1.1\r\nHost: app.test\r\nReferer: a\r\nReferer: b")
    assert status == 403


@pytest.mark.parametrize(("value", "reason"), [
    ("~(bot", "not a valid regex"),
    ("a, ,b", "an empty item"),
    ("Mozilla/5.0 (X11)", "end of the word"),
    ("default", "reserves"),
    ("curl, CURL", "twice"),
    ('"unclosed', "unclosed quote"),
])
def test_items_nginx_refuses_are_configmap_errors(value: str, reason: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_config_data({"block-user-agents": value})
    assert "data.block-user-agents" in str(e.value) and reason in str(e.value)


def test_keyword_argument_is_checked_too() -> None:
    with pytest.raises(ValueError, match="block_referers: .*not a valid regex"):
        ProxySettings(block_referers=("~[",))
    with pytest.raises(ValueError, match="skip_access_log_urls: an empty item"):
        ProxySettings(skip_access_log_urls=("",))


def test_quoted_items_and_nginx_escapes() -> None:
    from ingresslib.proxy._block import compile_map

    # (A "{" outside quotes ends nginx's word: a regex with braces must be quoted.)
    m = compile_map(('"Mozilla/5.0 (X11)"', "~*a\\sb", "\\\\default", '"~x{e<=1}"'))
    assert m.match(b"mozilla/5.0 (x11)")
    assert m.match(b"A B") and m.match(b"default")
    # PCRE's "{" is literal unless a quantifier: "regex"'s fuzzy {e<=1} is not read.
    assert m.match(b"x{e<=1}") and not m.match(b"y")


_WORD = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                               blacklist_characters=";{}\"'\\~"), min_size=1, max_size=12)


@hsettings(max_examples=examples(0.2), deadline=None)
@given(_WORD, st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=4))
def test_an_exact_item_is_the_whole_value_ignoring_ascii_case(word: str, extra: str) -> None:
    from ingresslib.proxy._block import compile_map

    if word in ("default", "include") or word.startswith("#"):  # ("#": a comment in nginx)
        return
    m = compile_map((word,))
    assert m.match(word.swapcase().encode())
    assert m.match((word + extra).encode()) == (extra == "")
    # ~* with the word escaped: the same strings, and anything containing it.
    r = compile_map(('"~*' + _regex_escape(word) + '"',))
    assert r.match(word.swapcase().encode()) and r.match((extra + word + extra).encode())


def _regex_escape(word: str) -> str:
    import re

    return re.escape(word).replace("\\", "\\\\").replace('"', '\\"')


def test_regex_classes_are_ascii() -> None:
    from ingresslib.proxy._block import compile_map

    # PCRE without UTF: \\w is [A-Za-z0-9_]; a Latin-1 byte is no word character.
    m = compile_map(("~^\\w+$",))
    assert m.match(b"abc_1") and not m.match("caf\xe9".encode("latin-1"))


# --- skip-access-log-urls / disable-access-log ---------------------------------------------


def _records(s: ProxySettings, target: str) -> list[bool]:
    _, pair = core(s, f"GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close")
    return [r.access_log for r in pair.records]


def test_skip_access_log_urls_match_request_uri_exactly_or_by_regex() -> None:
    s = settings({"skip-access-log-urls": "/health, ~^/metrics"})
    assert _records(s, "/health") == [False]
    assert _records(s, "/HEALTH") == [False]      # map strings ignore ASCII case
    assert _records(s, "/health?x=1") == [True]   # $request_uri holds the query
    assert _records(s, "/healthz") == [True]
    assert _records(s, "/metrics/x") == [False]
    assert _records(s, "/a") == [True]
    # The target as sent: "/./health" is not "/health" ($request_uri is not normalised).
    assert _records(s, "/./health") == [True]


def test_disable_access_log_logs_nothing() -> None:
    s = settings({"disable-access-log": "true"})
    assert _records(s, "/a") == [False]
    assert _records(s, "/nowhere") == [False]
    assert _records(settings({"disable-access-log": "false"}), "/a") == [True]


def test_proxy_server_access_log_skips_the_listed_urls() -> None:
    s = settings({"skip-access-log-urls": "/health"})

    async def run() -> list[str]:
        up = TrackedUpstream()
        await up.start()
        stream = io.StringIO()
        logger = logging.getLogger("ingresslib.test.k1")
        logger.propagate = False
        handler = logging.StreamHandler(stream)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        res = parse_manifests(manifests().replace("10.0.0.1", "127.0.0.1").replace(
            "8080", str(up.port)))
        server, port = await start_proxy(Router(res, seed=0), settings=s,
                                         on_record=AccessLog(logger))
        try:
            for path in ("/health", "/seen"):
                await exchange(port, f"GET {path} HTTP/1.1\r\nHost: app.test\r\n"
                                     "Connection: close\r\n\r\n".encode())
        finally:
            await server.shutdown(1)
            await up.stop()
            logger.removeHandler(handler)
        return stream.getvalue().splitlines()

    lines = asyncio.run(run())
    assert len(lines) == 1 and "/seen" in lines[0]


# --- the ConfigMap reader ------------------------------------------------------------------


def test_keys_are_read_not_warned_about() -> None:
    cfg = parse_config_data({"block-user-agents": "~bot", "block-referers": "x",
                             "skip-access-log-urls": "/h", "disable-access-log": "true"})
    assert cfg.warnings == ()
    s = cfg.settings
    assert (s.block_user_agents, s.block_referers, s.skip_access_log_urls,
            s.disable_access_log) == (("~bot",), ("x",), ("/h",), True)
    with pytest.raises(ValidationError):
        parse_config_data({"disable-access-log": "yes"})


# --- rule 19: a plain request does not call into proxy/_block.py ------------------------------


def _block_calls(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [x for x in seen if x[0] == "_block.py"]


def test_core_plain_request_calls_no_block_code() -> None:
    s = ProxySettings()
    core(s, "GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: bot")  # warm
    with python_calls() as seen:
        _records(s, "/a")
    assert seen and _block_calls(seen) == []


def test_asgi_plain_request_calls_no_block_code() -> None:
    s = ProxySettings()
    with python_calls() as seen:
        assert asgi(s, "/a", [(b"user-agent", b"bot")]) == 200
    assert seen and _block_calls(seen) == []


def test_the_guard_sees_the_block_code_when_configured() -> None:
    UA = _ua()
    with python_calls() as seen:
        assert asgi(UA, "/a", [(b"user-agent", b"bot")]) == 403
    assert _block_calls(seen)


def test_block_module_is_sans_io() -> None:
    # proxy/_block.py is a core module (the proxy core imports it): no I/O module, and only
    # core siblings (tests/test_proxy_connection.py's list of core modules).
    import ast
    from pathlib import Path

    import ingresslib.proxy as pkg

    tree = ast.parse((Path(pkg.__file__).parent / "_block.py").read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add(("." * node.level) + (node.module or "").split(".")[0])
    assert mods <= {"__future__", "functools", "collections", "typing", "regex", "time",
                    "._clientcert"}, mods
