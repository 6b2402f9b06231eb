"""The Router's inline canary-header read with a non-ASCII value (session 17)."""

from __future__ import annotations

from _counters import counters  # noqa: F401
from test_balance_s17 import _canary_router, _utf8_request


def test_router_non_ascii_header_value_matches_the_utf8_header() -> None:
    # ingress-nginx compares the header's bytes with the annotation's (its UTF-8): the
    # Router's inline h11 read compared latin-1 bytes, so "José" never matched through the
    # proxy. Twice: the first route builds the state, the second takes the fast path.
    router = _canary_router({"canary-by-header": "X-User", "canary-by-header-value": "José"})
    for _ in range(2):
        d = router.route("GET", "a.test", "/", _utf8_request("José"))
        assert d is not None and d.canary
        d = router.route("GET", "a.test", "/", _utf8_request("Jose"))
        assert d is not None and not d.canary
    d = router.route("GET", "a.test", "/", {"X-User": "José"})
    assert d is not None and d.canary
