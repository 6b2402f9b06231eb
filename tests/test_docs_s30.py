"""Session 30's docs against the code: what today made implemented (response buffering, UDP
services, log variables, worker-shutdown-timeout) is not called unsupported anywhere, and the
rows and lists that describe it say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ingresslib
from ingresslib import _config
from ingresslib._cli import build_parser
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream
from ingresslib.proxy import parse_config_data
from ingresslib.proxy._annotations import IMPLEMENTED, INGRESS_NGINX_ANNOTATIONS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
API = ROOT / "ingresslib" / "proxy" / "API.md"
RECIPES = ROOT / "docs" / "recipes.md"
PAGES = [README, API, *sorted((ROOT / "docs").glob("*.md"))]


def _flat(path: Path) -> str:
    """The page's text with every run of white space one space (sentences span lines)."""
    return re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))


def _serve_help() -> str:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return re.sub(r"\s+", " ", sub.choices["serve"].format_help())  # type: ignore[attr-defined]


def _row(text: str, start: str) -> str:
    """The README table row that starts with ``start`` (its cells joined as written)."""
    (row,) = [ln for ln in README.read_text(encoding="utf-8").splitlines()
              if ln.startswith(start)]
    return row


# --- "not implemented" lists name only what is not implemented -------------------------------


def test_names_given_as_not_implemented_are_not_implemented() -> None:
    # "an annotation ingresslib does not implement (`X`, `Y`...)": every name such a list
    # gives as its example is an ingress-nginx annotation (or ConfigMap key) that ingresslib
    # warns about, not one it implements (proxy-buffering and proxy-buffer-size were, until
    # session 30).
    found = 0
    for page in PAGES:
        text = _flat(page)
        for m in re.finditer(r"does not implement(?: at all)? \(((?:`[a-z0-9-]+`(?:, )?)+)",
                             text):
            for name in re.findall(r"`([a-z0-9-]+)`", m.group(1)):
                found += 1
                where = f"{page.name}: {name!r}"
                assert name not in IMPLEMENTED, where
                assert name not in _config.KNOWN_KEYS, where
                assert name in INGRESS_NGINX_ANNOTATIONS or name in _config._INGRESS_NGINX_KEYS, \
                    where
    assert found >= 6  # README's row and key row, API.md, recipes.md


def _check_annotation(name: str, value: str) -> list[str]:
    """``ingresslib check``'s warnings for an Ingress with that one annotation."""
    res = ingresslib.parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: a\n"
        f"  namespace: shop\n  annotations:\n    nginx.ingress.kubernetes.io/{name}: '{value}'\n"
        "spec:\n  rules:\n  - host: a.test\n    http:\n      paths:\n"
        "      - {path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}\n")
    return [str(w) for w in ingresslib.check(res)]


@pytest.mark.parametrize("name", ["proxy-buffering", "proxy-buffer-size", "proxy-buffers-number",
                                  "proxy-max-temp-file-size"])
def test_response_buffering_annotations_are_not_warned_as_not_implemented(name: str) -> None:
    value = {"proxy-buffering": "on", "proxy-buffers-number": "8"}.get(name, "16k")
    assert name in IMPLEMENTED
    assert not [w for w in _check_annotation(name, value) if "not implemented" in w]
    # (the check is live: the one the pages now give as their example is warned)
    assert [w for w in _check_annotation("proxy-busy-buffers-size", "8k")
            if "proxy-busy-buffers-size: not implemented by ingresslib" in w]


def test_no_page_says_ingresslib_has_no_proxy_buffering() -> None:
    for page in PAGES:
        text = _flat(page)
        assert not re.search(r"has no proxy.buffering|no proxy buffering", text), page.name
        # (API.md's bandwidth item: "Applied whatever `proxy-buffering` says (... on;
        # ingresslib has none)")
        assert not re.search(r"proxy-buffering[^.]{0,80}ingresslib has none", text), page.name


def test_no_page_or_help_says_udp_services_are_unsupported() -> None:
    pattern = re.compile(r"UDP services?[^.|]{0,60}(?:not supported|unsupported|not implemented)"
                         r"|no UDP services", re.IGNORECASE)
    for page in PAGES:
        assert not pattern.search(_flat(page)), page.name
    helptext = _serve_help()
    assert not pattern.search(helptext)
    assert "--udp-services-configmap" in helptext


# --- the access-log variables ------------------------------------------------------------------


def _sample(var: str) -> str:
    """A concrete nginx variable for a documented name (``$cookie_<name>``, ``$ssl_client_*``)."""
    var = var.replace("<name>", "x_a")
    samples = {"ssl_client_*": "ssl_client_verify", "ssl_session_*": "ssl_session_id",
               "upstream_bytes_*": "upstream_bytes_received", "geoip_*": "geoip_country_code",
               "sent_http_*": "sent_http_x_a", "cookie_*": "cookie_x", "arg_*": "arg_x",
               "ssl_*": "ssl_protocol", "http_*": "http_x_a"}
    return samples.get(var, var)


def _warned(var: str) -> bool:
    cfg = parse_config_data({"log-format-upstream": "$" + var})
    return any(f"${var}:" in w and "logged as unset" in w for w in cfg.warnings)


def test_readme_log_variables_given_and_unset_are_so() -> None:
    # README "Access log format": the variables the record gives are read without a warning;
    # the "other nginx variables (...)" it names are written unset and warned about.
    text = _flat(README)
    start = text.index("The request record gives the default format's variables")
    end = text.index("are written unset and named in a ConfigMap warning", start)
    given_part, _, unset_part = text[start:end].rpartition("other nginx variables (")
    given = {_sample(v) for v in re.findall(r"`\$([a-z_<>*]+)`", given_part)}
    unset = {_sample(v) for v in re.findall(r"`\$([a-z_<>*]+)`", unset_part)}
    assert {"cookie_x_a", "arg_x_a", "sent_http_x_a", "server_name", "remote_port",
            "ssl_protocol", "connection_requests"} <= given
    assert len(unset) >= 4
    assert [v for v in sorted(given) if _warned(v)] == []
    assert [v for v in sorted(unset) if not _warned(v)] == []


def test_divergence_row_and_recipe_unset_variables_are_warned() -> None:
    row = _row(README.read_text(), "| observability | `log-format-upstream` variables the request")
    first_cells = row.split(" | ")[1]
    names = {_sample(v) for v in re.findall(r"`\$([a-z_<>*]+)`", first_cells)}
    # The page's JSON recipe: "one the request record does not carry (`$pipe`, ...)".
    text = _flat(RECIPES)
    m = re.search(r"one the request record does not carry \(([^)]*)\)", text)
    assert m is not None
    names |= set(re.findall(r"`\$([a-z_]+)`", m.group(1)))
    assert {"pipe", "nginx_version", "ssl_client_verify"} <= names
    assert [v for v in sorted(names) if not _warned(v)] == []
    assert "remote_port" not in names and "server_name" not in names


# --- worker-shutdown-timeout -------------------------------------------------------------------


def test_worker_shutdown_timeout_zero_counts_as_not_set() -> None:
    from ingresslib._serve_reload import shutdown_timeout

    args = build_parser().parse_args(["serve", "-f", "x"])
    assert shutdown_timeout(args, parse_config_data({"worker-shutdown-timeout": "30s"})) == 30.0
    zero = parse_config_data({"worker-shutdown-timeout": "0s"})
    assert zero.worker_shutdown_timeout is None and zero.warnings
    # A reload from "30s" to "0s" does not keep 30: the key counts as not set, 10 s.
    assert shutdown_timeout(args, zero) == 10.0
    flag = build_parser().parse_args(["serve", "-f", "x", "--shutdown-timeout", "3"])
    assert shutdown_timeout(flag, zero) == 3.0
    row = _row(README.read_text(), "| configuration | ConfigMap `worker-shutdown-timeout`")
    assert "the bound stays as it is" not in row
    assert "counts as not set" in row


# --- the response head's limit for an auth-url answer ------------------------------------------

_AUTH = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/auth-url: "http://10.5.0.1:4180/auth"
spec:
  rules:
  - host: shop.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""


def _auth_answer(pad: int, settings: ProxySettings | None = None) -> tuple[bytes, list[object]]:
    """GET / whose auth service answers 200 with a ``pad``-byte header: (the client's bytes,
    the upstreams opened after the answer)."""
    router = ingresslib.Router(ingresslib.parse_manifests(_AUTH))
    proxy = Proxy(router, settings, clock=None) if settings else Proxy(router, clock=None)
    conn = proxy.connection(("192.0.2.10", 40000), now=0.0)
    acts = conn.start(0.0) + conn.receive_data(
        b"GET / HTTP/1.1\r\nHost: shop.example.test\r\n\r\n", now=0.0)
    (auth,) = [a for a in acts if isinstance(a, OpenUpstream)]
    assert auth.endpoint == ("10.5.0.1", 4180)
    conn.upstream_connected(auth.conn_id, now=0.0)
    acts = conn.upstream_data(auth.conn_id, b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * pad
                              + b"\r\nContent-Length: 0\r\n\r\n", now=0.0)
    return (b"".join(a.data for a in acts if isinstance(a, SendDownstream)),
            [a.endpoint for a in acts if isinstance(a, OpenUpstream)])


def test_auth_answer_head_row_says_proxy_buffer_size() -> None:
    # The "upstream response head size" row said the auth-url answer's heads were bounded by
    # max_response_header_size alone; the location's proxy-buffer-size bounds them (500).
    out, opened = _auth_answer(1000)
    assert out == b"" and opened == [("10.0.0.1", 8080)]
    out, opened = _auth_answer(5000)
    assert out.startswith(b"HTTP/1.1 500 ") and opened == []
    out, opened = _auth_answer(5000, ProxySettings(proxy_buffer_size=8192))
    assert opened == [("10.0.0.1", 8080)]
    row = _row(README.read_text(), "| proxy | upstream response head size |")
    assert "`auth-url` service's and a mirror's response heads are bounded by " \
           "`max_response_header_size` alone" not in row
    assert "`auth-url` service's answer heads are bounded the same way" in row


# --- lists and recipes -------------------------------------------------------------------------


def test_readme_layout_names_the_response_buffer_module() -> None:
    assert (ROOT / "ingresslib" / "proxy" / "_response_buffer.py").exists()
    layout = README.read_text(encoding="utf-8").split("```")
    (block,) = [b for b in layout if "__init__.py" in b and "_request_buffer" in b]
    assert "_response_buffer" in block


def test_recipes_page_has_a_proxy_buffer_size_recipe() -> None:
    text = RECIPES.read_text(encoding="utf-8")
    assert "<!-- recipe: proxy-buffer-size -->" in text
    assert "](#big-response-headers-and-proxy-buffering)" in text
    assert "## Big response headers and proxy buffering" in text


def test_invalid_buffering_values_annotation_warned_configmap_refused() -> None:
    # README "Response buffering": an invalid annotation value is warned and the ConfigMap's
    # used; the same value in the ConfigMap is an error of the ConfigMap.
    warnings = _check_annotation("proxy-buffers-number", "1")
    assert [w for w in warnings if "proxy-buffers-number" in w and "using the default 4" in w]
    with pytest.raises(ingresslib.ValidationError, match="data.proxy-buffers-number"):
        parse_config_data({"proxy-buffers-number": "1"})
    text = _flat(README)
    assert "Invalid annotation values are warned about and the ConfigMap's used (an invalid " \
           "ConfigMap value, `proxy-buffers-number: \"1\"`, is an error of the ConfigMap)" in text


def test_serve_help_max_connections_names_the_udp_sessions() -> None:
    assert "UDP services' sessions are bounded apart by the same number" in _serve_help()
