"""``ingresslib explain`` tells what the proxy answers (session 14).

Before: explain said a URL routes to its backend (status 200) where the proxy answers 403 (a
source range refuses the client), 401 (basic authentication), or 503 (an access annotation it
cannot enforce, a basic-auth Secret it cannot read); it printed IPv6 endpoints without brackets
(``fd00::1:8080``); and it wrote Unicode hosts with Python's IDNA 2003 codec, so ``faß.de``
became ``fass.de`` where browsers and curl send ``xn--fa-hia.de``.

The verdict is the proxy core's own answer to the request (``_explain_verdict.ask_proxy``),
so its phase order is the proxy's: a denied location's 503 and the redirects come before the
source ranges' 403, which comes before basic authentication's 401 and the endpoint's 503.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from ingresslib._cli import main
from ingresslib._explain import split_url
from ingresslib._iptext import ip_text
from ingresslib._load import parse_manifests
from ingresslib._router import Router

sys.path.insert(0, str(Path(__file__).parent))
from _explain_helpers import (WEB, explain_json, explain_text, prod_ingress,  # noqa: E402
                             users_secret)
from _proxy_harness import ProxyPair, status_of  # noqa: E402

P = "nginx.ingress.kubernetes.io/"


def ingress(name: str, host: str, annotations: dict[str, str], path: str = "/") -> str:
    ann = ", ".join(f"{k!r}: {v!r}" for k, v in annotations.items())
    return prod_ingress(name, host, "{" + ann + "}", path)


BACKEND = "\n" + WEB

PASSWORD = "wonderland-9f2c"
HASH = "{PLAIN}" + PASSWORD
USERS = "\n" + users_secret(HASH)

RANGES = {P + "whitelist-source-range": "10.0.0.0/8, 2001:db8::/32",
          P + "denylist-source-range": "10.1.0.0/16"}
BASIC = {P + "auth-type": "basic", P + "auth-secret": "users", P + "auth-realm": "Admin area"}
MANIFESTS = (ingress("admin", "admin.test", {**RANGES, **BASIC})
             + ingress("ranges", "ranges.test", RANGES)
             + ingress("basic", "basic.test", BASIC)
             # auth-url and auth-type: digest are implemented since session 26: a snippet is not.
             + ingress("unenforced", "unenforced.test",
                       {P + "configuration-snippet": "more_set_headers 'x: y';"})
             + ingress("gone", "gone.test", {P + "auth-type": "basic", P + "auth-secret": "gone"})
             + ingress("moved", "moved.test", {**RANGES,
                                               P + "permanent-redirect": "https://new.test/"})
             + ingress("snippet", "snippet.test", {P + "configuration-snippet": "deny all;",
                                                   P + "app-root": "/app"})
             + ingress("open", "open.test", {})
             + BACKEND + USERS)


def auth(user: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(MANIFESTS)
    return p


# -- source ranges --------------------------------------------------------------------------


def test_source_ranges_are_shown_and_the_verdict_needs_the_client_address(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "http://ranges.test/x")
    assert doc["access"]["source_ranges"] == {
        "ipv4": [{"rule": "deny", "cidr": "10.1.0.0/16"}, {"rule": "allow", "cidr": "10.0.0.0/8"},
                 {"rule": "deny", "cidr": "0.0.0.0/0"}],
        "ipv6": [{"rule": "allow", "cidr": "2001:db8::/32"}, {"rule": "deny", "cidr": "::/0"}]}
    assert doc["access"]["denied"] is None and doc["access"]["basic_auth"] is None
    assert doc["verdict"]["depends_on_client_ip"] is True
    assert doc["verdict"]["status"] is None
    out = explain_text(capsys, files, "http://ranges.test/x")
    assert ("access: source ranges (first match decides; none matches: allowed): IPv4: deny "
            "10.1.0.0/16, allow 10.0.0.0/8, deny all; IPv6: allow 2001:db8::/32, deny all") in out
    assert "proxy answers: depends on the client address" in out
    assert "--client-ip" in out


@pytest.mark.parametrize(("ip", "status"), [
    ("10.2.3.4", None), ("10.1.2.3", 403), ("192.0.2.1", 403), ("2001:db8::7", None),
    ("[2001:db8::7]", None), ("fd00::1", 403), ("::ffff:10.2.3.4", None),
    ("::ffff:10.1.2.3", 403),
])
def test_client_ip_gets_the_source_ranges_verdict(
        files: Path, capsys: pytest.CaptureFixture[str], ip: str, status: int | None) -> None:
    doc = explain_json(capsys, files, "http://ranges.test/x", "--client-ip", ip)
    v = doc["verdict"]
    assert v["depends_on_client_ip"] is False
    assert v["status"] == status
    assert v["proxied"] is (status is None)
    assert doc["status"] == (200 if status is None else 403)
    out = explain_text(capsys, files, "http://ranges.test/x", "--client-ip", ip)
    shown = ip_text(ipaddress.ip_address(ip.strip("[]")))  # the same text on every Python
    if status == 403:
        assert f"proxy answers for client {shown}: 403 (the source ranges refuse {shown})" in out
    else:
        assert f"proxy answers for client {shown}: proxied to 127.0.0.1:8080" in out


def test_bad_client_ip_is_a_usage_error(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "-f", str(files), "--client-ip", "10.0.0.300",
                 "http://ranges.test/"]) == 2
    assert "bad --client-ip '10.0.0.300'" in capsys.readouterr().err


# -- basic authentication -------------------------------------------------------------------


def test_basic_auth_is_401_without_credentials(files: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "http://basic.test/")
    assert doc["access"]["basic_auth"] == {"realm": "Admin area", "secret": "prod/users",
                                           "secret_type": "auth-file", "type": "basic"}
    assert doc["status"] == 401 and doc["verdict"]["status"] == 401
    assert "no Authorization header" in doc["verdict"]["reason"]
    assert doc["verdict"]["www_authenticate"] == 'Basic realm="Admin area"'
    out = explain_text(capsys, files, "http://basic.test/")
    assert "access: basic authentication, realm 'Admin area', users of Secret prod/users" in out
    assert "proxy answers: 401 (basic authentication: no Authorization header" in out


def test_basic_auth_verifies_the_authorization_header(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = auth("alice", PASSWORD)
    doc = explain_json(capsys, files, "http://basic.test/", "-H", good)
    assert doc["verdict"]["proxied"] is True and doc["verdict"]["user"] == "alice"
    assert doc["status"] == 200
    bad = explain_json(capsys, files, "http://basic.test/", "-H", auth("alice", "nope"))
    assert bad["status"] == 401
    assert bad["verdict"]["reason"] == ("basic authentication: the Authorization header does "
                                        "not verify")
    for args in (("-H", good), ("-H", good, "-o", "json")):
        assert main(["explain", "-f", str(files), "http://basic.test/", *args]) == 0
        cap = capsys.readouterr()
        # Never a password, a hash or the credentials as sent.
        for secret in (PASSWORD, HASH, good.split(" ", 2)[2]):
            assert secret not in cap.out and secret not in cap.err


def test_source_ranges_come_before_basic_auth(files: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    good = auth("alice", PASSWORD)
    assert explain_json(capsys, files, "http://admin.test/", "--client-ip", "192.0.2.1",
                        "-H", good)["status"] == 403
    assert explain_json(capsys, files, "http://admin.test/",
                        "--client-ip", "10.9.9.9")["status"] == 401
    doc = explain_json(capsys, files, "http://admin.test/", "--client-ip", "10.9.9.9", "-H", good)
    assert doc["verdict"]["proxied"] is True and doc["status"] == 200


def test_a_basic_auth_secret_that_does_not_exist_is_503(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "http://gone.test/", "-H", auth("alice", PASSWORD))
    assert doc["status"] == 503
    assert doc["verdict"]["reason"] == "basic authentication: its Secret cannot be used, see the warning"
    assert any("auth-secret prod/gone: no such Secret" in w for w in doc["warnings"])


# -- denied locations and the phase order ---------------------------------------------------


def test_an_unenforceable_access_annotation_is_503(files: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "http://unenforced.test/")
    assert doc["status"] == 503
    assert "configuration-snippet (raw nginx configuration)" in doc["access"]["denied"]
    out = explain_text(capsys, files, "http://unenforced.test/")
    assert "access: denied, every request answers 503: annotation nginx.ingress.kubernetes.io/" \
           "configuration-snippet" in out
    assert "proxy answers: 503 (the location is denied" in out


def test_redirects_come_before_the_403(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "http://moved.test/x", "--client-ip", "192.0.2.1")
    assert doc["status"] == 301
    assert doc["verdict"]["location"] == "https://new.test/"
    # The denied location's 503 comes first, but for "/" the server-level app-root is earlier.
    assert explain_json(capsys, files, "http://snippet.test/x")["status"] == 503
    root = explain_json(capsys, files, "http://snippet.test/")
    assert root["status"] == 302 and root["verdict"]["location"] == "http://snippet.test/app"


def test_an_open_route_keeps_its_output(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "http://open.test/")
    assert "access" not in doc and doc["status"] == 200 and doc["verdict"]["proxied"] is True
    out = explain_text(capsys, files, "http://open.test/")
    assert "proxy answers" not in out and "access:" not in out


# -- --config: block-cidrs, forwarded headers -----------------------------------------------

CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata: {name: ingress-nginx}
data:
  use-forwarded-headers: "true"
  proxy-real-ip-cidr: "10.0.0.0/24"
  block-cidrs: "198.51.100.0/24"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(CONFIG)
    return p


def test_forwarded_for_from_a_trusted_peer_is_the_client(
        files: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--config", str(config), "http://ranges.test/", "--client-ip", "10.0.0.5")
    doc = explain_json(capsys, files, *args, "-H", "X-Forwarded-For: 192.0.2.1")
    assert doc["verdict"]["client_ip"] == "192.0.2.1" and doc["status"] == 403
    out = explain_text(capsys, files, *args, "-H", "X-Forwarded-For: 192.0.2.1")
    assert "for client 192.0.2.1 (forwarded by trusted peer 10.0.0.5): 403" in out
    # An untrusted peer's X-Forwarded-For is not read; the peer is the client.
    doc = explain_json(capsys, files, "--config", str(config), "http://ranges.test/",
                       "--client-ip", "10.2.0.5", "-H", "X-Forwarded-For: 192.0.2.1")
    assert doc["verdict"]["client_ip"] == "10.2.0.5" and doc["status"] == 200
    # Without --config the header is not read either (use-forwarded-headers is off).
    doc = explain_json(capsys, files, "http://ranges.test/", "--client-ip", "10.0.0.5",
                       "-H", "X-Forwarded-For: 192.0.2.1")
    assert doc["verdict"]["client_ip"] == "10.0.0.5" and doc["status"] == 200


def test_block_cidrs_apply_to_paths_no_rule_routes(
        files: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = explain_json(capsys, files, "--config", str(config), "http://nowhere.test/",
                       "--client-ip", "198.51.100.7")
    assert doc["match"] is None and doc["status"] == 403
    assert doc["access"]["source_ranges"]["ipv4"] == [{"rule": "deny", "cidr": "198.51.100.0/24"}]
    assert explain_json(capsys, files, "--config", str(config), "http://nowhere.test/",
                        "--client-ip", "192.0.2.1")["status"] == 404


def test_an_invalid_config_is_exit_2(files: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace('"198.51.100.0/24"', '"not-a-cidr"'))
    assert main(["explain", "-f", str(files), "--config", str(bad), "http://open.test/"]) == 2
    assert "block-cidrs" in capsys.readouterr().err


# -- the verdict is what a connection to the proxy gets -------------------------------------


@hsettings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ip=st.one_of(st.ip_addresses(v=4, network="10.0.0.0/7"), st.ip_addresses(v=4),
                    st.ip_addresses(v=6, network="2001:db8::/31")),
       host=st.sampled_from(["admin.test", "ranges.test", "basic.test", "moved.test"]),
       password=st.sampled_from([None, PASSWORD, "wrong"]))
def test_the_verdict_is_the_proxys_answer(files: Path, capsys: pytest.CaptureFixture[str],
                                          ip: Any, host: str, password: str | None) -> None:
    headers = () if password is None else ("-H", auth("alice", password))
    doc = explain_json(capsys, files, f"http://{host}/x", "--client-ip", str(ip), *headers)
    pair = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0), peer=(str(ip), 4000))
    extra = b"" if password is None else auth("alice", password).encode() + b"\r\n"
    got = status_of(pair.send(b"GET /x HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + extra
                              + b"\r\n"))
    expected = 200 if doc["verdict"]["proxied"] else doc["verdict"]["status"]
    assert got == expected == doc["status"]


# -- IPv6 endpoints ---------------------------------------------------------------------------


def test_ipv6_endpoints_are_bracketed_in_text(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "v6.yaml"
    f.write_text(ingress("open", "open.test", {}) + BACKEND.replace("IPv4", "IPv6").replace(
        '"127.0.0.1"', '"fd00::1"'))
    assert main(["explain", "-f", str(f), "http://open.test/"]) == 0
    out = capsys.readouterr().out
    assert "endpoint [fd00::1]:8080" in out and "fd00::1:8080" not in out.replace("[fd00::1]", "")
    assert main(["explain", "-f", str(f), "-o", "json", "http://open.test/"]) == 0
    # The JSON field keeps its form (split at the last colon).
    assert json.loads(capsys.readouterr().out)["decision"]["endpoint"] == "fd00::1:8080"


# -- IDNA: as browsers and curl write a Unicode host --------------------------------------------


@pytest.mark.parametrize(("url", "host"), [
    # UTS 46's own examples of the deviation characters (nontransitional processing).
    ("http://faß.de/", "xn--fa-hia.de"),
    ("http://FAẞ.de/", "xn--fa-hia.de"),
    ("http://βόλος.com/", "xn--nxasmm1c.com"),
    ("http://ς.com/", "xn--3xa.com"),
    ("http://x.straße.de:8080/", "x.xn--strae-oqa.de:8080"),
    # ZWJ after a virama (RFC 5892 CONTEXTJ allows it): kept.
    ("http://\u0915\u094d\u200d\u0937.in/", "xn--11b2ezcw70k.in"),
    # Where IDNA 2003 and UTS 46 agree, as before.
    ("http://bücher.de/", "xn--bcher-kva.de"),
    ("http://ÖBB.at/", "xn--bb-eka.at"),
    ("http://x\u3002y.com/", "x.y.com"),
])
def test_unicode_hosts_as_browsers_send_them(url: str, host: str) -> None:
    assert split_url(url)[0] == host


def test_a_joiner_browsers_refuse_is_a_usage_error(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # IDNA 2003 deleted it, routing "ab.test", a host the user did not write.
    assert main(["explain", "-f", str(files), "http://a\u200db.test/"]) == 2
    assert "must follow a virama" in capsys.readouterr().err


def test_the_url_scheme_is_the_connection_s(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "f.yaml"
    f.write_text(ingress("f", "f.test", {P + "force-ssl-redirect": "true", **RANGES}) + BACKEND)
    doc = explain_json(capsys, f, "http://f.test/a/", "--client-ip", "192.0.2.1")
    assert doc["status"] == 308 and doc["verdict"]["location"] == "https://f.test/a"
    assert explain_json(capsys, f, "HTTPS://f.test/a/", "--client-ip", "192.0.2.1")["status"] == 403
    assert explain_json(capsys, f, "https://f.test/a/", "--client-ip", "10.2.0.1")["status"] == 200
