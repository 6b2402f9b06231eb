"""``ingresslib explain`` and ``ingresslib check``: the route table, told to a person."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import FieldError, ValidationError
from ._goparse import normalize_string, parse_bool
from ._explain_url import (UsageError, remove_dot_segments, shown_url, split_url,
                           url_credentials)
from ._iptext import host_port, ip_text
from ._resources import Resources
from ._table import CAUGHT_DEFAULT, NOT_SERVED, RouteTable

if TYPE_CHECKING:
    from ._explain_verdict import ProxyAnswer
    from ._tls_hosts import TLSProblem
    from .proxy._access import Access
    from .proxy._annotations import RouteWarning
    from .proxy._settings import ProxySettings

__all__ = ["explain_main", "check_main", "split_url", "explain_url", "render_text", "UsageError",
           "shown_url", "url_credentials"]  # the URL's, re-exported from _explain_url


#: RFC 9110 §5.6.2: ``token = 1*tchar``; header names and methods are tokens.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def explain_url(
    table: RouteTable, url: str, *, res: Resources | None = None, method: str = "GET",
    headers: Sequence[tuple[str, str]] = (), ingress_class: str | None = None,
    controller: str | None = None, client_ip: str | None = None,
    settings: ProxySettings | None = None, load_balance: str | None = None,
    tls_port: int | None = None, service_upstream: bool = False,
    default_ssl_certificate: str | None = None,
) -> dict[str, Any]:
    """:func:`_explain_url`, and ``clients_send``: the path curl (without ``--path-as-is``)
    and browsers send for a URL whose path has ``.`` or ``..`` segments (they remove them,
    RFC 3986 §5.2.4: ``http://h/../x`` is ``GET /x``), where explain sends it as written,
    the proxy's own answer to it (``'..' above the root``: 400). Without it an operator read
    a 400 that curl never meets, or a route curl does not take."""
    out = _explain_url(table, url, res=res, method=method, headers=headers,
                       ingress_class=ingress_class, controller=controller, client_ip=client_ip,
                       settings=settings, load_balance=load_balance, tls_port=tls_port,
                       service_upstream=service_upstream,
                       default_ssl_certificate=default_ssl_certificate)
    if not url.startswith("/"):  # a target alone is sent as written by every client
        path, sep, query = str(out.get("path", "")).partition("?")
        sent = remove_dot_segments(path)
        if sent != path:
            out["clients_send"] = sent + sep + query
    if tls_port is None and res is not None and _scheme(url) == "http" \
            and out.get("verdict") is not None:
        with_tls = _with_tls(table, url, res, out, method=method, headers=headers,
                             ingress_class=ingress_class, controller=controller,
                             client_ip=client_ip, settings=settings, load_balance=load_balance,
                             service_upstream=service_upstream,
                             default_ssl_certificate=default_ssl_certificate)
        if with_tls is not None:
            out["with_tls"] = with_tls
    return out


def _with_tls(table: RouteTable, url: str, res: Resources, out: dict[str, Any],
              **request: Any) -> dict[str, Any] | None:
    """``with_tls``: the redirect ``serve --tls-listen`` (and ingress-nginx, which always has
    its HTTPS port) answers this ``http://`` request, which explain without ``--tls`` answers
    as a plain-HTTP ``serve`` does: ``{"status", "location"}`` for a host with TLS whose
    ssl-redirect applies, else None. Without it the proxied answer read as the cluster's;
    and so did a 503 (no ready endpoint), 403 or 401, which the redirect comes before (the
    proxy's order: a denied location, then the redirects, then access and endpoints)."""
    try:
        from ._tls_hosts import tls_hosts
    except ImportError:  # pragma: no cover - a Python without ssl
        return None
    from ._normalize import normalize_host

    name = normalize_host(str(out.get("host") or ""))  # (the Host as the server matches it)
    if name is None or not tls_hosts(res, table.served)(name):
        return None
    other = _explain_url(table, url, res=res, tls_port=443, **request)
    v = other.get("verdict")
    if v is None or v["proxied"] or v.get("location") is None:
        return None
    plain = out["verdict"]
    if (plain["status"], plain.get("location")) == (v["status"], v["location"]):
        return None  # the same answer (app-root's redirect comes first)
    return {"status": v["status"], "location": v["location"]}


def _explain_url(
    table: RouteTable, url: str, *, res: Resources | None = None, method: str = "GET",
    headers: Sequence[tuple[str, str]] = (), ingress_class: str | None = None,
    controller: str | None = None, client_ip: str | None = None,
    settings: ProxySettings | None = None, load_balance: str | None = None,
    tls_port: int | None = None, service_upstream: bool = False,
    default_ssl_certificate: str | None = None,
) -> dict[str, Any]:
    """What the table does with ``url``; with ``res``, also which endpoint the router picks
    and what the proxy answers (``verdict``; ``access``: the route's access control).

    A ``Host`` header in ``headers`` is the host routed on, as for ``curl -H 'Host: ...'``:
    the Host header, not the URL, is what a server sees. ``client_ip`` is the TCP peer's
    address (None: unknown, and a verdict that hangs on it says so); ``settings`` the proxy's
    (``--config``: block-cidrs, default source ranges, trusted forwarded headers...).
    ``tls_port``: the verdict of a server with an HTTPS listener on that port (``serve
    --tls-listen``): ``http://`` requests for the hosts with TLS get the ssl-redirect, whose
    ``Location`` names the port unless it is 443. None (default): a plain-HTTP ``serve``.
    ``default_ssl_certificate``: serve's ``--default-ssl-certificate`` (``tls``'s
    ``default_certificate``).

    Also ``shadowed``: the table's notes on the rules the matched one shadows (each would
    answer this request and never does); with ``res`` and an ``https://`` URL, ``tls``: the
    SNI sent and the Secret whose certificate answers it (None: the default certificate).
    """
    host, path = split_url(url)
    credentials = url_credentials(url)
    if credentials is not None and not any(n.lower() == "authorization" for n, _ in headers):
        # What curl sends for this URL; an -H Authorization replaces it, as in curl.
        headers = [*headers, ("Authorization", credentials)]
    shown = shown_url(url)
    hosts = [value for name, value in headers if name.lower() == "host"]
    if hosts:
        # As written: curl sends a -H value's bytes as they are (UTF-8), no IDNA (the URL's
        # host is encoded, a header is not); the proxy judges them. Only the optional
        # whitespace around a field value (RFC 9110 §5.5: SP and HTAB) is no part of it: a
        # form feed or a no-break space is, and the proxy refuses it.
        host = hosts[-1].strip(" \t")
    refused = _refused_before_routing(method, host, len(hosts), headers=headers)
    if refused is not None:
        # The proxy refuses some heads for what explain does not model, before the checks
        # above (the size limits: 414, 431) or between them and CONNECT's and TRACE's 405
        # (Content-Length, Transfer-Encoding: nginx's order): its own answer to the head,
        # asked without a router (none of these is routed), says which refusal comes first.
        first = _head_refusal(settings, method=method, host=host, target=path, headers=headers)
        if first is not None and first[0] != refused[0]:
            refused = first
    if refused is not None:
        return {"url": shown, "host": host, "path": path, "status": refused[0],
                "reason": f"rejected: {refused[1]}", "match": None}
    out = {"url": shown, **table.explain(host, path)}
    twin = _www_twin_of(table, host)
    if twin is not None:
        # The twin's own server answers before any rule the table would match (a ``*.``
        # rule, a host-less rule, a catch-all default backend): the proxy does not route it
        # (``RouteOptionsSource._www_twin_hosts``), nor does explain.
        # ingress-nginx's http-redirect-code (308 unless the ConfigMap says otherwise).
        out.update(status=308 if settings is None else settings.http_redirect_code,
                   match=None, reason=twin)
    if out["status"] == 404 and out.get("match") is None and res is not None:
        left_out = _not_served_matches(table, res, host, path)
        if left_out:
            out["not_served"] = left_out
    if out["status"] == 400:
        # A path the table rejects: the proxy may refuse the head before it reads the path
        # (a request line over the limit: 414, a header: 431), and that is its answer.
        first = _head_refusal(settings, method=method, host=host, target=path, headers=headers)
        if first is not None and first[0] != 400:
            out.update(status=first[0], reason=f"rejected: {first[1]}")
    if out.get("match") is not None:
        served = table.match(host, path)  # does not raise: explain() just matched it
        if served is not None and served.canary is not None and "canary" in out["match"]:
            out["match"]["canary"]["rules"] = _canary_rules(served.canary.annotations)
        shadowed = [] if served is None else _shadowed_by(table, served)
        if shadowed:
            out["shadowed"] = shadowed
        stands = None if served is None else _stands_for(table, served)
        if stands is not None:
            out["path_note"] = stands
        regex_host = None if served is None else _regex_host_note(table, served)
        if regex_host is not None:
            out["regex_host"] = regex_host
    if res is not None and _scheme(url) == "https":
        tls_info = _certificate_for(res, table, split_url(url)[0], settings,
                                    default_ssl_certificate)
        if tls_info is not None:
            out["tls"] = tls_info
    if res is None or out["status"] == 400:
        return out
    try:
        from ._router import Router
    except ImportError:  # the router is optional for explain
        return out
    router = Router(res, ingress_class=ingress_class, controller=controller, seed=0,
                    load_balance="round_robin" if load_balance is None else load_balance,
                    service_upstream=service_upstream)  # (the ConfigMap's, as serve's)
    tls: dict[str, Any] = {}
    if tls_port is not None:
        # As serve --tls-listen configures its proxy: the certificate store's TLS hosts for
        # the Ingresses the router serves (``_serve_build._served_by``), and the listener's port.
        from ._tls_hosts import tls_hosts

        served = getattr(getattr(router, "table", None), "served", None)
        tls = {"tls_hosts": tls_hosts(res, served), "https_port": tls_port}
    is_https = _scheme(url) == "https"
    cert_auth = None
    if tls_port is not None or is_https:
        # auth-tls-*: serve gives its proxy the certificate store's client certificate
        # authentication per host only with an HTTPS listener (an https:// URL has one);
        # without it those routes answer 503 (fail closed), as explain then says.
        cert_auth = _client_cert_auth(res, getattr(getattr(router, "table", None), "served",
                                                   None), split_url(url)[0] if is_https
                                      else None)
        if cert_auth is not None:
            tls.update(client_auth=cert_auth[0], client_cert=cert_auth[1])
    answer = _ask_proxy(router, settings, method=method, host=host, target=path,
                        headers=headers, peer=client_ip, tls=is_https, **tls)
    if answer is not None and answer.status == 400 and not answer.routed \
            and not _cert_refused(cert_auth, host, is_https):
        # A malformed request, refused before the router was asked, for a reason the checks
        # above do not model (Content-Length with Transfer-Encoding...): no route to claim.
        # (A size limit's 414/431 stays a verdict on the route: the URL does route.)
        return {"url": shown, "host": host, "path": path, "status": 400,
                "reason": "rejected: the proxy refuses the request head (400)", "match": None}
    if answer is not None and answer.routed:
        d = answer.decision  # the proxy's own route call: one balancer pick
    elif out.get("match") is not None:
        d = router.route(method, host, path, headers=headers, client_ip=client_ip)
    else:
        d = None
    rule_reason = out["reason"]
    if d is not None:
        out["decision"] = {
            "service": d.service, "namespace": d.namespace, "port": d.port,
            "endpoint": None if d.endpoint is None else f"{d.endpoint[0]}:{d.endpoint[1]}",
            "canary": d.canary,
        }
        # Why the target port or the endpoints are missing (the backend's EndpointSet).
        why = getattr(getattr(d.handle, "eps", None), "reason", None)
        if why:
            out["decision"]["why"] = why
        if getattr(d, "default_backend", None) is not None:
            # The upstream name of a default-backend annotation's Service (it serves).
            out["decision"]["default_backend"] = d.default_backend
        affinity = _affinity(d)
        if affinity is not None:
            out["decision"]["affinity"] = affinity
        # The headers as the router read them: the proxy's (bytes, as on the wire) when it
        # routed, the -H text when explain asked the router itself.
        side = _canary_side(d, _as_sent(headers) if answer is not None and answer.routed
                            else headers, getattr(router, "warnings", ()))
        if side is not None:
            out["decision"]["canary_reason"] = side
        if d.endpoint is None:
            out["status"] = 503
            out["reason"] += ("; the backend has no ready endpoint" if d.service is not None else
                              f"; {_RESOURCE}")
    if answer is not None:
        _add_verdict(out, answer, client_ip, rule_reason)
        _add_location_features(out, answer, headers, getattr(router, "warnings", ()))
        _cookie_as_sent(out)
        _add_client_cert(out, answer, cert_auth, host, is_https)
        if settings is not None and settings.use_proxy_protocol and "verdict" in out:
            # use-proxy-protocol: serve hands its core the PROXY header's source as the peer
            # (proxy/_proxy_protocol.py ``_Accept``, a load balancer in proxy-real-ip-cidr):
            # that is the address --client-ip stands for.
            out["verdict"]["proxy_protocol"] = True
    if is_https:
        passthrough = _passthrough(res, split_url(url)[0], client_ip, ingress_class=ingress_class,
                                   controller=controller, load_balance=load_balance,
                                   service_upstream=service_upstream)
        if passthrough is not None:
            out["ssl_passthrough"] = passthrough
    return out


def _client_auth_problems(res: Resources, table: RouteTable) -> list[TLSProblem]:
    """What ``serve --tls-listen`` logs of the served Ingresses' ``auth-tls-secret`` (a Secret
    missing, without ``ca.crt``, unreadable: ``server_auths``' problems; the host fails
    closed), for ``check``."""
    from ._tls_hosts import _main_ingresses, client_auth_problem
    from .proxy._annotations import PREFIX
    from .proxy._clientcert import server_auths

    ordered, _canaries = _main_ingresses(res, table.served)
    if not any(PREFIX + "auth-tls-secret" in ing.metadata.annotations for ing in ordered):
        return []
    return [client_auth_problem(*p) for p in server_auths(ordered, res.secrets, PREFIX)[1]]


def _client_cert_auth(res: Resources, served: Any, sni: str | None) -> tuple[Any, Any] | None:
    """``(client_auth, client_cert)`` for the proxy, as ``serve --tls-listen`` gives them:
    the certificate store's ``auth-tls-*`` of each host (``server_auths`` over the served
    Ingresses, oldest first, canaries apart: ``CertificateStore.client_auth``) and, for an
    https:// URL whose SNI host verifies client certificates, what the handshake learns of a
    client that sends none (``client_cert_of``: ``ClientCert(key)``, ``verify`` NONE). None:
    no Ingress sets ``auth-tls-secret``."""
    try:
        from ._tls_hosts import _main_ingresses
        from .proxy._annotations import PREFIX
        from .proxy._clientcert import ClientCert, auth_for_host, server_auths
    except ImportError:  # pragma: no cover - a Python without ssl
        return None
    ordered, _canaries = _main_ingresses(res, served)
    if not any(PREFIX + "auth-tls-secret" in ing.metadata.annotations for ing in ordered):
        return None
    auths, _problems = server_auths(ordered, res.secrets, PREFIX)

    def client_auth(host: str) -> Any:
        return auth_for_host(auths, host)

    cert = None
    if sni is not None:
        from ._normalize import normalize_host

        auth = auth_for_host(auths, normalize_host(sni) or "")
        if auth is not None and auth.verifies:
            cert = ClientCert(auth.key)
    return client_auth, cert


def _cert_refused(cert_auth: tuple[Any, Any] | None, host: str, is_https: bool) -> bool:
    """The host's ``auth-tls-*`` makes the proxy answer before routing (its 400 for no
    certificate is no malformed head)."""
    if cert_auth is None or not is_https:
        return False
    from ._normalize import normalize_host

    auth = cert_auth[0](normalize_host(host) or "")
    return auth is not None and (auth.verifies or auth.denied is not None)


def _add_client_cert(out: dict[str, Any], answer: ProxyAnswer, cert_auth: tuple[Any, Any] | None,
                     host: str, is_https: bool) -> None:
    """``client_cert_auth``: the ``auth-tls-*`` of the request's server (its host) as the
    proxy holds it, and what explain's client sends (no certificate), when the route or the
    host has one; ``"served": False`` (no HTTPS listener: the routes answer 503)."""
    from ._normalize import normalize_host

    auth = None if cert_auth is None else cert_auth[0](normalize_host(host) or "")
    needs = bool(getattr(answer.options, "auth_tls", False))
    if auth is None and not needs:
        return
    info: dict[str, Any] = {"served": auth is not None}
    if auth is not None:
        info.update(secret=auth.secret, ingress=auth.ingress, verify_client=auth.verify_client,
                    verify_depth=auth.depth, error_page=auth.error_page,
                    pass_certificate=auth.pass_cert, match_cn=auth.match_cn_text or None,
                    denied=auth.denied, client_sends="no certificate" if is_https else
                    "plain HTTP (no TLS)")
    out["client_cert_auth"] = info
    v = out.get("verdict")
    if v is None or not v.get("status"):
        return
    was = v["reason"]
    if auth is None and v["status"] == 503 and cert_auth is None:
        v["reason"] = ("auth-tls-secret: client certificate authentication needs serve's "
                       "HTTPS listener (--tls-listen); without it the routes answer 503 "
                       "(give --tls to explain with one)")
    elif auth is None and v["status"] == 503:
        v["reason"] = ("auth-tls-secret: the request's host has no client certificate "
                       "authentication of its own (a server-alias name): the route fails "
                       "closed, 503")
    elif auth is None:
        return
    elif auth.denied is not None and v["status"] == 503:
        v["reason"] = ("auth-tls: the host's client certificate authentication cannot be "
                       f"used: {auth.denied}")
    elif is_https and v["status"] in (400, 302) and auth.verifies:
        v["reason"] = ("auth-tls: no client certificate sent (explain's client sends none), "
                       f"auth-tls-verify-client {auth.verify_client}"
                       + (f": redirect to auth-tls-error-page {answer.location}"
                          if v["status"] == 302 else ": No required SSL certificate was sent"))
    elif is_https and v["status"] == 421:
        v["reason"] = ("auth-tls: the Host names a server whose client certificate "
                       "authentication is not the one the handshake (SNI) was made with: "
                       "421 Misdirected Request")
    elif v["status"] == 403 and auth.match_cn is not None:
        v["reason"] = (f"auth-tls-match-cn {auth.match_cn_text!r} does not match the client's "
                       "subject DN (none: no certificate)")
    else:
        return
    if out.get("status") == v["status"] and str(out.get("reason", "")).endswith(f"; {was}"):
        out["reason"] = out["reason"][:-len(was)] + v["reason"]


def _passthrough(res: Resources, sni: str, client_ip: str | None, **router_args: Any
                 ) -> dict[str, Any] | None:
    """``ssl_passthrough``: an https:// URL whose SNI names an ssl-passthrough host, as
    ``serve --tls-listen --enable-ssl-passthrough`` decides it (proxy/_passthrough.py
    ``PassthroughRoutes.decide``, over a router of its own: a fresh server's first pick):
    ``{"host", "endpoint"}`` (the endpoint the TLS connection is piped to untouched; None: the
    connection is closed) and ``reason``. None: not a passthrough host (or no such flag could
    make it one)."""
    try:
        from ._router import Router
        from .proxy._passthrough import CLOSE, PASSTHROUGH, PassthroughRoutes
    except ImportError:  # pragma: no cover
        return None
    if not any(PASSTHROUGH in (ing.metadata.annotations or {}) for ing in res.ingresses):
        return None  # (the usual case: no Router built)
    name = sni.rpartition(":")[0] if sni.rpartition(":")[2].isdigit() else sni
    lb = router_args.pop("load_balance", None)
    router = Router(res, seed=0, load_balance="round_robin" if lb is None else lb,
                    **router_args)
    routes = PassthroughRoutes(True)
    if name.lower() not in routes.hosts(router).routes:
        return None
    target = routes.decide(router, name.encode("ascii", "replace"), client_ip)
    if target is None:   # the '/' rule's Service does not exist (``undialable``)
        return {"host": name.lower(), "enabled": True, "endpoint": None,
                "reason": "its TLS is terminated here, as for a host without ssl-passthrough: "
                          "the '/' rule's Service does not exist"}
    if target == CLOSE:
        return {"host": name.lower(), "enabled": True, "endpoint": None,
                "reason": "the connection is closed (no '/' rule, its Service has no "
                          "ClusterIP, or its backend has no ready endpoint)"}
    assert isinstance(target, tuple)
    return {"host": name.lower(), "enabled": True, "endpoint": host_port(*target),
            "reason": f"piped to {host_port(*target)} without TLS termination (with "
                      "--enable-ssl-passthrough): the endpoint's certificate answers, and no "
                      "HTTP routing applies"}


def passthrough_off(pt: dict[str, Any]) -> dict[str, Any]:
    """``ssl_passthrough`` without ``--enable-ssl-passthrough`` (``explain``'s default, as the
    controller's): the annotation is ignored and the TLS terminated here, as ingress-nginx
    ignores it without its flag (no TLS proxy on the HTTPS port); ``with_flag``: what
    :func:`_passthrough` says with it."""
    return {"host": pt["host"], "enabled": False, "endpoint": None,
            "reason": "ignored without --enable-ssl-passthrough (as ingress-nginx ignores the "
                      "annotation without its flag): its TLS is terminated here",
            "with_flag": {"endpoint": pt["endpoint"], "reason": pt["reason"]}}


def _add_location_features(out: dict[str, Any], answer: ProxyAnswer,
                           headers: Sequence[tuple[str, str]], notes: Sequence[Any]) -> None:
    """What the route's location does beside choosing the answer, as the proxy parsed and
    did it (``_explain_verdict``): ``cors``, ``rate_limit``, ``upstream_vhost``,
    ``response_rewrite``, ``rewrite`` (what a rewrite-target's backend receives),
    ``default_backend`` and the verdict's ``upstream_host`` (the Host the endpoint gets),
    each only when it applies."""
    from ._explain_verdict import (describe_config_headers, describe_cors,
                                   describe_custom_headers, describe_ext_auth,
                                   describe_limit_rate, describe_location_extras,
                                   describe_mirror, describe_proxy_ssl, describe_rate_limit,
                                   describe_rewrite, describe_target_rewrite,
                                   request_origin, upstream_field, upstream_vhost)
    from .proxy._globalratelimit import describe as describe_global_rate_limit

    if answer.routed:
        config = describe_config_headers(answer)
        if config is not None:
            out["config_headers"] = config
    if not answer.routed or (answer.decision is None and not answer.server_location):
        return
    # Each part only when it applies (its describer answers None otherwise), in this order.
    _put(out, (("cors", describe_cors(answer, answer.method, request_origin(headers))),
               ("rate_limit", describe_rate_limit(answer)),
               ("global_rate_limit", describe_global_rate_limit(answer)),
               ("custom_headers", describe_custom_headers(answer))))
    if answer.decision is None:
        # A path no rule covers: the server's ``location /`` (the host's oldest Ingress's
        # annotations) gave the CORS, limits and custom-headers above; nothing else applies.
        if "cors" in out or "rate_limit" in out or "custom_headers" in out:
            out["server_location"] = True
        return
    _put(out, (("ext_auth", describe_ext_auth(answer)), ("mirror", describe_mirror(answer)),
               ("limit_rate", describe_limit_rate(answer)),
               ("proxy_ssl", describe_proxy_ssl(answer))))
    out.update(describe_location_extras(answer))
    _put(out, (("rewrite", describe_target_rewrite(answer, str(out["path"]))),
               ("upstream_vhost", upstream_vhost(answer)),
               ("response_rewrite", describe_rewrite(answer))))
    host = upstream_field(answer, "host")
    if host is not None and out.get("verdict") is not None:
        out["verdict"]["upstream_host"] = host
    dflt = _default_backend(answer, notes)
    if dflt is not None:
        out["default_backend"] = dflt


def _put(out: dict[str, Any], parts: Sequence[tuple[str, Any]]) -> None:
    """``out[key] = value`` for each part whose value is not None, in order."""
    for key, value in parts:
        if value is not None:
            out[key] = value


def _default_backend(answer: ProxyAnswer, notes: Sequence[Any]) -> dict[str, Any] | None:
    """``default_backend``: the matched rule's Ingress's ``default-backend`` annotation and
    whether its Service serves this request (the Router's ``Decision.default_backend``: the
    rule's Service has no ready endpoint and the annotation's has one), with the headers the
    proxy sent it (X-Code 503...); else why not (the Router's warning: no such Service, no
    ports; or no ready endpoint; or the rule's Service has one). None without the annotation
    (or for a resource backend, which ingress-nginx does not give one)."""
    from ._endpoints import DEFAULT_BACKEND_ANNOTATION
    from ._explain_verdict import default_backend_headers

    d = answer.decision
    m = d.match
    raw = (getattr(m, "annotations", None) or {}).get(DEFAULT_BACKEND_ANNOTATION)
    if raw is None or m.service is None:
        return None
    # Read as the Router reads it (``custom_default_backend``: each line trimmed).
    name = normalize_string(raw)
    service = f"{m.namespace}/{name}"
    info: dict[str, Any] = {"annotation": raw, "service": service, "used": False,
                            "upstream": None, "reason": "", "headers": {}}
    field = f"metadata.annotations[{DEFAULT_BACKEND_ANNOTATION}]"
    problem = next((n.message for n in notes
                    if n.object == f"Ingress {m.ingress}" and n.field == field), None)
    if d.default_backend is not None:
        why = f"the rule's Service {m.namespace}/{m.service} has no ready endpoint"
        info["upstream"] = d.default_backend
        if answer.status == 0:
            info.update(used=True, headers=default_backend_headers(answer),
                        reason=f"{why}: served by the default-backend Service {service}")
        else:
            # A local answer comes first (a redirect, the CORS preflight, 403, 401...).
            info["reason"] = (f"{why}: the default-backend Service {service} would serve, "
                              f"but the proxy answers {answer.status} itself first")
    elif problem is not None:
        info["reason"] = f"ignored: {problem.removesuffix('; ignored')}"
    elif d.canary:
        info["reason"] = ("not used: the canary serves (the annotation applies to the main "
                          "rule's backend)")
    elif d.endpoint is None:
        info["reason"] = (f"ignored: Service {service} has no ready endpoint either "
                          "(ingress-nginx uses it only with one): the 503 stays")
    else:
        info["reason"] = (f"not used: the rule's Service {m.namespace}/{m.service} has a ready "
                          "endpoint")
    # custom-http-errors: the statuses of the upstream's answer the Service answers instead
    # (the proxy's own, asked with an upstream answering each listed status).
    caught = {code: ep for code, ep in answer.intercepted.items() if ep is not None}
    info["intercepts"] = sorted(caught)
    # Whose custom-http-errors list: the location's annotation, else the ConfigMap's key
    # (``parse_route_options``: the annotation's codes when it has valid ones).
    own = (getattr(m, "annotations", None) or {}).get(P_CUSTOM_HTTP_ERRORS)
    s = answer.settings
    from_config = bool(answer.intercepted) and s is not None and bool(
        s.custom_http_errors) and not (own is not None and _valid_codes(own))
    if answer.intercepted:
        info["intercepts_from"] = "configmap" if from_config else "annotation"
    label = ("custom-http-errors (the ConfigMap's key)" if from_config
             else "custom-http-errors")
    if caught:
        codes = ", ".join(str(c) for c in sorted(caught))
        ep = host_port(*next(iter(caught.values())))
        info["reason"] = (info["reason"].replace("not used: ", "not used for this answer: ", 1)
                          + f"; {label}: an upstream answer {codes} is answered by "
                          f"it instead (endpoint {ep})")
    elif answer.intercepted:
        info["reason"] += (f"; {label}: the proxy intercepts none of "
                           + ", ".join(str(c) for c in sorted(answer.intercepted))
                           + " (the upstream's answer passes)")
    return info


#: The custom-http-errors annotation (full key).
P_CUSTOM_HTTP_ERRORS = "nginx.ingress.kubernetes.io/custom-http-errors"


def _valid_codes(raw: str) -> bool:
    """The annotation gives codes the proxy uses (``parse_route_options``: any codes
    ``_custom_errors`` returns replace the ConfigMap's)."""
    from .proxy._error_pages import parse_custom_http_errors

    return bool(parse_custom_http_errors(raw)[0])


def _stands_for(table: RouteTable, m: Any) -> str | None:
    """The table's note on the matched rule when its path stands for another path once
    canonical (``_table._stands_for``: Exact ``/a/%2e%2e`` matches as Exact ``/``), as check
    says it; None: the path is matched as written."""
    if m.path is None:
        return None
    head = f"{m.path_type} {m.path!r} on host {m.host or '*'} matches as "
    return next((d.message for d in table.diagnostics
                 if d.object == f"Ingress {m.ingress}" and d.message.startswith(head)), None)


def _regex_host_note(table: RouteTable, m: Any) -> str | None:
    """check's warning on the matched rule when ingress-nginx makes its host regex and so
    matches its path otherwise (proxy/_annotations.py ``regex_host_warning``), its message;
    None: nothing to say (the key is then absent)."""
    try:
        from .proxy._annotations import regex_host_warning
    except ImportError:  # pragma: no cover - the proxy is optional for explain
        return None
    warning = regex_host_warning(table.routes, m)
    return None if warning is None else warning.message


def _shadowed_by(table: RouteTable, m: Any) -> list[str]:
    """The table's notes (``check``'s warnings) on the rules ``m`` shadows: same host, same
    path and kind of match, so each would have answered this very request and never does
    (a rule written twice, a second Ingress for the same path). Without them explain named
    the winner only, and "why does my rule not get this request?" had no answer but
    ``check``'s whole list. For a default backend, the default backends it leaves unused."""
    if m.is_default_backend:
        # "never used: the default backend(s) of the older Ingress(es) A, B serve(s) ..."
        named = re.compile(r"Ingress(?:es)? (?:\S+, )*" + re.escape(m.ingress) + r"[ ,)]")
        # And the root canaries (Prefix "/", paired with this default backend) a first one
        # shadows, as check names them.
        return [_note(d) for d in table.diagnostics
                if d.field == "spec.defaultBackend" and d.message.startswith("never used:")
                and not d.message.startswith(CAUGHT_DEFAULT)
                and named.search(d.message)] + _ignored_canaries(table, m)
    ing = m.ingress_object
    if ing is None:
        return []
    # The rule written as m's (its field is what the notes name); of two written alike, the
    # first in spec order keeps the slot (the build's tie-break) and the others are losers.
    obj = f"Ingress {m.ingress}"
    losers = {d.field for d in table.diagnostics if d.object == obj}
    fields = [f"spec.rules[{ri}].http.paths[{pi}]"
              for ri, rule in enumerate(ing.spec.rules) if (rule.host or None) == m.host
              for pi, p in enumerate(rule.paths or ()) if p.path == m.path
              and p.path_type == m.path_type]
    winner = next((f for f in fields if f not in losers), None)
    if winner is None:
        return []
    tail = f" is shadowed by {obj} {winner} and never matches"
    return ([_note(d) for d in table.diagnostics if d.message.endswith(tail)]
            + _ignored_canaries(table, m))


_RULE_FIELD = re.compile(r"spec\.rules\[(\d+)\]\.http\.paths\[(\d+)\]")


def _ignored_canaries(table: RouteTable, m: Any) -> list[str]:
    """The table's notes on the canary rules of this request's slot that a first canary
    shadows ("rule already has the canary X; ignored", X being the canary that answers here):
    each would have been this request's canary. The note names no path: the rule it is on is
    read from its field, and kept when it pairs with the slot of ``m``'s canary (same host,
    Exact or not, same canonical path, a Prefix one without its trailing slash), as
    ``_pair_canaries`` pairs them: the slot of a rule, or the root Prefix "/" of a host (or
    of every host) that a default backend serves."""
    if m.canary is None:
        return []
    from ._normalize import canonical_rule_path

    def slot(host: str | None, path: str | None, path_type: str | None) -> tuple[Any, ...]:
        exact = path_type == "Exact"
        key = canonical_rule_path(path or "/")
        return host, exact, key if exact else key.rstrip("/")

    mine = slot(m.canary.host, m.canary.path, m.canary.path_type)
    message = f"rule already has the canary {m.canary.ingress}; ignored"
    by_ref = {f"Ingress {ing.metadata.ref}": ing for ing in table.served}
    out = []
    for d in table.diagnostics:
        at = _RULE_FIELD.fullmatch(d.field) if d.message == message else None
        ing = by_ref.get(d.object)
        if at is None or ing is None:
            continue
        rule = ing.spec.rules[int(at[1])]
        p = (rule.paths or ())[int(at[2])]
        # canonical_rule_path does not raise here: an unmatchable path has no such note.
        if slot(rule.host or None, p.path, p.path_type) == mine:
            out.append(_note(d))
    return out


def _note(d: Any) -> str:
    """A table note without its severity label: ``Ingress ns/n: field: message``."""
    return str(d).removeprefix(f"{d.severity}: ")


def _certificate_for(res: Resources, table: RouteTable, url_host: str,
                     settings: ProxySettings | None = None,
                     default_ssl_certificate: str | None = None) -> dict[str, Any] | None:
    """The certificate ``serve --tls-listen`` answers an ``https://`` URL's handshake with:
    the SNI a client sends (the URL's host name; none for an IP address, RFC 6066 §3: "Literal
    IPv4 and IPv6 addresses are not permitted") looked up as the certificate store does
    (``_tls.certificate_for_name``: the store's own decision and lookup), and whether it is
    valid now (``validity``: ``"expired"`` or ``"not yet valid"`` is still served, as
    ingress-nginx serves it; ``check`` warns). Under the ConfigMap's ``ssl-reject-handshake``
    (``settings``), a name no server has, or none, gets no certificate: ``"handshake":
    "refused"`` and the ``"reason"`` (``_tls.handshake_refused``, the store's decision).
    None when ``ssl`` is missing. ``secret`` None: the default certificate, which
    ``"default_certificate"`` names with serve's ``--default-ssl-certificate``
    (``default_ssl_certificate``, :func:`_default_certificate`); without it, the generated
    one."""
    try:
        from ._tls import certificate_for_name, handshake_refused
    except ImportError:  # pragma: no cover - a Python without ssl
        return None
    name = (url_host.partition("]")[0] + "]" if url_host.startswith("[")
            else url_host.rsplit(":", 1)[0])
    try:
        ipaddress.ip_address(name.strip("[]"))
        sni = None
    except ValueError:
        sni = name.lower().removesuffix(".")
    out: dict[str, Any] = {"sni": sni, "secret": None, "not_after": None, "validity": None}
    if (settings is not None and settings.ssl_reject_handshake
            and handshake_refused(res, table.served, sni)):
        # ingress-nginx writes "ssl_reject_handshake on" in its default server only (nginx.tmpl,
        # $all.Cfg.SSLRejectHandshake): a ClientHello that no other server's name takes, or
        # one without a name, gets a fatal alert (ngx_http_ssl_servername: "*ad =
        # SSL_AD_UNRECOGNIZED_NAME"), no certificate and no request. The keys above stay
        # (null), so that a reader of the accepted case's keys still finds them.
        out.update(handshake="refused", reason=_REJECTED_HANDSHAKE)
        return out
    default = _default_certificate(res, default_ssl_certificate)
    hit = None if sni is None else certificate_for_name(res, table.served, sni, default[1])
    if hit is not None:
        secret, not_before, not_after = hit
        out.update(secret=secret, not_after=not_after.isoformat(),
                   validity=_validity(not_before, not_after))
    elif default_ssl_certificate is not None:
        # (Only with the flag: the keys above are the document's without it, as before.)
        out["default_certificate"] = default[0]
    return out


def _validity(not_before: datetime.datetime, not_after: datetime.datetime) -> str:
    """``"valid"``, ``"expired"`` or ``"not yet valid"`` now (each still served)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return "expired" if not_after < now else "not yet valid" if not_before > now else "valid"


def _default_certificate(res: Resources, ref: str | None
                         ) -> tuple[dict[str, Any], frozenset[str]]:
    """``tls``'s ``default_certificate`` (``secret``, ``not_after``, ``validity``,
    ``problem``) and the names it covers: the certificate serve's HTTPS listener answers a
    ClientHello with when no Ingress's Secret does (no SNI, a name no Ingress has, a host
    whose Secret is missing or unusable, a ``tls`` entry without ``secretName``). With
    ``--default-ssl-certificate`` (``ref``), that Secret's, as ingress-nginx serves it
    there instead of its fake certificate (``getDefaultSSLCertificate``; certificate.lua
    ``get_pem_cert_uid`` falls back to ``DEFAULT_CERT_HOSTNAME``); missing or unusable, the
    generated one, as serve (the store's reading: ``_tls.default_certificate``), and
    ``problem`` says why; ``secret`` None: the generated one."""
    out: dict[str, Any] = {"secret": None, "not_after": None, "validity": None,
                           "problem": None}
    if ref is None:
        return out, frozenset()
    from ._tls import default_certificate

    got = default_certificate(res, ref)
    if isinstance(got, str):
        out["problem"] = f"--default-ssl-certificate {ref}: {got}"
        return out, frozenset()
    secret, not_before, not_after, names = got
    out.update(secret=secret, not_after=not_after.isoformat(),
               validity=_validity(not_before, not_after))
    return out, names


#: Why a handshake is refused (``"tls"``'s ``"reason"``).
_REJECTED_HANDSHAKE = ("ssl-reject-handshake: a ClientHello naming no Ingress host, "
                       "server-alias or certificate, or no name, gets nginx's "
                       "ssl_reject_handshake unrecognized_name alert: no request is sent")


def _dates_text(validity: str | None, not_after: str) -> str:
    if validity == "expired":
        return f"expired on {not_after}; still served, as ingress-nginx does"
    if validity == "not yet valid":
        # (check's warning names the day it starts.)
        return f"not yet valid, valid until {not_after}; still served, as ingress-nginx does"
    return f"valid until {not_after}"


def _tls_line(t: dict[str, Any]) -> str:
    if t.get("handshake") == "refused":
        sni = "no SNI: an IP address" if t["sni"] is None else f"SNI {t['sni']}"
        return (f"  TLS ({sni}): the handshake is refused ({t['reason']}; below, what the "
                "request would get without the key)")
    if t["secret"] is not None:
        dates = _dates_text(t.get("validity"), t["not_after"])
        return f"  TLS (SNI {t['sni']}): the certificate of Secret {t['secret']} ({dates})"
    default = _default_text(t.get("default_certificate"))
    if t["sni"] is None:
        return f"  TLS (no SNI: an IP address): {default}"
    return (f"  TLS (SNI {t['sni']}): no Secret's certificate covers it (check says why when a "
            f"tls entry names it): {default}")


def _default_text(d: dict[str, Any] | None) -> str:
    """The default certificate of ``tls``'s ``default_certificate`` (None: no
    ``--default-ssl-certificate``: the text said before the flag, byte for byte, x50 s36; which
    one serve has, explain cannot know), for the text output."""
    if d is None:
        return "the default certificate (serve's --default-ssl-certificate, else a generated one)"
    if d["secret"] is None:
        return f"the generated default certificate ({d['problem']})"
    return (f"the default certificate, Secret {d['secret']} of --default-ssl-certificate "
            f"({_dates_text(d['validity'], d['not_after'])})")


def _www_twin_of(table: RouteTable, host: str) -> str | None:
    """Why ``host`` is answered by a ``from-to-www-redirect`` twin's server, or None when it
    is no twin of the table's served Ingresses (``_www.www_twins``, the proxy's rule)."""
    from ._normalize import normalize_host
    from ._www import www_twins

    name = normalize_host(host) if host else None
    hit = www_twins(table.served).get(name or "")
    if hit is None:
        return None
    to, ing = hit
    return (f"host {name} is the from-to-www-redirect twin of {to} (Ingress "
            f"{ing.metadata.ref}): ingress-nginx gives "
            "it a server of its own (nginx.go buildRedirects; an exact server_name, chosen "
            "before any *. rule, host-less rule or default backend), which redirects every "
            f"request to {to}")


def _not_served_matches(table: RouteTable, res: Resources, host: str,
                        path: str) -> list[dict[str, str]]:
    """The Ingresses the class filter left out (``--ingress-class``, ``--controller``) that
    would have answered this request, with the table's reason (``check`` prints it as
    ``info:``): a bare 404 hides that the rule exists and why it is not served."""
    served = {id(ing) for ing in table.served}
    reasons = {d.object: d.message.removesuffix(NOT_SERVED) for d in table.diagnostics
               if d.field == "spec.ingressClassName" and d.message.endswith(NOT_SERVED)}
    wanted = host.lower()
    out: dict[str, dict[str, str]] = {}
    for ing in res.ingresses:
        why = reasons.get(f"Ingress {ing.metadata.ref}")
        if id(ing) in served or why is None or ing.metadata.ref in out:
            continue  # (an Ingress defined twice: named once)
        # A cheap superset first (a rule of this host, a host-less or wildcard rule, a
        # default backend), then the table of that Ingress alone says whether it matches.
        if ing.spec.default_backend is None and not any(
                r.host is None or r.host.lstrip("*").lower() in wanted
                for r in ing.spec.rules):
            continue
        # (No BadRequestError: the filtered table matched the same host and path.)
        if RouteTable.build(Resources(ingresses=(ing,))).match(host, path) is not None:
            out[ing.metadata.ref] = {"ingress": ing.metadata.ref, "reason": why}
    return list(out.values())


class _Routed(Exception):
    """The proxy asked ``_NoRouter`` to route: it did not refuse the head."""


class _NoRouter:
    """The router of a proxy asked only whether it refuses a head before routing."""

    def route(self, *args: Any, **kwargs: Any) -> Any:
        raise _Routed


def _head_refusal(settings: ProxySettings | None, **request: Any) -> tuple[int, str] | None:
    """``(status, reason)`` of the proxy's answer to a head it refuses before routing, else
    None (it would route the request)."""
    try:
        answer = _ask_proxy(_NoRouter(), settings, peer=None, **request)
    except _Routed:
        return None
    if answer is None or not answer.status:
        return None
    return answer.status, f"the proxy refuses the request head ({answer.status})"


def _cookie_as_sent(out: dict[str, Any]) -> None:
    """The session cookie goes with a proxied response only (the proxy, as ingress-nginx's
    balancer phase, sets it when it opens the upstream): a local answer (401, 403, 3xx,
    503, 414, 431...) carries none. A verdict the client address decides keeps the cookie
    the proxied answer would set; the text says when."""
    a = out.get("decision", {}).get("affinity")
    v = out.get("verdict")
    if a is not None and v is not None and not (v["proxied"] or v["depends_on_client_ip"]):
        a["set_cookie"] = None


def _scheme(url: str) -> str:
    head, sep, _ = url.partition("://")
    return head.lower() if sep and not url.startswith("/") else "http"


def _ask_proxy(router: Any, settings: ProxySettings | None, **request: Any) -> ProxyAnswer | None:
    try:
        from ._explain_verdict import ask_proxy
    except ImportError:  # pragma: no cover - the proxy is optional for explain
        return None
    return ask_proxy(router, settings, **request)


def _add_verdict(out: dict[str, Any], answer: ProxyAnswer, client_ip: str | None,
                 rule_reason: str) -> None:
    """``access`` and ``verdict`` from the proxy's answer; ``status``/``reason`` follow a
    verdict that does not hang on the client address (the proxy's answer is the truth: a route
    the source ranges close is a 403, not a 200)."""
    from ._explain_verdict import describe_access

    access = answer.access
    if access is not None:
        out["access"] = describe_access(access)
    status = answer.status
    verdict: dict[str, Any] = {"client_ip": answer.client_ip if answer.routed else client_ip,
                               "peer": client_ip, "status": status or None,
                               "proxied": status == 0, "depends_on_client_ip": False}
    if status == 403 and client_ip is None and access is not None:
        # No address given: the proxy saw a peer without one, which every source range
        # refuses. The answer is the source ranges' to give, per address.
        verdict.update(status=None, depends_on_client_ip=True,
                       reason="depends on the client address: the source ranges answer 403 "
                              "to the addresses they refuse (give --client-ip ADDR)")
    else:
        verdict["reason"] = _verdict_reason(answer, access)
    if answer.location is not None:
        verdict["location"] = answer.location
    if answer.challenge is not None:
        verdict["www_authenticate"] = answer.challenge
    if status == 0 and answer.basic is not None:
        verdict["user"] = answer.basic[1]
    if answer.warnings:
        out["warnings"] = list(dict.fromkeys(answer.warnings))
    d = answer.decision
    if status == 503 and d is not None and d.endpoint is None and d.service is not None \
            and verdict.get("reason") == _NO_ENDPOINT:
        # Why the backend has none (the EndpointSet's reason, as ``decision.why``), on the
        # verdict it causes.
        why = getattr(getattr(d.handle, "eps", None), "reason", None)
        if why:
            verdict["no_endpoint"] = why
    out["verdict"] = verdict
    if status and not verdict["depends_on_client_ip"] and status != out["status"]:
        out["status"] = status
        out["reason"] = f"{rule_reason}; {verdict['reason']}"
    elif verdict["depends_on_client_ip"]:
        out["reason"] += "; the answer depends on the client address (source ranges)"


#: A digest response explain cannot check: it answers a nonce the serving proxy issued
#: (proxy/_digest.py: MAC'd under a per-process key, valid 60 s from its challenge, its
#: ``uri`` the request target, its ``nc`` used once), which explain's own proxy never did.
_DIGEST_401 = ("digest authentication: a digest response answers a nonce the serving proxy "
               "issued (valid 60 s, for this method and URI, each nc once); explain's proxy "
               "issued none, so it answers 401 with a new challenge: check the credentials "
               "against the server (curl --digest -u USER:PASSWORD)")


def _verdict_reason(answer: ProxyAnswer, access: Access | None) -> str:
    """Why the proxy answers as it does, from what its answer and the route's access say."""
    status = answer.status
    if status == 0:
        assert answer.endpoint is not None
        user = answer.basic[1] if answer.basic is not None else None
        d = answer.decision
        dflt = ""
        if d is not None and getattr(d, "default_backend", None) is not None:
            from ._explain_verdict import upstream_field

            code = upstream_field(answer, "x-code")
            dflt = (f" (served by the default-backend Service {d.namespace}/{d.service}: the "
                    "rule's Service has no ready endpoint"
                    + (f"; X-Code: {code}" if code is not None else "") + ")")
        if answer.auth_sent is not None:
            dflt += " (after its auth service's 2xx: auth-url)"
        # ``ip:port``, IPv6 in brackets (``[fd00::1]:8080``), as serve's own HOST:PORT.
        return f"proxied to {host_port(*answer.endpoint)}" + dflt + (
            f" (basic authentication: user {user!r})" if user is not None else "")
    from ._explain_verdict import is_preflight

    if is_preflight(answer, answer.method):
        return ("answered 204 by the CORS preflight: enable-cors, an OPTIONS request whose "
                "Origin the location allows")
    if answer.location is not None:
        return f"redirect to {answer.location}"
    if status == 404:
        return "no rule and no default backend matched"
    if access is not None and status == 503 and access.denied is not None:
        return "the location is denied (access: denied)"
    if access is not None and status == 403:
        who = answer.client_ip or "a client without an address"
        return f"the source ranges refuse {who}"
    if status == 401 and answer.auth_type == "digest":
        return _DIGEST_401 if answer.has_authorization else (
            "digest authentication: no Authorization header; the challenge (www_authenticate) "
            "carries a new nonce the client answers (curl --digest -u USER:PASSWORD)")
    if status == 401:
        return ("basic authentication: the Authorization header does not verify"
                if answer.has_authorization else
                "basic authentication: no Authorization header; give -H 'Authorization: "
                "Basic ...' to check credentials")
    if status == 413:
        # nginx's find_config phase: the found location's client_max_body_size (the route's
        # proxy-body-size; a path no rule covers: its server's ``location /``, the host's
        # oldest Ingress's, or the default server's, the --config proxy-body-size).
        return ("the request's Content-Length is over the location's proxy-body-size "
                "(client_max_body_size)")
    if status == 414:
        # nginx's large_client_header_buffers (ingress-nginx's large-client-header-buffers,
        # "4 8k"): a request line longer than one buffer is "414 Request-URI Too Large".
        return "the request line is longer than one large-client-header-buffers buffer"
    if status == 431:
        return ("the request's header lines are over large-client-header-buffers (one line "
                "longer than a buffer, or all of them more than the buffers hold) or too many")
    if status == 503 and answer.basic is not None and answer.basic[0] == 503:
        return (f"{answer.auth_type or 'basic'} authentication: its Secret cannot be used, see "
                "the warning")
    pssl = getattr(answer.options, "proxy_ssl", None)
    if status == 503 and pssl is not None and pssl.config()[1] is not None:
        return str(pssl.config()[1])  # names the annotation: "proxy-ssl-secret ns/name: ..."
    if status == 503 and answer.decision is not None and answer.decision.endpoint is None:
        return _NO_ENDPOINT if answer.decision.service is not None else _RESOURCE
    return f"the proxy answers {status} itself"


def _refused_before_routing(method: str, host: str, n_hosts: int, *,
                            headers: Sequence[tuple[str, str]] = ()) -> tuple[int, str] | None:
    """``(status, reason)`` when the proxy refuses the request before it routes it, as
    ``ProxyConnection._parse_request`` does, in its order (nginx's): a method with a character
    other than ``A-Z``, ``_``, ``-`` (400, nginx's request-line parser), two Host headers (400),
    a Host value ``check_host`` rejects (400: an empty label, a port that is no number in
    1-65535, control characters, ...), then CONNECT and TRACE (405), so explain does not report
    a route the server never takes. With ``headers`` (the ``-H`` lines), also a second line of
    a header read once (``_refused_header_line``) and an empty Host header
    (``check_host_header``)."""
    try:
        from .proxy._errors import RemoteProxyError
        from .proxy._headers import METHOD_CHARS, check_host, check_host_header
    except ImportError:  # pragma: no cover - the proxy is optional for explain
        return None
    if method.strip(METHOD_CHARS.decode("ascii")):
        return 400, "invalid method"
    line = _refused_header_line(headers)  # the proxy walks the lines before it checks Host
    if line is not None:
        return line
    if n_hosts > 1:
        return 400, "duplicate Host"
    try:
        # A Host header the client sent may not be empty (``Host:``); no Host at all (a
        # host-less ``/path``, HTTP/1.0) is no host, routed to the host-less rules.
        (check_host_header if n_hosts else check_host)(
            host.encode("utf-8", "surrogateescape"))
    except RemoteProxyError as exc:
        return exc.status_hint, str(exc)
    # After the head's checks, as nginx (ngx_http_process_request_header's end).
    if method == "CONNECT":
        return 405, "CONNECT is not supported"
    if method == "TRACE":
        return 405, "TRACE is not allowed"
    return None


def _refused_header_line(headers: Sequence[tuple[str, str]]) -> tuple[int, str] | None:
    """The 400 for the first ``-H`` line that repeats a header the proxy takes once, in the
    order ``ClientConnection._parse_request`` walks them: a second Host ("duplicate Host"),
    a second line of a ``UNIQUE_REQUEST`` header (``duplicate_header``: Authorization,
    Expect, If-Match..., which nginx reads once), whatever the values."""
    try:
        from .proxy._headers import UNIQUE_REQUEST, duplicate_header
    except ImportError:  # pragma: no cover - the proxy is optional for explain
        return None
    seen: set[bytes] = set()
    for name, _value in headers:
        key = name.lower().encode("latin-1", "replace")
        if key in seen:
            if key == b"host":
                return 400, "duplicate Host"
            exc = duplicate_header(key)
            return exc.status_hint, str(exc)
        if key == b"host" or key in UNIQUE_REQUEST:
            seen.add(key)
    return None


def _canary_rules(annotations: Any) -> dict[str, Any]:
    """When the canary serves, from its annotations (parsed as the router parses them)."""
    from ._canary import parse_canary

    cfg, warnings = parse_canary(annotations)
    rules: dict[str, Any] = {"weight": cfg.weight, "weight_total": cfg.weight_total}
    if cfg.header is not None:
        rules["header"] = cfg.header
        if cfg.header_value is not None:
            rules["header_value"] = cfg.header_value
        elif cfg.header_pattern is not None:
            # The pattern the router matches (each line trimmed, as GetStringAnnotation
            # reads it: " ^beta$ " matches as "^beta$"), not the annotation as written.
            rules["header_pattern"] = cfg.header_pattern.pattern
    if cfg.cookie is not None:
        rules["cookie"] = cfg.cookie
    if warnings:
        # What check and serve say of these annotations (a header pattern PCRE cannot compile
        # on the header's bytes never serves, an ignored value...): without it the line above
        # reads as if the rule applied.
        rules["warnings"] = list(dict.fromkeys(f"{key.rpartition('/')[2]}: {message}"
                                               for key, message in warnings))
    return rules


def _canary_side(d: Any, headers: Sequence[tuple[Any, Any]],
                 notes: Sequence[Any] = ()) -> str | None:
    """Why the router took the side it took (``decision.canary``) for a rule with a canary, in
    ingress-nginx's order ("canary-by-header -> canary-by-cookie -> canary-weight"): the header
    (``always``/``never``, its value or pattern), the cookie, else the weight; a side those
    choose that has no ready endpoint is served by the other (router.md R2: ``notes``, the
    router's warnings, say so). None without a canary, or when something else chose."""
    canary = getattr(d.match, "canary", None)
    if canary is None:
        return None
    from dataclasses import replace

    from ._canary import explicit_choice, parse_canary

    cfg = parse_canary(canary.annotations)[0]
    if cfg.header is not None:
        chosen = explicit_choice(replace(cfg, cookie=None), headers)
        if chosen is not None:
            if chosen != d.canary:
                return _other_side(d, canary, chosen, f"the request's {cfg.header} header", notes)
            if cfg.header_pattern is not None and not chosen:
                # A pattern decides "main" only when PCRE cannot compile it (explicit_choice:
                # no byte form): balancer.lua logs ngx.re.match's error and returns false,
                # whatever the header's value, before the cookie and the weight.
                return (f"the request carries the {cfg.header} header, and "
                        f"canary-by-header-pattern {cfg.header_pattern.pattern!r} does not "
                        "compile in PCRE: ingress-nginx logs the error and keeps the main "
                        "side, the cookie and the weight not asked")
            how = (f"equals canary-by-header-value {cfg.header_value!r}"
                   if cfg.header_value is not None else
                   f"matches canary-by-header-pattern {cfg.header_pattern.pattern!r}"
                   if cfg.header_pattern is not None else
                   f"is {'always' if chosen else 'never'}")
            return f"the request's {cfg.header} header {how}"
    if cfg.cookie is not None:
        chosen = explicit_choice(replace(cfg, header=None), headers)
        if chosen is not None:
            if chosen != d.canary:
                return _other_side(d, canary, chosen, f"the request's cookie {cfg.cookie}",
                                   notes)
            return f"the request's cookie {cfg.cookie} is {'always' if chosen else 'never'}"
    w, total = cfg.weight, cfg.weight_total
    if (w <= 0 and d.canary) or (w >= total and not d.canary):
        return _other_side(d, canary, w > 0, f"weight {w} of {total}", notes)
    draw = ("no request goes to the canary" if w <= 0 else
            "every request goes to the canary" if w >= total else
            "a random draw for each request")
    return f"no header or cookie decides: weight {w} of {total}, {draw}"


def _as_sent(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The -H lines as the proxy's router reads them (``ask_proxy`` sends them so): bytes,
    a value as its UTF-8 without the whitespace around it (h11 strips it). A non-ASCII value
    or canary pattern is compared on those bytes (``explicit_choice``), not on the text."""
    return [(n.strip(" \t").lower().encode("latin-1", "replace"),
             v.strip(" \t").encode("utf-8", "surrogateescape")) for n, v in headers]


def _other_side(d: Any, canary: Any, chosen: bool, rule: str,
                notes: Sequence[Any]) -> str | None:
    """The side ``rule`` chose (``chosen``: the canary) is not the one that serves: the
    router's note on its backend without endpoint says why (R2), else None."""
    ing = canary.ingress if chosen else d.match.ingress
    what = f"canary backend {canary.service} " if chosen else f"backend {d.match.service} "
    for n in notes:
        if n.object == f"Ingress {ing}" and n.message.startswith(what):
            side = "the canary" if chosen else "the main backend"
            return f"{rule} chooses {side}, but {n.message}"
    return None


def _canary_text(rules: dict[str, Any]) -> str:
    # ingress-nginx's canary docs: "canary-by-header -> canary-by-cookie -> canary-weight".
    parts = []
    if "header" in rules:
        if "header_value" in rules:
            value = rules["header_value"]
            # A value with a kept line break (a YAML block scalar's, which no request header
            # can equal: rules["warnings"] says so) is quoted, not printed across lines.
            parts.append(f"header {rules['header']}: "
                         f"{value if value.isprintable() else repr(value)}")
        elif "header_pattern" in rules:
            parts.append(f"header {rules['header']} matching {rules['header_pattern']!r}")
        else:
            parts.append(f"header {rules['header']}: always (never: the main backend)")
    if "cookie" in rules:
        parts.append(f"cookie {rules['cookie']}=always (never: the main backend)")
    parts.append(f"weight {rules['weight']} of {rules['weight_total']} requests")
    return ", else ".join(parts)


def _affinity(d: Any) -> dict[str, Any] | None:
    """Cookie affinity of the serving backend: the cookie, and what this request gets."""
    from ._balance import parse_balancer_spec

    served = d.served if d.served is not None else d.match
    # Read as the router reads it (GetStringAnnotation: " cookie" is cookie affinity; an
    # invalid session-cookie-name is INGRESSCOOKIE), not as written: the cookie named here is
    # the one the request's Cookie header is looked up by. The load-balance part is not read
    # (affinity answers before it).
    spec, _warnings = parse_balancer_spec(served.annotations, "round_robin", (),
                                          served.path)
    if spec.affinity is None:
        return None
    name = d.set_cookie.split("=", 1)[0] if d.set_cookie else spec.affinity.name
    return {"cookie": name, "set_cookie": d.set_cookie}


def render_text(info: dict[str, Any]) -> str:
    lines = [f"{info['url']}"]
    # A host-less /path is a request without Host: HTTP/1.0's (RFC 9112 §3.2: an HTTP/1.1
    # one without Host is answered 400, and the proxy does).
    lines.append(f"  host {info['host']!r}"
                 + (" (no Host header: an HTTP/1.0 request; HTTP/1.1 without Host gets 400)"
                    if info["host"] == "" and not str(info.get("reason", "")).startswith(
                        "rejected") else "")
                 + f", path {info['path']!r}"
                 + (f" (canonical {info['canonical_path']!r})" if "canonical_path" in info else ""))
    if info.get("clients_send") is not None:
        lines.append(f"  note: the path is sent as written (curl --path-as-is); curl and "
                     f"browsers remove its dot segments and send {info['clients_send']!r}")
    if info.get("tls") is not None:
        lines.append(_tls_line(info["tls"]))
    pt = info.get("ssl_passthrough")
    if pt is not None and pt.get("enabled") is False:
        lines.append(f"  ssl-passthrough: {pt['reason']}, as follows (with the flag: "
                     f"{pt['with_flag']['reason']}):")
    elif pt is not None:
        lines.append(f"  ssl-passthrough: {pt['reason']}; without --enable-ssl-passthrough "
                     "its TLS is terminated, as follows:")
    m = info.get("match")
    if m is None:
        lines.append(f"  -> {info['status']}: {info['reason']}")
        lines += [f"     not served: Ingress {n['ingress']} matches this request, but "
                  f"{n['reason']}" for n in info.get("not_served", ())]
        if info.get("server_location"):
            lines.append("     the host's server location / (its oldest Ingress's "
                         "annotations) applies:")
        return "\n".join(lines + _feature_lines(info) + _access_lines(info))
    if m["is_default_backend"]:
        lines.append(f"  -> default backend of Ingress {m['ingress']}"
                     + (f" (host {m['host']})" if m["host"] else ""))
    else:
        lines.append(f"  -> Ingress {m['ingress']}, rule host {m['host'] or '*'}, "
                     f"{m['path_type']} {m['path']!r}")
    if info.get("server_alias") is not None:
        a = info["server_alias"]
        lines.append(f"     by the server-alias {a['alias']!r} of host {a['host'] or '*'} (Ingress {a['ingress']})")
    if m.get("service") is not None:
        lines.append(f"     backend service {m['namespace']}/{m['service']}:{m['port']}")
    elif "resource" in m:
        r = m["resource"]
        lines.append(f"     backend resource {r['kind']} {m['namespace']}/{r['name']}")
    if "canary" in m:
        c = m["canary"]
        lines.append(f"     canary: Ingress {c['ingress']} -> {_backend_text(c)}")
        if "rules" in c:
            lines.append(f"       serves on {_canary_text(c['rules'])}")
            lines += [f"       warning: {w}" for w in c["rules"].get("warnings", ())]
    lines += [f"     warning: {s}" for s in info.get("shadowed", ())]
    if info.get("path_note") is not None:
        lines.append(f"     warning: {info['path_note']}")
    if info.get("regex_host") is not None:
        lines.append(f"     warning: {info['regex_host']}")
    d = info.get("decision")
    if d is not None and d["service"] is None:
        # A resource backend (Match.service None): the router has no Service to resolve.
        lines.append("     router: a resource backend is not a Service, nothing to proxy to (503)")
    elif d is not None:
        ip, _, ep_port = str(d["endpoint"]).rpartition(":")
        v = info.get("verdict")
        # "(503)": the proxy's answer, unless it answers otherwise first (a redirect, 403...).
        ep = (("none ready (503)" if v is None or v["status"] in (None, 503) else "none ready")
              if d["endpoint"] is None else host_port(ip, int(ep_port)))
        why = d.get("why")
        said = False  # ``why`` is in the line already
        if d["port"] is not None:
            port = d["port"]
        elif why and "has no ready endpoint" in why:
            # A named targetPort is resolved through the endpoints that name it.
            port = "unknown (a named targetPort, and no ready endpoint to name it)"
        else:
            port = f"unknown ({why or 'no such Service or port in the manifests'})"
            said = True
        lines.append(f"     router picks {'canary' if d['canary'] else 'main'} {d['namespace']}/{d['service']}"
                     f" target port {port}, endpoint {ep}")
        if d.get("canary_reason"):
            lines.append(f"     why {'canary' if d['canary'] else 'main'}: {d['canary_reason']}")
        if why and d["endpoint"] is None and not said:
            # What the objects say (W18): a slice without the Service label, a port name
            # the slice does not carry, endpoints none of which is ready...
            lines.append(f"     why no endpoint: {why}")
        a = d.get("affinity")
        if a is not None and a["set_cookie"]:
            when = ("if the source ranges allow the client, " if v is not None
                    and v["depends_on_client_ip"] else "")
            lines.append(f"     session affinity: cookie {a['cookie']} (none valid in the request: "
                         f"{when}the response sets {a['set_cookie']})")
        elif a is not None and d["endpoint"] is not None and (
                v is None or v["proxied"] or v["depends_on_client_ip"]):
            # Only when the request reaches the endpoint: a local answer (the proxy's 503,
            # 414, 431...) sends no cookie and keeps no session.
            lines.append(f"     session affinity: cookie {a['cookie']} (the request's cookie "
                         f"keeps this endpoint)")
    return "\n".join(lines + _feature_lines(info) + _access_lines(info))


def _feature_lines(info: dict[str, Any]) -> list[str]:
    """``default_backend``, ``cors``, ``rate_limit``, ``rewrite``, ``upstream_vhost`` and
    ``response_rewrite`` (``_add_location_features``), one line each."""
    lines = []
    db = info.get("default_backend")
    if db is not None:
        sent = ", ".join(f"{k}: {v}" for k, v in db["headers"].items())
        lines.append(f"     default-backend {db['service']}: {db['reason']}"
                     + (f" (upstream {db['upstream']}; it gets {sent})" if db["used"] else ""))
    c = info.get("cors")
    if c is not None:
        origins = ", ".join(c["allow_origin"]) or "none valid"
        given = ("no Origin header (give -H 'Origin: ...')" if c["origin"] is None
                 else f"Origin {c['origin']!r}")
        if c["preflight"]:
            what = "answered 204 by the CORS preflight, with"
        elif c["headers"]:
            what = "the answer gets"
        else:
            what = "no CORS header on the answer"
        heads = "; ".join(f"{k}: {v}" for k, v in c["headers"].items())
        lines.append(f"     CORS (allowed origins {origins}): {given}: {what}"
                     + (f" {heads}" if heads else ""))
    r = info.get("rate_limit")
    if r is not None:
        parts = []
        if r["rps"]:
            parts.append(f"{r['rps']} requests/s (burst {r['rps_burst']})")
        if r["rpm"]:
            parts.append(f"{r['rpm']} requests/min (burst {r['rpm_burst']})")
        if r["connections"]:
            parts.append(f"{r['connections']} requests at a time")
        past = []
        if r["rps"] or r["rpm"]:
            past.append(f"{r['status_rate']} past a rate")
        if r["connections"]:
            past.append(f"{r['status_connections']} past the connections")
        if r["allowlist"]:
            who = ("give --client-ip to know whether the client is in it"
                   if r["client_allowlisted"] is None else
                   f"client {r['client_ip']} is {'in it: never limited' if r['client_allowlisted'] else 'not in it'}")
            allow = f"; allowlist {', '.join(r['allowlist'])}: {who}"
        else:
            allow = ""
        lines.append(f"     rate limits of Ingress {r['ingress']} (all its paths), per client "
                     f"address: {', '.join(parts)}; refused with {' and '.join(past)}{allow} "
                     "(explain sends one request: the limits are said, not simulated)")
    g = info.get("global_rate_limit")
    if g is not None:
        from .proxy._globalratelimit import describe_line
        lines.append(describe_line(g))
    lines += _round1_lines(info)
    if info.get("rewrite") is not None:
        lines.append(_rewrite_line(info["rewrite"]))
    if info.get("upstream_vhost") is not None:
        lines.append(f"     upstream-vhost: the endpoint gets Host: {info['upstream_vhost']} "
                     "(X-Forwarded-Host stays the client's)")
    ch = info.get("custom_headers")
    if ch is not None:
        heads = "; ".join(f"{k}: {v}" for k, v in ch["headers"].items())
        lines.append(f"     custom-headers (ConfigMap {ch['config_map']}): "
                     + (f"the answer gets {heads}" if heads else "no header of it on the answer"))
    lines += _config_header_lines(info.get("config_headers"))
    rw = info.get("response_rewrite")
    if rw is not None:
        said = [f"{what} {p['from']!r} -> {p['to']!r}" for what, p in (
            ("Location/Refresh", rw["proxy_redirect"]),
            ("Set-Cookie domain", rw["proxy_cookie_domain"]),
            ("Set-Cookie path", rw["proxy_cookie_path"])) if p is not None]
        lines.append(f"     the upstream's response rewritten: {'; '.join(said)}")
    return lines


def _rewrite_line(rw: dict[str, Any]) -> str:
    """The ``rewrite`` of ``_add_location_features``: what the backend receives (or would,
    with no ready endpoint), or why it receives the path unchanged."""
    said = f"     rewrite-target {rw['target']!r}: "
    if rw.get("timeout"):
        return said + ("the rule regex runs past its time limit on this path (the proxy "
                       "answers 500)")
    if rw["redirect"] and rw["applies"]:
        return said + "a redirect, the proxy's answer (nothing is sent to the backend)"
    receives = "receives" if rw["sent"] else "would receive"
    if not rw["applies"]:
        said += (f"does not apply (the rule path's regex does not match this path, as nginx's "
                 f"rewrite): the backend {receives} {rw['upstream_uri']!r} unchanged")
    else:
        said += f"the backend {receives} {rw['upstream_uri']!r}"
    if rw.get("x_forwarded_prefix") is not None:
        said += f", with X-Forwarded-Prefix: {rw['x_forwarded_prefix']}"
    return said


def _round1_lines(info: dict[str, Any]) -> list[str]:
    """``ext_auth`` (auth-url), ``mirror`` (mirror-target) and ``limit_rate`` (limit-rate,
    limit-rate-after), one line each, as the proxy did them (``_add_location_features``)."""
    lines = []
    v = info.get("verdict") or {}
    then = (v.get("reason", "").replace(" (after its auth service's 2xx: auth-url)", "")
            if v.get("proxied") else
            f"the proxy answers {v.get('status')} ({v.get('reason', '')})")
    a = info.get("ext_auth")
    if a is not None:
        sent = a["sent"]
        ps = a.get("proxy_set_headers")
        if sent is None and ps is not None and ps["problem"] is not None:
            lines.append(f"     auth-url {a['url']}: not asked: auth-proxy-set-headers "
                         f"{ps['problem']}; the location is denied (503)")
        elif sent is None:
            lines.append(f"     auth-url {a['url']}: not asked, the proxy answers before it")
        else:
            copied = (f", with the auth answer's {', '.join(a['response_headers'])}"
                      if a["response_headers"] else "")
            denied = a["on_401"]
            on_401 = ("" if denied is None else
                      f"; on 401: {denied['status']}" + (f" (redirect to {denied['location']})"
                                                         if denied["location"] else ""))
            lines.append(
                f"     auth-url: first {sent['request']} to the auth service "
                f"{sent['endpoint']} ({'https' if sent['tls'] else 'http'}, Host: "
                f"{sent['host']}); on a 2xx answer: {then}{copied}{on_401}; on 403: 403; "
                "any other answer: 500")
            c = a.get("cache")
            if c is not None:
                lines.append(f"     auth-cache-key {c['key']}: answers cached "
                             f"({', '.join(c['durations']) or 'by their own headers'}); a "
                             "cached answer sends no subrequest")
            k = a.get("keepalive")
            if k is not None:
                lines.append(f"     auth-keepalive {k['connections']}: the auth connection is "
                             f"kept for the next subrequests (at most {k['requests']} each, "
                             f"{k['timeout']} s idle)")
    m = info.get("mirror")
    if m is not None:
        sent = m["sent"]
        if sent is None:
            lines.append(f"     mirror-target {m['target']}: no copy sent (the proxy answers "
                         "before the mirror)")
        else:
            lines.append(f"     mirror: a copy goes to {sent['endpoint']} "
                         f"({'https' if sent['tls'] else 'http'}, {sent['request']}, Host: "
                         f"{sent['host']}, {'with' if sent['body'] else 'without'} body); its "
                         "answer is discarded")
    if v.get("proxy_protocol"):
        lines.append("     use-proxy-protocol: --client-ip stands for the address the PROXY "
                     "protocol header names (serve uses it when the load balancer is in "
                     "proxy-real-ip-cidr, else the load balancer's own)")
    c = info.get("client_cert_auth")
    if c is not None and c["served"]:
        lines.append(f"     auth-tls (Secret {c['secret']}, of Ingress {c['ingress']}): "
                     f"auth-tls-verify-client {c['verify_client']}"
                     + (f", auth-tls-match-cn {c['match_cn']!r}" if c["match_cn"] else "")
                     + f"; explain's client: {c['client_sends']}")
    p = info.get("proxy_ssl")
    if p is not None:
        if not p["usable"]:
            lines.append(f"     proxy-ssl: unusable: {p['problem']}")
        elif "verify" in p:
            src = f"Secret {p['secret']}" if p["secret"] else ""
            if p.get("server_secret") and p["server_secret"] != p["secret"]:
                src += (", " if src else "") + f"the host's Secret {p['server_secret']}"
            lines.append(f"     proxy-ssl ({src}): verify "
                         f"{'on' if p['verify'] else 'off'}, name {p['name']!r}, SNI "
                         f"{p['sni'] or 'off'}, {' '.join(p['protocols'])}"
                         + (", client certificate" if p["client_certificate"] else "")
                         + ("" if p["upstream_tls"] is not False else
                            " (not used: the upstream is spoken to without TLS)"))
    if "proxy_http_version" in info:
        hv = info["proxy_http_version"]
        lines.append(f"     proxy-http-version {hv['version']}"
                     + (f": sent {hv['request_line']!r}" if hv["request_line"] else ""))
    if "connection_proxy_header" in info:
        ch = info["connection_proxy_header"]
        lines.append(f"     connection-proxy-header: Connection: {ch['value']} upstream")
    if info.get("access_log") is False:
        lines.append("     enable-access-log false: no access-log line (the metrics still "
                     "count the request)")
    if info.get("use_port_in_redirects"):
        lines.append("     use-port-in-redirects: the ssl-redirect's Location names the https "
                     "port, 443 included")
    body_mode = info.get("proxy_request_buffering")
    if body_mode is not None:
        lines.append(f"     proxy-request-buffering {body_mode}: "
                     + ("the body is read whole before the upstream is opened, and sent with "
                        "its Content-Length" if body_mode == "on" else
                        "a request sent upstream while its body still arrives is not retried"))
    r = info.get("limit_rate")
    if r is not None:
        after = (f" after its first {r['after_bytes']} bytes" if r["after_bytes"] else "")
        lines.append(f"     limit-rate: each proxied answer of the route is sent at "
                     f"{r['bytes_per_second']} bytes/s{after}"
                     + ("" if r["applies"] else " (this answer is the proxy's own: not "
                        "limited)"))
    return lines


def _config_header_lines(ch: dict[str, Any] | None) -> list[str]:
    """The controller ConfigMap's add-headers, proxy-set-headers and hide-headers
    (``config_headers``), one line each."""
    if ch is None:
        return []
    lines = []
    add = ch.get("add_headers")
    if add is not None:
        heads = "; ".join(f"{k}: {v}" for k, v in add["headers"].items())
        lines.append(f"     add-headers (ConfigMap {add['config_map']}): "
                     + (f"the answer gets {heads}" if heads else "no header of it on the answer"))
    up = ch.get("proxy_set_headers")
    if up is not None:
        if up["headers"] is None:
            what = "not proxied: nothing sent upstream"
        else:
            heads = "; ".join(f"{k}: {v}" for k, v in up["headers"].items())
            what = f"the endpoint gets {heads}" if heads else "no header of it sent upstream"
        lines.append(f"     proxy-set-headers (ConfigMap {up['config_map']}): {what}")
    if ch.get("hide_headers"):
        lines.append(f"     hide-headers: the upstream's {', '.join(ch['hide_headers'])} "
                     "dropped from its answers")
    return lines


#: The proxy's 503 for a Service backend without a ready endpoint.
_NO_ENDPOINT = "the backend has no ready endpoint"
#: The proxy's 503 for a resource backend (``Match.service`` None).
_RESOURCE = "a resource backend is not a Service: nothing to proxy to"
#: Verdict reasons the lines above already give (the 404 line, the router's "none ready",
#: its line for a resource backend).
_SAID = ("no rule and no default backend matched", _NO_ENDPOINT,
         _RESOURCE)


def _access_lines(info: dict[str, Any]) -> list[str]:
    """The route's access control and the proxy's verdict (``_add_verdict``), and the
    warnings the proxy logged for the request."""
    a = info.get("access")
    lines = [] if a is None else _access_part_lines(a, "access")
    if a is not None and a.get("also") is not None:
        lines += _access_part_lines(a["also"], "access, also (both must pass)")
    v = info.get("verdict")
    if v is not None and (a is not None or v["peer"] is not None
                          or not (v["proxied"] or v["reason"] in _SAID)):
        who = ""
        if v["client_ip"] is not None:
            who = f" for client {v['client_ip']}"
            if v["peer"] is not None and v["client_ip"] != v["peer"]:
                who += f" (forwarded by trusted peer {v['peer']})"
        what = v["reason"] if v["status"] is None else f"{v['status']} ({v['reason']})"
        lines.append(f"     proxy answers{who}: {what}")
    lines += [f"     warning: {w}" for w in info.get("warnings", ())]
    t = info.get("with_tls")
    if t is not None:
        lines.append(f"     with an HTTPS listener (serve --tls-listen; ingress-nginx always has "
                     f"one): {t['status']} (redirect to {t['location']}); give --tls or "
                     "--tls-listen to explain that")
    return lines


def _access_part_lines(a: dict[str, Any], label: str) -> list[str]:
    """One ``describe_access`` part: its denial, source ranges and basic authentication."""
    lines = []
    if a["denied"] is not None:
        lines.append(f"     {label}: denied, every request answers 503: {a['denied']}")
    ranges = a["source_ranges"]
    if ranges is not None:
        fams = [(name, rules) for name, rules in (("IPv4", ranges["ipv4"]),
                                                  ("IPv6", ranges["ipv6"])) if rules]
        text = "; ".join(
            (f"{name}: " if len(fams) > 1 else "")
            + ", ".join(f"{r['rule']} {_cidr_text(r['cidr'])}" for r in rules)
            for name, rules in fams)
        lines.append(f"     {label}: source ranges (first match decides; none matches: "
                     f"allowed): {text}")
    b = a["basic_auth"]
    if b is not None:
        lines.append(f"     {label}: {b.get('type', 'basic')} authentication, realm "
                     f"{b['realm']!r}, users of "
                     f"Secret {b['secret']} ({b['secret_type']})")
    if a.get("satisfy") == "any":
        lines.append(f"     {label}: satisfy any: one check that lets the request in suffices")
    return lines


def _cidr_text(cidr: str) -> str:
    # nginx's "deny all;" (and an allowlist of 0.0.0.0/0 or ::/0: every address).
    return "all" if cidr.endswith("/0") else cidr


def _backend_text(m: dict[str, Any]) -> str:
    if m.get("service") is not None:
        return f"service {m['namespace']}/{m['service']}:{m['port']}"
    r = m.get("resource") or {}
    return f"resource {r.get('kind')} {m['namespace']}/{r.get('name')}"


def _error_entry(e: Any) -> dict[str, Any]:
    return {"message": str(e), "source": e.source, "object": e.object, "field": e.field,
            "type": e.type}


def _load(files: Sequence[str], err: TextIO) -> Resources | ValidationError:
    """The manifests of ``-f`` (``-`` is standard input, as for kubectl), or the error.

    Raises :class:`UsageError` for ``-`` given with other ``-f`` values.
    """
    return _load_with_warnings(files)[0]


def _load_with_warnings(files: Sequence[str]) -> tuple[Resources | ValidationError, list[FieldError]]:
    """``_load``, and the fields the API server would drop (``Resources.warnings``), which
    are there for invalid manifests too: a typo (``pathtype``) is often why a field is missing
    (``pathType: Required value``), and the warning says which."""
    from ._load import collect_files, collect_text

    if "-" in files:
        if len(files) > 1:
            raise UsageError("-f - (standard input) cannot be combined with other -f values")
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise UsageError("-f -: standard input is closed")
        try:
            data = sys.stdin.buffer.read()
        except OSError as exc:
            raise UsageError(f"-f -: cannot read standard input: {exc}") from None
        c = collect_text(data, source="<stdin>")
    else:
        # (a file named twice is read once: collect_files, by device and inode)
        c = collect_files(*files)
    try:
        return c.result(), list(c.warnings)
    except ValidationError as exc:
        return exc, list(c.warnings)


def _field_warning_lines(warnings: Sequence[FieldError]) -> list[str]:
    """``FILE: Ingress default/web: unknown field "spec.x"``, each once (a file named twice
    by ``-f`` warns once per object definition)."""
    return list(dict.fromkeys(str(w) for w in warnings))


def _report_invalid(exc: ValidationError, output: str, url: str | None = None,
                    warnings: Sequence[str] = ()) -> int:
    for e in exc.errors:
        print(e, file=sys.stderr)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{len(exc.errors)} error(s)" + (f", {len(warnings)} warning(s)" if warnings else ""),
          file=sys.stderr)
    if output == "json":
        doc: dict[str, Any] = {"ok": False, "error": "invalid manifests",
                               "errors": [_error_entry(e) for e in exc.errors]}
        if warnings:
            doc["warnings"] = list(warnings)
        if url is not None:
            doc["url"] = url
        print(_json(doc))
    return 2


#: A surrogateescape stand-in as repr() writes it (``\\udcff``), not after a backslash.
_ESCAPED_BYTE_RE = re.compile(r"(?<!\\)\\udc([89a-f][0-9a-f])")

#: A lone surrogate: a byte of the command line that is not UTF-8 (Python reads argv with
#: surrogateescape: 0xFF is U+DCFF), or a ``\ud800`` escape of a JSON manifest.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _printable(text: str) -> str:
    """``text`` without lone surrogates: an argv byte written ``\\xff``, another surrogate
    ``\\ud800``. Printed, a surrogate raises UnicodeEncodeError on a UTF-8 stdout; in a JSON
    string (``json.dumps`` escapes it as ``\\udcff``) it is no Unicode text (RFC 8259 §8.2:
    "unpredictable"; I-JSON, RFC 7493 §2.1, forbids it): jq reads U+FFFD, the byte lost."""
    def one(m: re.Match[str]) -> str:
        code = ord(m.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _SURROGATE_RE.sub(one, text)


def _json(doc: Any) -> str:
    """A JSON document as the commands print it, its strings :func:`_printable`."""
    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return _printable(value)
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(doc), indent=2, sort_keys=True)


def _usage(command: str, exc: UsageError, output: str, url: str | None = None) -> int:
    """A bad command-line value: argparse's form and exit code (2), never a traceback."""
    # A byte of the command line that is not UTF-8 is U+DC80-U+DCFF in Python's argv, and
    # repr() (the messages quote values with it) writes it "\udcff": written "\xff", the
    # byte typed, as _printable writes one that was not repr'd.
    message = _ESCAPED_BYTE_RE.sub(r"\\x\1", str(exc))
    print(f"ingresslib {command}: error: {_printable(message)}", file=sys.stderr)
    if output == "json":
        doc: dict[str, Any] = {"ok": False, "error": "usage", "errors": [{"message": message}]}
        if url is not None:
            doc["url"] = url
        print(_json(doc))
    return 2


def _parse_headers(raw: Sequence[str]) -> list[tuple[str, str]]:
    """``-H NAME:VALUE`` values, checked as a server would: RFC 9110 §5.1 field names are
    tokens; §5.5 "field values containing CR, LF or NUL characters are invalid"."""
    out = []
    for h in raw:
        name, sep, value = h.partition(":")
        if not sep:
            raise UsageError(f"bad header {h!r}: expected NAME:VALUE")
        if name != name.rstrip():
            # curl sends the line as written (lib/http.c ``add_custom_headers``: "%s\r\n"), and
            # RFC 9112 §5.1: "A server MUST reject, with a response status code of 400 (Bad
            # Request), any received request message that contains whitespace between a
            # header field name and colon" -- the proxy does; a route would be a false answer.
            raise UsageError(f"bad header {h!r}: whitespace between the name and the colon "
                             "(servers answer 400, RFC 9112 §5.1)")
        if name != name.lstrip():
            # Sent as written as well: a line that starts with whitespace continues the line
            # before it (RFC 9112 §5.2 obs-fold, "A server that receives an obs-fold in a
            # request message ... MUST either reject the message by sending a 400"; before the
            # first header, §2.2: "MUST either reject the message as invalid"): the proxy does.
            raise UsageError(f"bad header {h!r}: whitespace before the name (a folded line: "
                             "servers answer 400, RFC 9112 §5.2)")
        name, value = name.strip(), value.strip(" \t")
        if not _TOKEN_RE.fullmatch(name):
            raise UsageError(f"bad header {h!r}: the name must be a token (letters, digits, "
                             "and !#$%&'*+-.^_`|~), not empty")
        if any(ch in value for ch in "\r\n\x00"):
            raise UsageError(f"bad header {h!r}: the value cannot hold CR, LF or NUL")
        out.append((name, value))
    return out


def explain_main(args: argparse.Namespace) -> int:
    try:
        if not _TOKEN_RE.fullmatch(args.method):
            raise UsageError(f"bad method {args.method!r}: a method is a token (e.g. GET)")
        headers = _parse_headers(args.headers)
        split_url(args.url)
        client_ip = _client_ip(getattr(args, "client_ip", None))
        _tls_port(getattr(args, "tls", False), getattr(args, "tls_listen", None))
        _default_ssl_certificate(getattr(args, "default_ssl_certificate", None))
        loaded = _load(args.files, sys.stderr)
    except UsageError as exc:
        return _usage("explain", exc, args.output, shown_url(args.url))
    if isinstance(loaded, ValidationError):
        return _report_invalid(loaded, args.output, shown_url(args.url))
    config = _explain_config(getattr(args, "config", None))
    if isinstance(config, ValidationError):
        return _report_invalid(config, args.output, shown_url(args.url))
    res = loaded
    from ._explain_api import explain

    # The document of ``ingresslib.explain`` (one code path), the values checked above.
    info = explain(res, args.url, method=args.method, headers=headers,
                   ingress_class=args.ingress_class, controller=args.controller,
                   client_ip=client_ip, settings=config[0], load_balance=config[1],
                   service_upstream=config[3],
                   tls=getattr(args, "tls", False), tls_listen=getattr(args, "tls_listen", None),
                   sources=args.files,
                   ssl_passthrough=getattr(args, "enable_ssl_passthrough", False),
                   default_ssl_certificate=getattr(args, "default_ssl_certificate", None),
                   no_auth_secrets=getattr(args, "no_auth_secrets", False))
    if args.output == "json":
        print(_json(info))
    else:
        print(_printable(render_text(info)))
        if info.get("match") is not None and not res.services:
            print("     (the files hold no Service: add the Services and EndpointSlices to see "
                  "the target port and endpoint)")
    return 0


def _client_ip(value: str | None) -> str | None:
    """``--client-ip``: an IPv4 or IPv6 address (brackets allowed), written as a socket
    gives the proxy its peer (``_iptext.ip_text``: nginx's form, ``::1.2.3.4`` for an
    IPv4-compatible address)."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ip_text(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"bad --client-ip {value!r}: an IPv4 or IPv6 address") from None


def _tls_port(tls: bool, tls_listen: str | None) -> int | None:
    """``--tls`` (an HTTPS listener on 443) or ``--tls-listen HOST:PORT`` (serve's value, read
    as serve reads it): the HTTPS port the verdict's ssl-redirect names; None: neither."""
    if tls_listen is None:
        return 443 if tls else None
    from .proxy._server import parse_listen

    try:
        port = parse_listen(tls_listen, 8443)[1]
    except ValueError as exc:
        raise UsageError(f"bad --tls-listen {tls_listen!r}: {exc}") from None
    if port == 0:
        # serve picks a free port and prints it: the redirect names that one.
        raise UsageError("bad --tls-listen: port 0 is chosen by serve when it starts; give "
                         "the port serve printed (https://HOST:PORT)")
    return port


def _default_ssl_certificate(value: str | None) -> str | None:
    """``--default-ssl-certificate NAMESPACE/NAME``, read as serve reads it
    (``_tls.parse_secret_ref``: ingress-nginx's ``ParseNameNS``); a bad value is a usage
    error. Taken without ``--tls``: an ``https://`` URL stands for serve's HTTPS listener."""
    if value is None:
        return None
    from ._tls import parse_secret_ref

    try:
        parse_secret_ref(value)
    except ValueError as exc:
        raise UsageError(f"bad --default-ssl-certificate {exc}") from None
    return value


def _explain_config(path: str | None, say: bool = True
                    ) -> tuple[ProxySettings | None, str | None, tuple[str, ...], bool] \
        | ValidationError:
    """``--config``: the settings, ``load-balance``, warnings and ``service-upstream`` of the
    ConfigMap, as ``serve --config`` reads it (``say``: the warnings printed on stderr here),
    or the error (exit 2)."""
    if path is None:
        return None, None, (), False
    from ._config import load_config

    try:
        cfg = load_config(path)
    except ValidationError as exc:
        return exc
    if say:
        for w in cfg.warnings:
            print(f"warning: {w}", file=sys.stderr)
    return cfg.settings, cfg.load_balance, cfg.warnings, cfg.service_upstream


def check_main(args: argparse.Namespace) -> int:
    output = getattr(args, "output", "text")
    try:
        loaded, dropped = _load_with_warnings(args.files)
    except UsageError as exc:
        return _usage("check", exc, output)
    # ``--config``: the ConfigMap ``serve --config`` reads, checked as serve checks it (its
    # errors name the file and the field; exit 2), its settings the defaults the annotation
    # warnings name ("using the default 120", as serve logs it with that ConfigMap).
    # Its warnings (an unknown key...) are check's first ones, counted and listed with them.
    # Read before the manifests' verdict: "exit 2 with every error" holds for both files.
    config = _explain_config(getattr(args, "config", None), say=False)
    if isinstance(loaded, ValidationError):
        # Fields the API server would drop (`kubectl apply` refuses them by default) go with
        # the errors: a typo (`pathtype`) is often why a field is missing.
        warnings = _field_warning_lines(dropped)
        if isinstance(config, ValidationError):
            loaded = ValidationError([*loaded.errors, *config.errors], warnings=loaded.warnings)
        else:
            warnings = [*config[2], *warnings]
        return _report_invalid(loaded, output, warnings=warnings)
    if isinstance(config, ValidationError):
        return _report_invalid(config, output)
    res = loaded
    from ._explain_api import check_findings

    # ``ingresslib.check``'s findings (one code path), each printed as its str().
    table, diagnostics = check_findings(
        res, args.ingress_class, args.controller, args.files, settings=config[0],
        load_balance=config[1], ssl_passthrough=getattr(args, "enable_ssl_passthrough", False),
        service_upstream=config[3])
    lines = [f"warning: {w}" for w in config[2]] + [str(d) for d in diagnostics]
    for line in lines:
        print(line, file=sys.stderr)
    n = len(table.served)
    warnings = [*config[2], *(str(d).removeprefix("warning: ") for d in diagnostics
                              if d.severity == "warning")]
    if output == "json":
        print(_json({
            "ok": True, "ingresses": len(res.ingresses), "served": n, "routes": len(table.routes),
            "diagnostics": lines,
            # Each warning's text alone (the severity is the list's: "warning: warning: ..."
            # for a reader that labels them).
            "warnings": warnings,
        }))
    else:
        print(f"ok: {len(res.ingresses)} Ingress(es), {n} served, {len(table.routes)} route(s), "
              f"{len(warnings)} warning(s)")
    return 0


def _tls_problems(res: Resources, table: RouteTable) -> list[TLSProblem]:
    """What ``serve --tls-listen`` logs of the served Ingresses' ``tls`` sections (a missing or
    broken Secret, a certificate that does not cover a host, expired or about to, a refused
    ``tls.hosts`` listing, a ``from-to-www-redirect`` twin left uncovered...): the certificate
    store's own decision (``certificate_problems``), without a store, so no default
    certificate is generated. Warnings, exit 0, whether the certificate is still served
    (``warning=True``) or its hosts fall back to another one or the default certificate: as
    in ingress-nginx, which serves its default certificate then, they are no validation
    errors."""
    from .proxy._annotations import PREFIX

    keys = (PREFIX + "ssl-ciphers", PREFIX + "ssl-prefer-server-ciphers")
    ciphers = any(k in ing.metadata.annotations for ing in table.served for k in keys)
    if not ciphers and not any(ing.spec.tls for ing in table.served):
        return []   # every such problem stems from a tls entry: spare the import
    try:
        from ._tls import TLSProblem, certificate_problems
    except ImportError:  # pragma: no cover - a Python without ssl
        return []
    problems = certificate_problems(res, table.served)
    if ciphers:
        # The ssl-ciphers / ssl-prefer-server-ciphers values the store refuses (and ignores,
        # logged by ``serve``): the store's own reading (``_tls_settings.server_ciphers``).
        from ._tls_settings import server_ciphers

        refused: list[tuple[str, str, str]] = []
        server_ciphers(table.served, PREFIX, refused)
        problems += [TLSProblem(f"Ingress {ref}", f"metadata.annotations[{key}]", why,
                                warning=True) for ref, key, why in refused]
    return problems


def _rule_path_fields(ing: Any) -> dict[tuple[str | None, str | None, str | None], str]:
    """``spec.rules[i].http.paths[j].path`` of each rule of ``ing`` by (host or None, path,
    pathType) as a table's Match names them: the first such rule (a later twin is a duplicate
    the first shadows)."""
    out: dict[tuple[str | None, str | None, str | None], str] = {}
    for ri, rule in enumerate(ing.spec.rules):
        for pi, p in enumerate(rule.paths or ()):
            out.setdefault((rule.host or None, p.path, p.path_type),
                           f"spec.rules[{ri}].http.paths[{pi}].path")
    return out


def _proxy_annotation_warnings(table: RouteTable, res: Resources | None = None,
                               settings: ProxySettings | None = None) -> list[RouteWarning]:
    """The warnings the proxy would log for invalid annotation values on served routes (with
    ``settings``, ``check --config``'s, else the built-in ones), each once; with ``res``, also what
    the server says of a basic-auth Secret (missing, no ``auth`` key, a hash format it cannot
    verify), as it reads them at start (the same walk: ``parse_each_route``). Each is a
    ``RouteWarning``: its text the server's log line, its object, field and message given
    where it is made (``check`` reports them as they are)."""
    try:
        from .proxy._actions import parse_each_route, parse_key
        from .proxy._annotations import RouteOptions, RouteWarning, parse_route_options
        from .proxy._settings import ProxySettings
    except ImportError:  # pragma: no cover - the proxy is optional for check
        return []
    if settings is None:
        settings = ProxySettings()
    # By (text, field): the same line on two rule paths (use-regex and one regex path under
    # two hosts) is two findings, each naming its rule path (the second was dropped: check
    # named spec.rules[0] alone). Identical annotation warnings (every rule of an Ingress has
    # them) are still one.
    seen: dict[tuple[str, str], RouteWarning] = {}
    fields: dict[int, dict[tuple[str | None, str | None, str | None], str]] = {}

    def path_field(route: Any) -> str:
        # The rule path's field, for a warning on the path (one index per Ingress).
        ing = getattr(route, "ingress_object", None)
        if ing is None or route.path is None:
            return ""
        index = fields.get(id(ing))
        if index is None:
            index = fields[id(ing)] = _rule_path_fields(ing)
        return index.get((route.host, route.path, route.path_type), "")

    def keep(w: str) -> None:
        # Every proxy warning is a RouteWarning where it is made (``parse_route_options``,
        # ``route_access``, ``BasicAuth``, ``_regex_path_warning``): its object and field are
        # given, never read back from its text (tests/test_check_fields_s22.py).
        assert isinstance(w, RouteWarning), f"a proxy warning without its parts: {w!r}"
        seen.setdefault((str(w), w.field), w)

    # The routes ``parse_each_route`` parses once (by its key: the same annotations, rule path
    # and main rule's annotations): one regex path under two hosts is parsed for the first;
    # its path warnings are the other rule paths' too.
    alike: dict[tuple[int, str | None, str | None, int], list[Any]] = {}
    for m in table.routes:
        canary = getattr(m, "canary", None)
        for r in (m,) if canary is None else (m, canary):
            alike.setdefault(parse_key(r, None if r is m else m.annotations), []).append(r)

    def parse(route: Any, main: Mapping[str, str] | None = None) -> RouteOptions:
        # ``main``: a canary's main rule's annotations (an option copied from it is not
        # reported ignored on the canary).
        own = path_field(route)
        twins = [f for f in dict.fromkeys(
            path_field(r) for r in alike.get(parse_key(route, main), ()))
            if f and f != own]

        def keep_each(w: str) -> None:
            keep(w)
            if own and isinstance(w, RouteWarning) and w.field == own:
                for f in twins:
                    keep(RouteWarning(str(w), w.object, f, w.message))

        opts = parse_route_options(
            route.annotations, route.path, settings, where=f"Ingress {route.ingress}",
            namespace=getattr(route, "namespace", None),
            secrets=None if res is None else (lambda: res.secrets),
            auth_warn=keep_each, main_annotations=main, path_field=own,
            path_type=getattr(route, "path_type", None))
        for w in opts.warnings:
            keep_each(w)
        return opts

    parse_each_route(table.routes, parse, parse_canary=parse, served=table.served)
    return _each_line_once(list(seen.values()))


def _reference_warnings(table: RouteTable, res: Resources,
                        settings: ProxySettings | None = None,
                        service_upstream: bool = False) -> list[RouteWarning]:
    """What ``check`` says of the objects an Ingress's annotations name, which the proxy only
    finds out at request time, each once, on the annotation's field:

    - ``custom-headers``: its ConfigMap not among the objects, or unusable (an invalid or
      not allowed header): no header is added (``CustomHeaders.resolve``; ingress-nginx logs
      "unable to find configMap" and denies the location: README row).
    - ``default-backend``: a Service that exists without a ready endpoint on its first port
      (controller.go ``createUpstreams``: "custom backend is valid only if contains at least
      one endpoint"): a rule whose own Service has none still answers 503; and, when it has
      one, each rule whose own Service has none, served by it instead (ingress-nginx still
      logs "Service %q does not have any active Endpoint." for the rule's Service, and the
      router says nothing of that backend). A Service not found is the router's warning.

    Canary Ingresses are skipped: both annotations are dropped from a canary's locations."""
    try:
        from ._endpoints import (DEFAULT_BACKEND_ANNOTATION, SERVICE_UPSTREAM_ANNOTATION,
                                 EndpointIndex, custom_default_backend)
        from ._table import _is_canary
        from .proxy._annotations import RouteWarning
        from .proxy._header_sets import CUSTOM_HEADERS, parse_custom_headers
        from .proxy._settings import ProxySettings
    except ImportError:  # pragma: no cover - the proxy is optional for check
        return []
    if settings is None:
        settings = ProxySettings()
    headers_key = "nginx.ingress.kubernetes.io/" + CUSTOM_HEADERS
    found: dict[str, RouteWarning] = {}
    index: EndpointIndex | None = None
    done: set[tuple[int, str | None, object]] = set()
    for m in table.routes:
        ing = getattr(m, "ingress_object", None)
        if ing is None or _is_canary(ing):
            continue
        ann = ing.metadata.annotations or {}
        ns = ing.metadata.namespace
        where = f"Ingress {ns}/{ing.metadata.name}"
        raw = ann.get(headers_key)
        if raw is not None and (id(ing), None, None) not in done:
            done.add((id(ing), None, None))
            try:
                custom = parse_custom_headers(raw, ns, settings.global_allowed_response_headers,
                                              where)
            except ValueError:
                custom = None  # an invalid reference: the proxy's annotation warning
            if custom is not None:
                _, problem = custom.resolve(res.config_maps)
                if problem is not None:
                    if "not found" in problem:
                        problem = (f"ConfigMap {custom.ref!r} is not among the objects "
                                   "(ingress-nginx: \"unable to find configMap\")")
                    w = RouteWarning.annotation(where, headers_key,
                                                f"{problem}; no header added")
                    found.setdefault(str(w), w)
        raw = ann.get(DEFAULT_BACKEND_ANNOTATION)
        if raw is None or m.service is None:
            continue
        if index is None:
            index = EndpointIndex(res)
        d_eps, d_port, problem = custom_default_backend(index, ns, raw)
        if problem is not None or d_eps is None:
            continue  # the router's warning (not found, no ports, empty name)
        if not d_eps.endpoints:
            w = RouteWarning.annotation(
                where, DEFAULT_BACKEND_ANNOTATION,
                (d_eps.reason or f"Service {ns}/{d_eps.service} port {d_port} has no ready "
                 "endpoint") + ": it serves no request (a rule whose Service has no ready "
                "endpoint still answers 503)")
            found.setdefault(str(w), w)
            continue
        # As the Router reads it (annotations/serviceupstream: a missing annotation is the
        # ConfigMap's ``service_upstream``; a present one strconv.ParseBool's, invalid: false).
        raw_upstream = ann.get(SERVICE_UPSTREAM_ANNOTATION)
        upstream = service_upstream if raw_upstream is None \
            else parse_bool(str(raw_upstream)) is True
        key = (id(ing), m.service, m.port)
        if key in done:
            continue
        done.add(key)
        own = index.resolve(ns, m.service, m.port, upstream)
        if not own.endpoints:
            port = f"port {m.port!r}" if isinstance(m.port, str) else f"port {m.port}"
            w = RouteWarning.annotation(
                where, DEFAULT_BACKEND_ANNOTATION,
                f"backend {m.service} {port}: "
                + (own.reason or f"Service {ns}/{m.service} has no ready endpoint")
                + f": the default-backend Service {ns}/{d_eps.service} serves its requests")
            found.setdefault(str(w), w)
    return list(found.values())


def _each_line_once(found: list[RouteWarning]) -> list[RouteWarning]:
    """``found`` (one per text and field) with no line twice, as ``check`` prints every other
    finding: a line (the server's log line) found on several fields -- the same regex rule
    path under two hosts -- is given as each field's own line, ``OBJECT: FIELD: MESSAGE``, as
    the table's findings on a rule path read (``spec.rules[1].http.paths[0].path: rule path
    ...``); a line found once stays the one ``serve`` logs. One without a field beside such
    lines adds nothing to them and is dropped."""
    from .proxy._annotations import RouteWarning

    fields: dict[str, list[str]] = {}
    for w in found:
        fields.setdefault(str(w), []).append(w.field)
    out: list[RouteWarning] = []
    for w in found:
        named = [f for f in fields[str(w)] if f]
        if not w.field:
            if not named:
                out.append(w)
        elif len(named) == 1:
            out.append(w)
        else:
            out.append(RouteWarning(f"{w.object}: {w.field}: {w.message}", w.object, w.field,
                                    w.message))
    return out
