"""Session 29 docs audit (A2): the statements the audit wrote or corrected, held to the code.

No behaviour changed: each test pins a sentence of README.md / docs/observability.md, so that
a later change of the code shows up as a failing test rather than a false page.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ingresslib import ValidationError
from ingresslib._accesslog import AccessLog, configure_access_log
from ingresslib._config import parse_config_data
from ingresslib.proxy import RequestRecord

from _proxy_harness import ProxyPair, Route


@pytest.fixture
def access_stream() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = configure_access_log(stream, "text")
    try:
        yield stream, handler
    finally:
        logger = logging.getLogger("ingresslib.access")
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def _record(request: bytes) -> RequestRecord:
    pair = ProxyPair([Route()], None)
    pair.send(request)
    (record,) = pair.records
    return record


UNDERSCORE = (b"GET / HTTP/1.1\r\nHost: a.test\r\nX_My_Key: v1\r\n"
              b"Connection: close\r\n\r\n")


@pytest.mark.parametrize("data, expected", [
    ({}, "[-]"),
    ({"ignore-invalid-headers": "false"}, "[v1]"),
    ({"enable-underscores-in-headers": "true"}, "[v1]"),
])
def test_readme_http_variable_of_an_underscore_name_where_nginx_keeps_the_line(
        data: dict[str, str], expected: str,
        access_stream: tuple[io.StringIO, logging.Handler]) -> None:
    # README "Access log format": "a name with `_` only where `enable-underscores-in-headers`,
    # or `ignore-invalid-headers: "false"`, keeps it".
    settings = parse_config_data({**data, "log-format-upstream": "[$http_x_my_key]"}).settings
    stream, _ = access_stream
    AccessLog(settings=settings)(_record(UNDERSCORE))
    assert stream.getvalue() == expected + "\n"


@pytest.mark.parametrize("value, line", [
    ("a' b", "ab'"),     # README: "`a' b` logs `ab'`"
    ("a'\tb", "ab'"),    # white space
    ("a')", "a)'"),      # or ")"
])
def test_readme_a_quote_before_white_space_or_paren_splits_the_format(
        value: str, line: str, access_stream: tuple[io.StringIO, logging.Handler]) -> None:
    cfg = parse_config_data({"log-format-upstream": value})
    assert cfg.warnings == ()
    stream, _ = access_stream
    AccessLog(settings=cfg.settings)(_record(UNDERSCORE))
    assert stream.getvalue() == line + "\n"


@pytest.mark.parametrize("value", ["a'b", "a\\", "x" * 4096])
def test_readme_what_nginx_tmpl_quotes_cannot_hold_is_an_error(value: str) -> None:
    with pytest.raises(ValidationError, match="data.log-format-upstream"):
        parse_config_data({"log-format-upstream": value})


def test_observability_access_log_json_keeps_its_fields_whatever_the_format(
        access_stream: tuple[io.StringIO, logging.Handler]) -> None:
    # docs/observability.md: "`--access-log json` writes the same fields as one JSON object
    # per line, whatever `log-format-upstream` says"; the text form writes the format.
    settings = parse_config_data({"log-format-escape-json": "true",
                                  "log-format-upstream": '{"s": $status}'}).settings
    record = _record(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    stream, handler = access_stream
    AccessLog(settings=settings)(record)
    assert stream.getvalue() == '{"s": 200}\n'
    stream.seek(0)
    stream.truncate()
    logger = logging.getLogger("ingresslib.access")
    logger.removeHandler(handler)
    json_handler = configure_access_log(stream, "json")
    try:
        AccessLog(settings=settings)(record)
    finally:
        logger.removeHandler(json_handler)
    entry = json.loads(stream.getvalue())
    assert entry["status"] == 200 and "s" not in entry and "remote_addr" in entry
