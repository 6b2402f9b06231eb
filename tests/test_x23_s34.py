"""Session 34, x23: a second engineer's review of round 1 (x17-x20) against ingress-nginx.

Found wrong and fixed here (each test marked DEFECT failed before the fix):

1. x20's hint for an Ingress backend port that is a Service port's ``targetPort`` named a
   UDP (or SCTP) Service port and said ingress-nginx serves it: ``port.number: 8080`` with
   ``'dns' 53/UDP -> 8080`` read "its port 'dns' 53/UDP has targetPort 8080, which
   ingress-nginx also matches ...: use 53", and ``53`` is then refused as "port 53 is UDP,
   not TCP". ingress-nginx's serviceEndpoints does pick that port (the first match:
   "break"), but getEndpointsFromSlices keeps only the slice ports of the HTTP proxy's
   protocol ("if !reflect.DeepEqual(*epPort.Protocol, proto) { continue }", proto
   ``apiv1.ProtocolTCP``): no endpoint there either. The hint now names the first port whose
   targetPort is the backend's only if it is TCP.
2. The same hint with ``service-upstream: "true"`` on a Service that has a ClusterIP and a
   backend port number: ingress-nginx's getServiceClusterEndpoint dials the ClusterIP at the
   backend's number as written ("endpoint.Port = backend.ServicePort.String()", names only
   looked up), never by targetPort, so "which ingress-nginx also matches" was false (README's
   ``service-upstream`` row says what it does). No hint there now; a port name still gets it
   (getServiceClusterEndpoint finds no port of that name and ingress-nginx falls back to
   serviceEndpoints, which matches the targetPort), so does a headless Service.

Checked and found right (probed; the x19 ones held by the guards below):

- x19, the chunk-line 413: each request gets a new reader (``_H11Reader`` makes one per
  head), so a keep-alive or pipelined second request counts its chunks from 0; a request
  answered locally (403, a bodiless one or a discarded chunked body) leaves the next one its
  limit; the 413 is logged, and the upstream connection (a pooled one reused included) is
  closed, never pooled; ``proxy-request-buffering: "on"``: 413 at the line, no upstream
  opened; the unrouted deferred path: 404 within the limit, 413 at the line past it; the last
  chunk and trailers count nothing; a size over ``_MAX_CHUNK_SIZE`` stays 400 (nginx's
  ngx_http_parse_chunked refuses it before the limit is looked at). Cost on a plain GET: the
  ``type(conn._body) is _RequestChunkedReader`` test in ``_pump_client``, about 12 ns a
  request measured (no cheaper place: the routed branch of ``_on_request`` would need a
  test per request too, a GET having no Content-Length either).
- x18: the read deadline is held only while the upstream's buffer is full, its
  proxy_send_timeout armed and no upstream byte came; ``got_data`` is reset when a try adopts
  a (pooled) connection, and a closed try's connection leaves ``upstreams``, so a retry or a
  reused connection gets the same rule; a tunnel and a begun response keep their timers;
  ``proxy-send-timeout`` 0 arms no stall, so the read timer bounds an upstream that never
  reads, as before.
- x17: captures before the ``?`` copied; ``$2`` twice in the arguments both escaped; a final
  ``?`` (``/$2?``) escapes nothing and drops the query; ``%3F``, ``%25`` stay as they are.
"""

from __future__ import annotations

from ingresslib._endpoints import EndpointIndex
from ingresslib._models import ServicePort
from ingresslib.proxy import ProxySettings

from _proxy_harness import ProxyPair, Route, status_of
from _router_helpers import resources, service, slice_

_LIMIT = ProxySettings(proxy_body_size=10)
_CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def _reason(ports: list[ServicePort], backend_port: int | str, *,
            service_upstream: bool = False, cluster_ip: str | None = "10.96.0.10") -> str:
    svc = service("web", ports, cluster_ip=cluster_ip)
    res = resources(svc, slice_("web-1", "web", ["10.0.0.1"], [("http", 9090)]))
    eps = EndpointIndex(res).resolve("default", "web", backend_port, service_upstream)
    assert eps.endpoints == ()
    assert eps.reason is not None
    return eps.reason


def test_hint_never_names_a_service_port_of_another_protocol() -> None:
    # DEFECT: "use 53" for a UDP port, which is then "port 53 is UDP, not TCP".
    udp_first = [ServicePort(53, "dns", 8080, protocol="UDP"), ServicePort(80, "http", 9090)]
    assert _reason(udp_first, 8080) == (
        "Service default/web has no port 8080 (its ports: 'dns' 53/UDP, 'http' 80)")
    # Nor the TCP port after it: serviceEndpoints "break"s at its first match, the UDP one.
    both = [ServicePort(53, "dns", 8080, protocol="UDP"), ServicePort(80, "http", 8080)]
    assert _reason(both, 8080) == (
        "Service default/web has no port 8080 (its ports: 'dns' 53/UDP, 'http' 80)")
    # A TCP port first is named, whatever follows.
    tcp_first = [ServicePort(80, "http", 8080), ServicePort(53, "dns", 8080, protocol="UDP")]
    reason = _reason(tcp_first, 8080)
    assert "its port 'http' 80 has targetPort 8080" in reason and "use 80" in reason


def test_hint_not_given_for_service_upstream_by_number() -> None:
    # DEFECT: getServiceClusterEndpoint dials ClusterIP:8080, no targetPort matching.
    ports = [ServicePort(80, "http", 8080)]
    assert _reason(ports, 8080, service_upstream=True) == (
        "Service default/web has no port 8080 (its ports: 'http' 80)")


def test_hint_kept_where_ingress_nginx_falls_back_to_service_endpoints() -> None:
    # guard: a name getServiceClusterEndpoint does not find, or a headless Service: ingress-
    # nginx's serviceEndpoints, which matches the targetPort, decides.
    by_name = _reason([ServicePort(80, "http", "web")], "web", service_upstream=True)
    assert "its port 'http' 80 has targetPort 'web'" in by_name and "use 'http'" in by_name
    headless = _reason([ServicePort(80, "http", 8080)], 8080, service_upstream=True,
                       cluster_ip="None")
    assert "its port 'http' 80 has targetPort 8080" in headless and "use 80" in headless
    plain = _reason([ServicePort(80, "http", 8080)], 8080)
    assert "its port 'http' 80 has targetPort 8080" in plain


# --- x19 guards: the chunk-line limit is each request's -----------------------------------------


def test_guard_keep_alive_request_counts_its_chunks_from_zero() -> None:
    # 5 bytes, then 8 on the same connection (13 together, over 10): each within the limit.
    pair = ProxyPair([Route()], _LIMIT)
    out = pair.send(_CHUNKED + b"5\r\nhello\r\n0\r\n\r\n"
                    + _CHUNKED + b"8\r\nabcdefgh\r\n0\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 ") == 2, out
    assert not pair.closed


def test_guard_limit_holds_after_a_local_answer() -> None:
    # The 403's discarded body had no limit; the next request's chunk line still has one.
    deny = Route("/deny", annotations={
        "nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"})
    pair = ProxyPair([Route(), deny], _LIMIT)
    out = pair.send(b"POST /deny HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"20\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n" + _CHUNKED + b"100\r\nabc")
    assert out.startswith(b"HTTP/1.1 403 ") and out.count(b"HTTP/1.1 413 ") == 1, out
    assert pair.closed and pair.records[-1].status == 413


def test_guard_reused_upstream_is_closed_after_the_chunk_line_413() -> None:
    pair = ProxyPair([Route()], _LIMIT)
    assert status_of(pair.send(_CHUNKED + b"5\r\nhello\r\n0\r\n\r\n")) == 200
    assert pair.send(_CHUNKED + b"5\r\nhello\r\n") == b""
    out = pair.send(b"6\r\nabc")
    assert status_of(out) == 413, out
    assert len(pair.upstreams) == 1  # the first request's connection, reused
    assert not pair.closes[-1].reuse  # half a request on it: never pooled again
    assert pair.upstreams[0].raw.endswith(b"\r\n\r\n5\r\nhello\r\n")  # none of the 6
