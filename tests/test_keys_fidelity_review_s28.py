"""Session 28, review R3 of the K1 keys (block-user-agents / block-referers,
skip-access-log-urls, no-tls-redirect-locations) and of F1's upstream head deadline: the
defects found, each through the proxy core (``Proxy.connection``) and, where it applies,
IngressASGI and ``explain``; and what was checked and found right, kept as regressions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

import ingresslib
from ingresslib import Router, parse_manifests
from ingresslib._config import parse_config_data
from ingresslib.proxy import ProxySettings, TimerKind

from _budget import examples
from _proxy_harness import ProxyPair, status_of
from test_configmap_keys_s28 import M, asgi, both, core, settings
from test_fidelity_s28 import HEAD, _silent

P = "nginx.ingress.kubernetes.io/"


# --- 1. no-tls-redirect-locations on a rule without annotations ----------------------------


def _rule(path: str, ann: str = "{}") -> str:
    return M.replace("{ANN}", ann).replace("{path: /,", "{path: " + path + ",")


def _core_status(s: ProxySettings, manifests: str, target: str,
                 tls_hosts: tuple[str, ...] = ()) -> int:
    pair = ProxyPair(router=Router(parse_manifests(manifests), seed=1), settings=s,
                     tls_hosts=tls_hosts)
    return status_of(pair.send(f"GET {target} HTTP/1.1\r\nHost: app.test\r\n\r\n".encode()))


def _asgi_status(s: ProxySettings, manifests: str, target: str) -> int:
    import asyncio

    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    ingress = ingresslib.IngressASGI(parse_manifests(manifests), {"default/web": app},
                                     settings=s)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "server": ("127.0.0.1", 80), "client": ("10.1.1.1", 4321), "scheme": "http",
             "method": "GET", "root_path": "", "path": target, "raw_path": target.encode(),
             "query_string": b"", "headers": [(b"host", b"app.test")]}
    asyncio.run(ingress(scope, receive, send))
    return int(sent[0]["status"])


def _explain_status(s: ProxySettings, manifests: str, target: str) -> int:
    doc = ingresslib.explain(parse_manifests(manifests), "http://app.test" + target,
                             settings=s)
    return int(doc["status"])


def test_unannotated_acme_rule_is_not_redirected_by_the_configmap_force_ssl_redirect() -> None:
    # A cert-manager HTTP-01 solver's Ingress: one rule /.well-known/acme-challenge/<token>,
    # no annotations. ingress-nginx: template.go locationConfigForLua "force_no_ssl_redirect
    # = isLocationInLocationList(l, all.Cfg.NoTLSRedirectLocations)" for that location, and
    # lua_ingress.lua redirect_to_https() "if location_config.force_no_ssl_redirect then
    # return false end" before force_ssl_redirect. ingresslib gave a rule without annotations
    # the shared default options (parsed with no rule path): 308, the challenge failed.
    s = settings({"force-ssl-redirect": "true"})
    m = _rule("/.well-known/acme-challenge/tok")
    target = "/.well-known/acme-challenge/tok"
    assert _core_status(s, m, target) == 200   # (was 308)
    assert _asgi_status(s, m, target) == 200   # (was 308)
    assert _explain_status(s, m, target) == 200  # (was 308)
    # Another rule of no annotations is still redirected.
    other = _rule("/app")
    assert _core_status(s, other, "/app") == 308
    assert _asgi_status(s, other, "/app") == 308
    assert _explain_status(s, other, "/app") == 308


def test_unannotated_rule_under_a_listed_location_is_not_redirected_to_its_tls_host() -> None:
    # ssl-redirect (default true) for a host with TLS: the same per-location exemption.
    m = _rule("/public/x")
    s = settings({"no-tls-redirect-locations": "/public"})
    assert _core_status(s, m, "/public/x", ("app.test",)) == 200  # (was 308)
    assert _core_status(ProxySettings(), m, "/public/x", ("app.test",)) == 308
    # The request's path does not count, the rule's does: a "/" rule is redirected.
    assert _core_status(s, _rule("/"), "/public/x", ("app.test",)) == 308


# --- 2. the block lists' regexes: one match timeout per lookup ---------------------------


def test_a_regex_timing_out_ends_the_lookup_with_the_default() -> None:
    # nginx: a regex failing with PCRE's match limit ends the map lookup (ngx_http_map_find:
    # "/* NGX_ERROR */ return NULL;"), the later regexes not tried, and the variable takes
    # the map's default. ingresslib tried each next regex with a fresh 50 ms.
    from ingresslib.proxy._block import compile_map

    m = compile_map(("~(a|a)+$", "~x"))
    assert m.match(b"x")
    assert not m.match(b"a" * 40 + b"b x")  # (was True, after 50 ms more per regex)


def test_all_regexes_of_a_lookup_share_one_match_timeout(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    # N regexes each backtracking to its own limit held the event loop N x 50 ms per
    # request (and again for the Referer): the lookup's regexes share one MATCH_TIMEOUT.
    from ingresslib.proxy import _block
    from ingresslib.proxy._clientcert import MATCH_TIMEOUT

    clock = [100.0]
    given_timeouts: list[float] = []

    class Slow:
        def search(self, text: str, timeout: float) -> None:
            given_timeouts.append(timeout)
            clock[0] += MATCH_TIMEOUT * 0.4  # each search runs for 40 % of the budget

    monkeypatch.setattr(_block, "_monotonic", lambda: clock[0], raising=False)
    m = _block.MapList(frozenset(), tuple(Slow() for _ in range(10)))
    assert not m.match(b"value")
    assert len(given_timeouts) == 3  # (was 10, each given the whole MATCH_TIMEOUT)
    assert given_timeouts[0] == MATCH_TIMEOUT
    assert given_timeouts[1] == pytest.approx(MATCH_TIMEOUT * 0.6)
    assert given_timeouts[2] == pytest.approx(MATCH_TIMEOUT * 0.2)


def test_a_timed_out_user_agent_regex_is_the_default_through_core_and_asgi() -> None:
    s = ProxySettings(block_user_agents=("~(a|a)+$", "~*bot"))
    assert both(s, ua="a" * 40 + "b bot") == 200  # (was 403)
    assert both(s, ua="a bot") == 403


# --- checked and right: the block on every server block, header forms -------------------


_UA_ITEMS = st.lists(st.sampled_from(["~*bot", "curl/7.1", "~^Wget", '""', '"~[0-9]{3}"',
                                      "~*\\sx$", "Mozilla/5.0"]),
                     min_size=1, max_size=3, unique=True)
_VALUE = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                      max_size=12).map(str.strip),
                   st.sampled_from(["Googlebot", "CURL/7.1", "Wget/1", "a 123", "b X",
                                    "mozilla/5.0"]))


@hsettings(max_examples=examples(0.1), deadline=None)
@given(_UA_ITEMS, _VALUE, _VALUE)
def test_core_and_asgi_agree_on_random_values(items: list[str], ua: str | None,
                                              referer: str | None) -> None:
    s = ProxySettings(block_user_agents=tuple(items), block_referers=tuple(items))
    from ingresslib.proxy._block import compile_map

    m = compile_map(tuple(items))
    expected = 403 if m.match(None if ua is None else ua.encode()) or m.match(
        None if referer is None else referer.encode()) else 200
    assert both(s, ua=ua, referer=referer) == expected


def test_header_tricks_do_not_escape_and_do_not_over_block() -> None:
    s = settings({"block-user-agents": "~*bot"})
    base = "GET / HTTP/1.1\r\nHost: app.test\r\n"
    # obs-fold: nginx refuses a header line starting with whitespace (400), so does the core.
    assert core(s, base + "User-Agent: ok\r\n bot")[0] == 400
    # The name's case does not matter; the value's spaces around it are not part of it.
    assert core(s, base + "uSeR-aGeNt:   BoT   ")[0] == 403
    # An empty first User-Agent line is $http_user_agent (ngx_http_process_user_agent keeps
    # the first line): a second line is not read.
    assert core(s, base + "User-Agent:\r\nUser-Agent: bot")[0] == 200
    # Bytes past ASCII (sent as UTF-8): nginx lower-cases ASCII letters only.
    u = ProxySettings(block_user_agents=("caf\u00e9",))
    assert both(u, ua="CAF\u00e9") == 403
    assert both(u, ua="caf\u00c9") == 200


def test_block_runs_for_unknown_hosts_websockets_and_the_fallback_app() -> None:
    import asyncio

    s = settings({"block-user-agents": "~*bot"})
    # The catch-all server "_" has the if too.
    assert both(s, ua="bot", host="nowhere.test") == 403
    sent: list[Any] = []

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        sent.append("fallback")

    ingress = ingresslib.IngressASGI(parse_manifests(M.replace("{ANN}", "{}")), {},
                                     settings=s, fallback=fallback)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for kind, host in (("websocket", b"app.test"), ("http", b"other.test")):
        sent.clear()
        scope = {"type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "server": ("127.0.0.1", 80), "client": ("10.1.1.1", 1),
                 "scheme": "ws" if kind == "websocket" else "http", "method": "GET",
                 "root_path": "", "path": "/a", "raw_path": b"/a", "query_string": b"",
                 "headers": [(b"host", host), (b"user-agent", b"Bot")],
                 "extensions": {"websocket.http.response": {}}}
        asyncio.run(ingress(scope, receive, send))
        assert "fallback" not in sent and sent[0]["status"] == 403, sent
    # A websocket upgrade through the core.
    status, _ = core(s, "GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nUser-Agent: bot")
    assert status == 403


def test_skip_access_log_urls_reads_request_uri_of_an_absolute_form_target() -> None:
    # nginx's $request_uri of "GET http://host/health" is "/health" (r->uri_start is the
    # path's slash); of "GET http://host" it is "/" (the parser's uri_start points at a "/").
    from test_configmap_keys_s28 import _records

    s = settings({"skip-access-log-urls": "/health"})
    assert _records(s, "http://app.test/health") == [False]
    assert _records(s, "http://app.test/health?x") == [True]
    assert _records(settings({"skip-access-log-urls": "/"}), "http://app.test") == [False]


# --- checked and right: the head deadline ------------------------------------------------


def test_expect_continue_body_then_head_deadline_starts_at_the_body_end() -> None:
    p = _silent(ProxySettings(client_body_timeout=0, proxy_read_timeout=2.0))
    p.send(b"POST /a HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\n"
           b"Content-Length: 3\r\n\r\n")
    (up,) = p.upstreams
    p.advance(1.0)
    p.upstream_send(up, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert p.timer is None  # still sending: nothing owed by the upstream
    p.advance(5.0)
    p.send(b"abc")
    assert p.timer == (TimerKind.UPSTREAM_READ, 2.0) and p.deadline == 7.0
    p.advance(6.0)
    p.upstream_send(up, b"HTTP/1.1 200")  # part of the head: the deadline runs on
    assert p.deadline == 7.0
    p.advance(7.5)
    assert [r.status for r in p.records] == [504]


def test_the_next_request_on_a_kept_alive_connection_gets_a_fresh_head_deadline() -> None:
    p = _silent(ProxySettings(proxy_read_timeout=2.0))
    p.send(b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
    p.advance(1.5)
    p.upstream_send(p.upstreams[0], HEAD + b"hello")
    assert p.timer is not None and p.timer[0] is TimerKind.IDLE
    p.advance(3.0)
    p.send(b"GET /b HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert p.timer == (TimerKind.UPSTREAM_READ, 2.0) and p.deadline == 5.0
    p.advance(4.9)
    p.upstream_send(p.upstreams[-1], b"HTTP/1.1 2")
    p.advance(5.1)
    assert [r.status for r in p.records] == [200, 504]


def test_no_tls_redirect_list_from_configmap_reaches_an_unannotated_rule() -> None:
    cfg = parse_config_data({"no-tls-redirect-locations": "/open", "force-ssl-redirect":
                             "true"})
    assert cfg.warnings == ()
    assert _core_status(cfg.settings, _rule("/open/x"), "/open/x") == 200  # (was 308)
    assert _core_status(cfg.settings, _rule("/x"), "/x") == 308


# --- 3. the block comes before match-cn's "if" (both in the server block, block first) ----


def _cert_answer(auth: Any, cert: Any, ua: str, *, tls: bool) -> bytes:
    from ingresslib.proxy import Proxy, SendDownstream

    from test_clientcert_s26 import _Routes

    proxy = Proxy(_Routes(), client_auth=lambda host: auth if host == "a.test" else None,
                  settings=ProxySettings(block_user_agents=("~bot",)))
    conn = proxy.connection(("192.0.2.1", 5000), tls=tls, now=0.0, client_cert=cert)
    acts = conn.receive_data(
        f"GET / HTTP/1.1\r\nHost: a.test\r\nUser-Agent: {ua}\r\n\r\n".encode(), now=0.0)
    return b"".join(a.data for a in acts if isinstance(a, SendDownstream))


def test_block_answers_before_match_cn_and_after_the_handshake_checks() -> None:
    # nginx.tmpl: "if ($block_ua) { return 403; }" is written in the server block before
    # {{ template "SERVER" }}, whose match-cn "if ($ssl_client_s_dn !~ ...) { return 403
    # "client certificate unauthorized"; }" comes after (the server rewrite phase runs them
    # in order). A blocked client got match-cn's text answer (with custom-http-errors 403,
    # not the error page "return 403;" gets).
    import regex

    from test_clientcert_s26 import _config

    auth = _config(match_cn=regex.compile("CN=client"))
    out = _cert_answer(auth, None, "bot", tls=False)
    assert out.startswith(b"HTTP/1.1 403") and b"client certificate unauthorized" not in out
    out = _cert_answer(auth, None, "ok", tls=False)
    assert out.startswith(b"HTTP/1.1 403") and b"client certificate unauthorized" in out
    # The handshake's verdict comes first (ngx_http_process_request, before any phase): no
    # certificate with verify-client on is 400 for a blocked client too.
    out = _cert_answer(_config(verify_client="on"), None, "bot", tls=True)
    assert out.startswith(b"HTTP/1.1 4") and not out.startswith(b"HTTP/1.1 403")


def test_a_string_for_a_list_field_names_what_the_list_holds() -> None:
    # ProxySettings(block_user_agents="~bot") said "a tuple of CIDRs".
    for name, what in (("block_user_agents", "nginx map keys"),
                       ("block_referers", "nginx map keys"),
                       ("skip_access_log_urls", "nginx map keys"),
                       ("no_tls_redirect_locations", "paths")):
        with pytest.raises(ValueError, match=f"{name}: a tuple of {what}, not the string"):
            ProxySettings(**{name: "/x"})


# --- 4. nginx's tokenizer: "#" starts a comment, "}" inside a word is part of it ----------


def test_an_item_starting_with_hash_is_a_comment_in_nginx() -> None:
    # nginx.tmpl writes "{{ trimSpace $ua }} 1;" on a line of its own; ngx_conf_read_token at
    # the start of a word: "case '#': sharp_comment = 1;": the line is a comment, no key.
    # ingresslib took "#probe" as an exact key and refused its User-Agent.
    from ingresslib.proxy._block import compile_map

    s = settings({"block-user-agents": "#probe, ~*bot"})
    assert both(s, ua="#probe") == 200  # (was 403)
    assert both(s, ua="bot") == 403
    assert not compile_map(("#x",)).match(b"#x")
    # Escaped, it is a key (ngx_http_map drops the leading backslash).
    assert compile_map(("\\#x",)).match(b"#X")


def test_a_closing_brace_inside_a_word_is_accepted_as_nginx_does() -> None:
    # Inside a word ngx_conf_read_token ends it on a space, ";" or "{" only ("{" not after
    # "$"); "}" is part of the word. ingresslib refused "~a}" (a ConfigMap error).
    cfg = parse_config_data({"block-referers": "~a}, ~b${x}"})
    assert cfg.settings.block_referers == ("~a}", "~b${x}")
    assert both(cfg.settings, referer="xa}") == 403
    assert both(cfg.settings, referer="xa") == 200
    # At the start of a word a brace is a block's: nginx -t fails.
    with pytest.raises(ValueError, match="start of a word"):
        ProxySettings(block_referers=("}a",))


def test_a_trailing_backslash_is_refused() -> None:
    # "foo\ 1;": the backslash escapes the space, one word: "invalid number of the map
    # parameters". ingresslib took the key "foo\".
    with pytest.raises(ValueError, match="backslash at the end"):
        ProxySettings(block_user_agents=("foo\\",))


# --- 5. custom-http-errors' error page: no proxy-redirect / proxy-cookie rewrite ---------

_REWRITE = {"proxy-cookie-domain": "internal.svc app.test",
            "proxy-redirect-from": "http://internal.svc/", "proxy-redirect-to": "/"}
_ANSWER = [(b"set-cookie", b"e=1; Domain=internal.svc"), (b"location", b"http://internal.svc/e")]


def _error_docs() -> str:
    from test_custom_errors_s25 import ANN, _docs

    return _docs(ANN)


def test_core_error_page_answer_is_not_rewritten_by_the_locations_proxy_cookie() -> None:
    # nginx.tmpl writes proxy_redirect / proxy_cookie_* in location blocks only; the
    # CUSTOM_ERRORS "location @custom_..." is the server's and has none. The core rewrote the
    # error page's Location and Set-Cookie with the location's values (with the ConfigMap's
    # defaults of session 28, every location's); IngressASGI did not.
    from _proxy_harness import Reply
    from test_custom_errors_s25 import ERR

    lines = b"".join(b"%s: %s\r\n" % kv for kv in _ANSWER)

    def app(request: Any, data: bytes, up: Any) -> Reply:
        status = b"418 T" if up.endpoint == ERR else b"200 OK"
        if up.endpoint != ERR and request.target == b"/x":
            status = b"404 X"
        return Reply(b"HTTP/1.1 " + status + b"\r\n" + lines + b"Content-Length: 0\r\n\r\n")

    s = settings(_REWRITE)
    p = ProxyPair(router=Router(parse_manifests(_error_docs())), app=app, settings=s)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").lower()
    assert out.startswith(b"http/1.1 418")
    assert b"domain=internal.svc" in out and b"location: http://internal.svc/e" in out  # (was
    # "domain=app.test" and "location: /e")
    # The location's own answer is rewritten.
    out = p.send(b"GET /ok HTTP/1.1\r\nHost: a.test\r\n\r\n").lower()
    assert out.startswith(b"http/1.1 200") and b"domain=app.test" in out \
        and b"location: /e" in out


def test_asgi_error_page_answer_is_not_rewritten_either() -> None:
    import asyncio

    def app(name: str) -> Any:
        async def backend(scope: Any, receive: Any, send: Any) -> None:
            status = 418 if name == "errors" else 404 if scope["path"] == "/x" else 200
            await send({"type": "http.response.start", "status": status, "headers": _ANSWER})
            await send({"type": "http.response.body", "body": b""})
        return backend

    ingress = ingresslib.IngressASGI(parse_manifests(_error_docs()),
                                     {"default/web": app("web"),
                                      "default/errors": app("errors")},
                                     settings=settings(_REWRITE))

    def call(path: str) -> dict[str, Any]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
                 "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
        asyncio.run(ingress(scope, receive, send))
        return sent[0]

    start = call("/x")
    headers = {bytes(k).lower(): bytes(v) for k, v in start["headers"]}
    assert start["status"] == 418 and headers[b"location"] == b"http://internal.svc/e"
    start = call("/ok")
    headers = {bytes(k).lower(): bytes(v) for k, v in start["headers"]}
    assert start["status"] == 200 and headers[b"location"] == b"/e"
