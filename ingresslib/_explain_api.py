"""``ingresslib.check`` and ``ingresslib.explain``: what ``ingresslib check`` and ``ingresslib
explain`` report, as Python values. The commands are built on these (one code path): they
parse their options, load the files, and print what these return."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import short_repr
from ._resources import Resources
from ._table import Diagnostic, RouteTable

if TYPE_CHECKING:
    from ._errors import FieldError
    from .proxy._annotations import RouteWarning
    from .proxy._settings import ProxySettings

__all__ = ["check", "check_findings", "explain"]


@dataclass(frozen=True, slots=True, eq=False)
class _Said(Diagnostic):
    """A finding ``check`` gathers from outside the table and the router (a field the API
    server would drop, an annotation value the proxy ignores, a TLS problem, an apiVersion not
    read, no Ingress at all): a :class:`Diagnostic` in every way (equal to one with the same
    fields, shown as one), but ``str()`` is the line ``check`` has always printed for it, the
    same words ``serve`` logs (a field warning names its file and line, an annotation warning
    reads ``annotation KEY: ...``)."""

    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.severity}: {self.text}"

    def __repr__(self) -> str:
        return (f"Diagnostic(object={self.object!r}, field={self.field!r}, "
                f"message={self.message!r}, severity={self.severity!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return (self.object, self.field, self.message, self.severity) == (
            other.object, other.field, other.message, other.severity)

    __hash__ = Diagnostic.__hash__


def _proxy_note(w: RouteWarning) -> Diagnostic:
    """One of the proxy's route warnings (``Ingress NS/NAME: ...``) as a Diagnostic: its
    object, field and message as the proxy made it (an annotation's warning on
    ``metadata.annotations[KEY]``, as the router's own annotation warnings name it; a rule
    path's on ``spec.rules[i].http.paths[j].path``), its line the one ``serve`` logs."""
    return _Said(w.object, w.field, w.message, text=str(w))


def _field_note(w: FieldError) -> Diagnostic:
    """A field the API server would drop (``Resources.warnings``): the object, the field's
    path, ``unknown field`` or ``duplicate field``."""
    return _Said(w.object, w.field, w.type, text=str(w))


def _unread_note(text: str) -> Diagnostic:
    """``Kind NS/NAME: apiVersion V is not read ...`` (or ``kind K is not read (did you
    mean ...?)``: the field at fault)."""
    obj, _, rest = text.partition(": ")
    return _Said(obj, rest.partition(" ")[0], rest, text=text)


def _no_ingress_note(sources: Sequence[str]) -> Diagnostic:
    if sources:
        from ._load import no_ingress_warning

        text = no_ingress_warning(sources)
    else:
        text = "no Ingress among the resources"
    return _Said("Resources", "ingresses", text, text=text)


def check_findings(res: Resources, ingress_class: str | None = None,
                   controller: str | None = None, sources: Sequence[str] = (), *,
                   settings: ProxySettings | None = None, load_balance: str | None = None,
                   ssl_passthrough: bool = False, service_upstream: bool = False
                   ) -> tuple[RouteTable, list[Diagnostic]]:
    """The table ``check`` builds and every finding it reports, in the order it prints them
    (:func:`check` without the argument checks; ``ingresslib check`` prints these).
    ``settings``, ``load_balance`` and ``service_upstream``: a ConfigMap's (``check
    --config``), as ``serve --config`` gives them to the proxy and the router; None (False):
    the built-in ones.
    ``ssl_passthrough``: ``--enable-ssl-passthrough``."""
    from ._decode import unread_versions
    from ._explain import (
        _client_auth_problems, _proxy_annotation_warnings, _reference_warnings, _tls_problems,
    )

    table = RouteTable.build(res, ingress_class=ingress_class, controller=controller)
    found: list[Diagnostic] = list(table.diagnostics)
    # SEMANTICS §2: "Annotation values that are invalid are reported as warnings and ignored, as
    # ingress-nginx does, never silently." The router reads the canary and balancing annotations
    # (the table only its own rules): its warnings belong in the validation report too.
    try:
        from ._router import Router
    except ImportError:  # pragma: no cover - the router is optional for check
        pass
    else:
        router = Router(res, ingress_class=ingress_class, controller=controller, table=table,
                        seed=0, service_upstream=service_upstream,
                        load_balance="round_robin" if load_balance is None else load_balance)
        # With any Service or endpoints among the files, each backend without endpoint is
        # one of these warnings (Router.no_endpoint); with Ingresses alone, none: a check of
        # the Ingresses alone is a legitimate one ("ok" says the Ingresses are valid).
        found += router.warnings
    # Fields the API server would drop (`kubectl apply` refuses them by default), first of the
    # rest: they often explain what follows (a canary annotation under `annotation:` is no
    # canary). Each once: a file named twice warns once per object definition.
    seen: set[str] = set()
    for w in res.warnings:
        if str(w) not in seen:
            seen.add(str(w))
            found.append(_field_note(w))
    found += [_proxy_note(w) for w in _proxy_annotation_warnings(table, res, settings)]
    # An Exact/Prefix path another rule's use-regex or rewrite-target turns into an
    # ingress-nginx regex (the whole host's locations): said, as the regex path itself is.
    found += _regex_host_notes(table)
    # What the annotations name (a custom-headers ConfigMap, a default-backend Service's
    # endpoints), found only at request time by the proxy: said here too.
    found += [_proxy_note(w) for w in _reference_warnings(table, res, settings,
                                                          service_upstream)]
    # Each once too: an object of an unread apiVersion is kept aside per definition (a file
    # named twice holds it twice), and its note names the object, not the file.
    found += [_unread_note(w) for w in dict.fromkeys(unread_versions(res.ignored))]
    found += [_Said(p.object, p.field, p.message, text=str(p))
              for p in [*_tls_problems(res, table), *_client_auth_problems(res, table)]]
    if getattr(settings, "ssl_dh_param", ""):
        # The ConfigMap's ssl-dh-param Secret, as the certificate store reads it.
        from ._tls import dh_param_problems

        found += [_Said(p.object, p.field, p.message, text=str(p))
                  for p in dh_param_problems(res, settings)]
    found += _passthrough_notes(table, ssl_passthrough, res)
    if not res.ingresses:
        # A folder of READMEs, an empty file, a wrong path to a folder: "ok" alone would
        # read as "your Ingresses are valid".
        found.append(_no_ingress_note(sources))
    return table, found


def _regex_host_notes(table: RouteTable) -> list[Diagnostic]:
    """proxy/_annotations.py ``regex_host_warnings`` on the table's routes, each naming its
    rule path's field."""
    try:
        from .proxy._annotations import regex_host_warnings
    except ImportError:  # pragma: no cover - the proxy is optional for check
        return []
    from ._explain import _rule_path_fields

    fields: dict[int, dict[tuple[str | None, str | None, str | None], str]] = {}

    def path_field(route: Any) -> str:
        ing = route.ingress_object
        if ing is None:
            return ""
        index = fields.get(id(ing))
        if index is None:
            index = fields[id(ing)] = _rule_path_fields(ing)
        return index.get((route.host, route.path, route.path_type), "")

    return [_proxy_note(w) for w in regex_host_warnings(table.routes, path_field)]


def _passthrough_notes(table: RouteTable, enabled: bool, res: Resources) -> list[Diagnostic]:
    """What ``serve --tls-listen`` logs of the ``ssl-passthrough`` annotations at start
    (proxy/_passthrough.py ``passthrough_hosts``, its own build): an invalid value, a canary,
    no rule host, a host whose server is an older Ingress's; with ``enabled``
    (``--enable-ssl-passthrough``) a wildcard host and a host without a ``/`` rule, and a
    ``/`` rule whose Service is missing, headless or ExternalName (``undialable``); without
    it that each such host is terminated (the annotation ignored, as ingress-nginx ignores it
    without its flag)."""
    try:
        from .proxy._passthrough import PASSTHROUGH, passthrough_hosts, undialable
    except ImportError:  # pragma: no cover - the proxy is optional for check
        return []
    out: list[Diagnostic] = []
    hosts = passthrough_hosts(table, enabled)
    for w in dict.fromkeys(hosts.warnings):
        obj, _, message = w.partition(f": annotation {PASSTHROUGH}: ")
        out.append(_Said(obj, f"metadata.annotations[{PASSTHROUGH}]", message, text=w))
    for ingress, message in undialable(res.services, hosts.routes)[1] if hosts.routes else ():
        out.append(_Said(f"Ingress {ingress}", "spec.rules", message,
                         text=f"Ingress {ingress}: {message}"))
    return out


def _require_resources(given: object, call: str) -> None:
    if isinstance(given, Resources):
        return
    hint = (f"; for files: ingresslib.{call}(ingresslib.load_manifests({short_repr(given)}), "
            "...)" if isinstance(given, (str, os.PathLike)) else "")
    raise TypeError(
        f"ingresslib.{call}() takes a Resources (from ingresslib.load_manifests(path), "
        "ingresslib.parse_manifests(text) or ingresslib.Resources.from_dicts(objects)), "
        f"not {type(given).__name__} {short_repr(given)}{hint}")


def _require(value: object, name: str, call: str, types: tuple[type, ...], what: str) -> None:
    # bool is an int: never a port, a name or a flag's stand-in here.
    if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
        return
    raise TypeError(f"ingresslib.{call}(): {name} must be {what}, not "
                    f"{type(value).__name__} {short_repr(value)}")


def _require_sources(sources: object, call: str) -> list[str]:
    if isinstance(sources, (str, bytes)) or not isinstance(sources, Iterable):
        raise TypeError(f"ingresslib.{call}(): sources must be a list of paths (str), not "
                        f"{type(sources).__name__} {short_repr(sources)}")
    out = [os.fspath(s) if isinstance(s, os.PathLike) else s for s in sources]
    for s in out:
        _require(s, "each of sources", call, (str,), "a path (str)")
    return out


def check(resources: Resources, *, ingress_class: str | None = None,
          controller: str | None = None, sources: Sequence[str] = (),
          settings: ProxySettings | None = None, load_balance: str | None = None,
          ssl_passthrough: bool = False, service_upstream: bool = False) -> list[Diagnostic]:
    """Everything ``ingresslib check`` reports of ``resources``, as :class:`Diagnostic` values
    (``object``, ``field``, ``message``, ``severity``), in the order it prints them: the
    table's notes (shadowed and duplicate rules, a canary with no main rule, Ingresses the
    class filter leaves out: ``"info"``), the router's warnings (an invalid canary or balancing
    annotation, a backend without ready endpoint when Services are given), the fields the API
    server would drop, the annotation values the proxy ignores (``proxy-read-timeout: 30s``,
    an annotation ingresslib does not implement; "using the default" names the value of
    ``settings``), objects of an apiVersion not read, TLS problems (a missing Secret, an
    expired certificate), what ``serve --enable-ssl-passthrough`` logs of ``ssl-passthrough``
    annotations (an invalid value, a wildcard host, a host without a ``/`` rule) and, when
    ``resources`` hold no Ingress, a warning saying so. ``str()`` of each is the line
    ``check`` prints; ``check -o json`` lists them. Loaded Resources are valid: the errors of
    invalid manifests are raised by the loaders (:class:`ValidationError`).

    ``ingress_class`` and ``controller`` filter as for :class:`RouteTable`. ``sources``: the
    files or folders the resources were read from, named by the no-Ingress warning as
    ``check -f`` names them. ``settings``, ``load_balance`` and ``service_upstream`` are its
    ``--config``: those of ``ingresslib.proxy.load_config(path)`` (None, False: the built-in
    ones), as for :func:`explain`.
    ``ssl_passthrough``: ``check --enable-ssl-passthrough`` (serve's flag; False, the default:
    each ``ssl-passthrough`` host is said to be ignored, its TLS terminated).

    Gate a test suite on the warnings:

    >>> import ingresslib
    >>> res = ingresslib.parse_manifests('''
    ... apiVersion: networking.k8s.io/v1
    ... kind: Ingress
    ... metadata:
    ...   name: web
    ...   annotations: {nginx.ingress.kubernetes.io/proxy-read-timeout: 30s}
    ... spec:
    ...   rules:
    ...   - http:
    ...       paths:
    ...       - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
    ... ''')
    >>> [(d.object, d.field) for d in ingresslib.check(res) if d.severity == "warning"]
    [('Ingress default/web', 'metadata.annotations[nginx.ingress.kubernetes.io/proxy-read-timeout]')]
    """
    _require_resources(resources, "check")
    _require(ingress_class, "ingress_class", "check", (str, type(None)), "an IngressClass name "
             "(str) or None")
    _require(controller, "controller", "check", (str, type(None)),
             "an IngressClass spec.controller value (str) or None")
    _require(load_balance, "load_balance", "check", (str, type(None)), "str or None")
    _require(ssl_passthrough, "ssl_passthrough", "check", (bool,), "True or False")
    _require(service_upstream, "service_upstream", "check", (bool,), "True or False")
    if settings is not None:
        from .proxy._settings import ProxySettings

        _require(settings, "settings", "check", (ProxySettings,),
                 "an ingresslib.ProxySettings or None")
    paths = _require_sources(sources, "check")
    return check_findings(resources, ingress_class, controller, paths, settings=settings,
                          load_balance=load_balance, ssl_passthrough=ssl_passthrough,
                          service_upstream=service_upstream)[1]


def _header_pairs(headers: object) -> list[tuple[str, str]]:
    """``headers`` as ``Router.route`` takes them (a mapping, or (name, value) pairs; str or
    bytes, bytes read as UTF-8 as sent), checked as ``explain -H`` checks its lines."""
    from ._explain import _parse_headers
    from ._explain_url import UsageError, client_text

    if isinstance(headers, (str, bytes)) or not isinstance(headers, (Mapping, Iterable)):
        raise TypeError("ingresslib.explain(): headers must be a mapping or (name, value) "
                        f"pairs, not {type(headers).__name__} {short_repr(headers)}")
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[str] = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError("ingresslib.explain(): each header must be a (name, value) pair, "
                            f"not {type(item).__name__} {short_repr(item)}")
        pair = []
        for part in item:
            if isinstance(part, bytes):
                part = part.decode("utf-8", "surrogateescape")
            _require(part, "a header name or value", "explain", (str,), "str or bytes")
            # A lone surrogate other than a byte's stand-in (``"\\ud800"``) as U+FFFD, as in
            # the URL (``client_text``): not a UnicodeEncodeError when the request is written.
            pair.append(client_text(part))
        if ":" in pair[0]:
            raise UsageError(f"bad header name {pair[0]!r}: the name must be a token (letters, "
                             "digits, and !#$%&'*+-.^_`|~), not empty")
        out.append(f"{pair[0]}:{pair[1]}")
    # The -H lines' own checks (a token name, no CR/LF/NUL in the value...): ValueError.
    return _parse_headers(out)


def _tls_secrets_only(res: Resources, default_ssl_certificate: str | None = None, *,
                      https: bool = True) -> Resources:
    """``res`` as ``serve --kubernetes --no-auth-secrets`` reads the cluster. With its HTTPS
    listener (``https``: ``--tls-listen``), only the ``kubernetes.io/tls`` Secrets (its one
    Secret watch, ``_kube.WATCHED_KINDS``' field selector; the named ones, ``AUTH_SECRETS``,
    are not watched), and the ``--default-ssl-certificate`` one whatever its type (watched by
    name: ``_kube.with_default_secret``). The routes of basic/digest auth, an Opaque
    ``auth-tls-secret`` or ``proxy-ssl-secret`` then answer as for a missing Secret (503), and
    an Opaque ``ssl-dh-param`` is not read. Without it no Secret at all (``_serve._watch``
    leaves the TLS watch out, and watches the default one only with ``--tls-listen``): a
    ``kubernetes.io/tls`` ``proxy-ssl-secret`` answers 503 too."""
    import dataclasses

    from ._tls import parse_secret_ref

    if not https:
        return dataclasses.replace(res, secrets=())
    default = parse_secret_ref(default_ssl_certificate) if default_ssl_certificate else None
    return dataclasses.replace(res, secrets=tuple(
        s for s in res.secrets if s.type == _TLS_SECRET_TYPE
        or (s.metadata.namespace, s.metadata.name) == default))


#: The Secret type ``serve --kubernetes`` always watches (``_kube.WATCHED_KINDS``).
_TLS_SECRET_TYPE = "kubernetes.io/tls"


def explain(resources: Resources, url: str, *, method: str = "GET",
            headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]] = (),
            ingress_class: str | None = None, controller: str | None = None,
            client_ip: str | None = None, settings: ProxySettings | None = None,
            load_balance: str | None = None, tls: bool = False, tls_listen: str | None = None,
            sources: Sequence[str] = (), ssl_passthrough: bool = False,
            service_upstream: bool = False,
            default_ssl_certificate: str | None = None,
            no_auth_secrets: bool = False) -> dict[str, Any]:
    """What ``ingresslib explain`` says of ``url``: the document ``explain -o json`` prints
    (``"ok"``, ``"status"``, ``"reason"``, ``"match"``: the Ingress, rule and backend;
    ``"decision"``: the endpoint the router picks when ``resources`` hold the Services and
    endpoints; ``"verdict"``: what the proxy answers, its access control; ``"shadowed"``,
    ``"not_served"``, ``"tls"``, ``"warnings"``, ``"clients_send"`` (the path curl and browsers
    send for a URL with dot segments), ``"with_tls"`` (an HTTPS listener's redirect), and what
    the route's location does as the proxy does it: ``"cors"``, ``"rate_limit"``,
    ``"rewrite"`` (what a rewrite-target route's backend receives), ``"upstream_vhost"``,
    ``"response_rewrite"``, ``"default_backend"``, when they apply; ``decision["canary_reason"]``: why the canary or the main backend). README's explain paragraphs
    describe each key.

    ``url``: ``http://host/path``, ``host/path`` or ``/path``, sent as a browser or curl sends
    it. ``method``, ``headers`` (a mapping or (name, value) pairs; a ``Host`` header is routed
    on), ``client_ip`` (the TCP peer's address), ``ingress_class`` and ``controller`` are the
    command's ``-X``, ``-H``, ``--client-ip``, ``--ingress-class`` and ``--controller``.
    ``settings``, ``load_balance`` and ``service_upstream`` are its ``--config``: the
    ``settings``, ``load_balance`` and ``service_upstream`` of
    ``ingresslib.proxy.load_config(path)``. ``tls=True`` answers as a
    server with an HTTPS listener on port 443 (``--tls``), ``tls_listen="HOST:PORT"`` on that
    port (``--tls-listen``). ``sources``: the files the resources were read from, named by the
    no-Ingress warning. ``ssl_passthrough``: ``--enable-ssl-passthrough`` (an https:// URL of
    an ``ssl-passthrough`` host is then piped, ``"ssl_passthrough"``; False: that key says
    the annotation is ignored). ``default_ssl_certificate``: ``--default-ssl-certificate``
    (``"namespace/name"`` of the Secret serve's handshake answers with when no Ingress's
    Secret does: ``"tls"``'s ``"default_certificate"``). ``no_auth_secrets``:
    ``--no-auth-secrets``, as ``serve --kubernetes --no-auth-secrets`` reads the cluster
    (:func:`_tls_secrets_only`: with an HTTPS listener, ``tls``, ``tls_listen`` or an
    ``https://`` URL, the ``kubernetes.io/tls`` Secrets; without, none). A value the command
    refuses as a usage error raises ValueError; a value of the wrong type, TypeError.

    >>> import ingresslib
    >>> res = ingresslib.parse_manifests('''
    ... apiVersion: networking.k8s.io/v1
    ... kind: Ingress
    ... metadata: {name: web}
    ... spec:
    ...   rules:
    ...   - host: shop.example.test
    ...     http:
    ...       paths:
    ...       - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
    ... ''')
    >>> doc = ingresslib.explain(res, "http://shop.example.test/api/items")
    >>> doc["match"]["ingress"], doc["match"]["service"], doc["match"]["path_type"]
    ('default/web', 'api', 'Prefix')
    >>> ingresslib.explain(res, "http://shop.example.test/")["status"]
    404
    """
    from ._explain import (_TOKEN_RE, _client_ip, _default_ssl_certificate, _scheme, _tls_port,
                           explain_url)
    from ._explain_url import UsageError, split_url

    _require_resources(resources, "explain")
    _require(url, "url", "explain", (str,), "a URL (str)")
    _require(method, "method", "explain", (str,), "an HTTP method (str)")
    for name, value in (("ingress_class", ingress_class), ("controller", controller),
                        ("client_ip", client_ip), ("load_balance", load_balance),
                        ("tls_listen", tls_listen),
                        ("default_ssl_certificate", default_ssl_certificate)):
        _require(value, name, "explain", (str, type(None)), "str or None")
    _require(tls, "tls", "explain", (bool,), "True or False")
    _require(ssl_passthrough, "ssl_passthrough", "explain", (bool,), "True or False")
    _require(service_upstream, "service_upstream", "explain", (bool,), "True or False")
    _require(no_auth_secrets, "no_auth_secrets", "explain", (bool,), "True or False")
    if settings is not None:
        from .proxy._settings import ProxySettings

        _require(settings, "settings", "explain", (ProxySettings,),
                 "an ingresslib.ProxySettings or None")
    paths = _require_sources(sources, "explain")
    pairs = _header_pairs(headers)
    if not _TOKEN_RE.fullmatch(method):
        raise UsageError(f"bad method {method!r}: a method is a token (e.g. GET)")
    split_url(url)  # a URL a browser or curl refuses: ValueError
    peer = _client_ip(client_ip)
    tls_port = _tls_port(tls, tls_listen)
    _default_ssl_certificate(default_ssl_certificate)
    if no_auth_secrets:
        # serve's HTTPS listener: --tls / --tls-listen, or an https:// URL (one stands for it).
        resources = _tls_secrets_only(resources, default_ssl_certificate, https=(
            tls_port is not None or _scheme(url) == "https"))
    table = RouteTable.build(resources, ingress_class=ingress_class, controller=controller)
    info = explain_url(table, url, res=resources, method=method, headers=pairs,
                       ingress_class=ingress_class, controller=controller, client_ip=peer,
                       settings=settings, load_balance=load_balance, tls_port=tls_port,
                       service_upstream=service_upstream,
                       default_ssl_certificate=default_ssl_certificate)
    if not ssl_passthrough and "ssl_passthrough" in info:
        from ._explain import passthrough_off

        info["ssl_passthrough"] = passthrough_off(info["ssl_passthrough"])
    if not resources.ingresses:
        # A wrong folder, an empty file: the 404 would read as "no rule matches this URL"
        # (check and serve say this too). Among the warnings the document lists.
        info["warnings"] = [_no_ingress_note(paths).message, *info.get("warnings", ())]
    # "ok" as in check's document and the error documents (false): the URL was explained,
    # whatever the route.
    return {"ok": True, **info}

