"""Review of session 16's metrics, chunk-size, settings, explain and access-log changes
(dc65441, 68b0e9d, 8ddcb26) with fresh eyes.

Each test says whether it found a defect ("DEFECT": failed before the fix in the same change)
or answers a review question with behaviour that was already right ("guard").
"""

from __future__ import annotations

import datetime
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import pytest
from h11._receivebuffer import ReceiveBuffer

import ingresslib
from ingresslib import ProxySettings
from ingresslib import _config
from ingresslib._accesslog import _JSON, _json_fields
from ingresslib._cli import main as cli_main
from ingresslib._explain_url import UsageError, shown_url, split_url, url_credentials
from ingresslib._metrics import Metrics
from ingresslib.proxy._chunked import _MAX_CHUNK_SIZE, _ChunkedReader
from ingresslib.proxy._connection import _RequestChunkedReader

# --- 1. the chunk-size bound when the chunk line and its data arrive in pieces --------------


def _feed(reader: Any, pieces: list[bytes]) -> list[Any]:
    """Feed ``pieces`` to ``reader`` one receive at a time, as h11 does: the reader is called
    until it answers None (needs more) or the message ends."""
    buf = ReceiveBuffer()
    events: list[Any] = []
    for piece in pieces:
        buf += piece
        while True:
            event = reader(buf)
            if event is None:
                break
            events.append(event)
            if type(event) is h11.EndOfMessage:
                return events
    return events


def _splits(data: bytes) -> Iterator[list[bytes]]:
    """``data`` whole, one byte at a time, and cut at every one and every two places."""
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
        for j in range(i + 1, len(data)):
            yield [data[:i], data[i:j], data[j:]]


@pytest.mark.parametrize("reader", [_ChunkedReader, _RequestChunkedReader])
@pytest.mark.parametrize("first", [b"", b"3\r\nabc\r\n"])
def test_guard_chunk_size_past_the_bound_is_refused_however_the_bytes_arrive(
        reader: Any, first: bytes) -> None:
    # guard: h11 sets _bytes_in_chunk to the size when it reads the line and takes what data
    # it can in the same call; _check_chunk_size adds back what it took (Data) or sees the
    # whole size (None: no data yet). A line cut anywhere is read by a later call that again
    # starts with _bytes_in_chunk == 0, so the check runs on it (also after a first chunk,
    # whose CRLF to discard may be cut too).
    body = first + b"%x\r\nabcdef" % (_MAX_CHUNK_SIZE + 1)
    for pieces in _splits(body):
        with pytest.raises(h11.LocalProtocolError, match="chunk size"):
            _feed(reader(), pieces)


@pytest.mark.parametrize("reader", [_ChunkedReader, _RequestChunkedReader])
def test_guard_chunk_sizes_within_the_bound_read_the_same_however_the_bytes_arrive(
        reader: Any) -> None:
    # guard: no false refusal from a size put together in pieces (the largest size nginx takes
    # with part of its data, a small chunk, the last chunk and a trailer).
    body = b"3\r\nabc\r\n%x\r\nxyz" % _MAX_CHUNK_SIZE
    for pieces in _splits(body):
        events = _feed(reader(), pieces)
        assert b"".join(e.data for e in events) == b"abcxyz"
        assert all(type(e) is h11.Data for e in events)
    body = b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
    for pieces in _splits(body):
        events = _feed(reader(), pieces)
        assert b"".join(e.data for e in events[:-1]) == b"abc"
        assert type(events[-1]) is h11.EndOfMessage


# --- 2. explain: a URL without a scheme whose path or query holds "://" -------------------

#: A login page's "come back here" query: the URL has no scheme of its own.
_NEXT = "shop.example.test/login?next=https://shop.example.test/cart"


def test_defect_split_url_takes_a_url_without_scheme_holding_a_url_in_its_query() -> None:
    # DEFECT: "://" anywhere in the text was taken as the URL having a scheme: urlsplit then
    # read no scheme and no host, and explain refused it ("unsupported scheme ''"; before
    # 8ddcb26 it explained host "" and the path "shop.example.test/login?...").
    assert split_url(_NEXT) == ("shop.example.test", "/login?next=https://shop.example.test/cart")
    assert split_url("a.test/go/http://b.test/") == ("a.test", "/go/http://b.test/")
    # A scheme is still a scheme, and only http(s) is taken.
    assert split_url("HTTPS://a.test/x?u=http://b/") == ("a.test", "/x?u=http://b/")
    with pytest.raises(UsageError, match="scheme"):
        split_url("ftp://a.test/x?u=http://b/")


def test_defect_shown_url_masks_the_password_of_such_a_url() -> None:
    # DEFECT (same cause): the text before the query's "://" was taken as the scheme and the
    # password printed as typed -- in the error above, on terminals and in CI logs.
    url = "user:secret@a.test/x?next=http://b.test/"
    assert shown_url(url) == "user:***@a.test/x?next=http://b.test/"
    assert url_credentials(url) == url_credentials("http://user:secret@a.test/x")
    assert url_credentials(url) is not None


def test_defect_explain_cli_routes_such_a_url(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # DEFECT: exit 2 "unsupported scheme" for a URL of the form --help shows (host/path).
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: shop}\nspec:\n"
        "  rules:\n  - host: shop.example.test\n    http:\n      paths:\n"
        "      - {path: /login, pathType: Prefix, backend: {service: {name: api, port: "
        "{number: 80}}}}\n")
    assert cli_main(["explain", "-f", str(manifest), _NEXT, "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["host"] == "shop.example.test"
    assert out["match"]["ingress"] == "default/shop"


@pytest.mark.parametrize("url,host,path", [
    ("shop.example.test/cart", "shop.example.test", "/cart"),
    ("/cart", "", "/cart"),
    ("HTTP://shop.example.test/cart", "shop.example.test", "/cart"),
    ("https://shop.example.test/cart", "shop.example.test", "/cart"),
    ("[::1]:8080/x", "[::1]:8080", "/x"),
    ("http://[::1]:8080/x", "[::1]:8080", "/x"),
    ("localhost:8080/x", "localhost:8080", "/x"),
    ("user:pw@shop.example.test/x", "shop.example.test", "/x"),
    ("http://user:pw@shop.example.test/x", "shop.example.test", "/x"),
    # urlsplit strips C0 controls and spaces before the scheme (a pasted URL).
    (" http://shop.example.test/x", "shop.example.test", "/x"),
    ("\thttps://shop.example.test/x", "shop.example.test", "/x"),
])
def test_guard_explain_takes_every_form_readme_and_help_show(url: str, host: str,
                                                            path: str) -> None:
    # guard: the scheme check of 8ddcb26 refuses none of them.
    assert split_url(url) == (host, path)


# --- 3. JSON access log: fields built by other code ----------------------------------------


def test_defect_json_log_converts_each_field_on_its_own() -> None:
    # DEFECT: one try block for the three fields: a "-" request_time (a handler's own
    # fields) left upstream_response_time and upstream_response_length strings, the type
    # change 8ddcb26 meant to end (a log store drops the line).
    out = _json_fields({"request_time": "-", "upstream_response_time": "0.010",
                        "upstream_response_length": "0, 40"})
    assert out == {"request_time": "-", "upstream_response_time": 0.01,
                   "upstream_response_length": 40}


def test_defect_json_log_stays_json_for_non_numbers() -> None:
    # DEFECT: float() takes "nan" and "1e999"; the encoder then wrote NaN / Infinity, which
    # no JSON parser of a log pipeline reads.
    line = _JSON.encode(_json_fields({"request_time": "nan",
                                      "upstream_response_time": "1e999"}))
    json.loads(line, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert json.loads(line) == {"request_time": "nan", "upstream_response_time": "1e999"}


def test_guard_json_log_keeps_numbers_missing_keys_and_none() -> None:
    # guard: ints/floats already, keys absent, None (nginx's "-" in access_fields) as they are.
    fields = {"request_time": 1.5, "upstream_response_length": 7,
              "upstream_response_time": None}
    assert _json_fields(fields) == fields
    assert _json_fields({}) == {}


# --- 4. ProxySettings: what the ConfigMap and serve pass -----------------------------------


def test_defect_proxy_next_upstream_as_a_string_says_so() -> None:
    # DEFECT (the message): "error timeout" (the ConfigMap's spelling) was refused as the
    # unknown conditions [' ', 'e', 'i', 'm', 'o', 'r', 't'].
    with pytest.raises(ValueError, match="not the string 'error timeout'"):
        ProxySettings(proxy_next_upstream="error timeout")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["off", "non_idempotent", "error timeout non_idempotent",
                                   "error timeout invalid_header http_500 http_502 http_503 "
                                   "http_504 http_403 http_404 http_429"])
def test_guard_configmap_next_upstream_values_are_taken(value: str) -> None:
    cfg = _config.parse_config_data({"proxy-next-upstream": value})
    assert cfg.settings.proxy_next_upstream == tuple(value.split())


def test_guard_configmap_zero_counts_are_taken() -> None:
    # guard: 0 has a meaning for each (no limit, no reuse, one request) and is not refused.
    data = {k: "0" for k in ("proxy-next-upstream-tries", "proxy-body-size",
                             "upstream-keepalive-connections", "upstream-keepalive-requests",
                             "keep-alive-requests", "hsts-max-age")}
    data["large-client-header-buffers"] = "1 512"  # nginx's smallest size
    s = _config.parse_config_data(data).settings
    assert (s.proxy_next_upstream_tries, s.proxy_body_size, s.upstream_keepalive_connections,
            s.upstream_keepalive_requests, s.hsts_max_age) == (0, 0, 0, 0, 0)
    # The defaults, an empty list of conditions and a replace() of a derived value pass.
    ProxySettings()
    ProxySettings(proxy_next_upstream=(), max_headers=0, max_response_header_size=0)
    _config.parse_config_data({"proxy-body-size": "8m"}, base=s)


# --- 5. Metrics: certificate gauge updates while a scrape renders --------------------------


def test_guard_certificate_series_never_vanish_during_updates() -> None:
    # guard: set_certificates on one thread, render (MetricsServer's executor) on another: a
    # host listed before and after each update is in every exposition (prometheus-client's
    # labels()/remove() and collect() take the metric's lock; the gauge is never cleared).
    m = Metrics()
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    stop = threading.Event()
    missing: list[bytes] = []

    def scrape() -> None:
        while not stop.is_set():
            page = m.render()
            if b'host="keep.test"' not in page:
                missing.append(page)

    m.set_certificates([("keep.test", "default/keep", when)])
    # Thread switches every microsecond, not every 5 ms: a clear() then labels() update
    # (before dc65441) is caught here in a few hundred updates.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t = threading.Thread(target=scrape)
    t.start()
    try:
        for i in range(400):
            m.set_certificates([("keep.test", "default/keep", when),
                                (f"h{i}.test", "default/s", when)])
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(interval)
    assert not missing
    page = m.render().decode()
    assert 'host="h399.test"' in page and 'host="h398.test"' not in page
