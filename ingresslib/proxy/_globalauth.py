"""Global external authentication: the ConfigMap's ``global-auth-*`` keys and
``no-auth-locations``, and the ``enable-global-auth`` annotation, folded into the same
``RouteOptions.ext_auth`` value as a location's own ``auth-url`` (proxy/_extauth.py does the
subrequest for both).

References (kubernetes/ingress-nginx):

- ``internal/ingress/controller/template/configmap.go`` ``ReadConfig``: ``global-auth-url``
  through ``parser.StringToURL`` (a scheme and a host; "Global auth location denied" and no
  global auth when it fails), ``global-auth-method`` ``authreq.ValidMethod`` (an empty value:
  GET), ``global-auth-signin`` ``StringToURL``, ``global-auth-signin-redirect-param`` trimmed
  (default ``rd``), ``global-auth-response-headers`` split on ``,``, trimmed, each
  ``authreq.ValidHeader``, ``global-auth-request-redirect`` as written,
  ``global-auth-always-set-cookie`` ``strconv.ParseBool``, ``global-auth-cache-key`` as
  written, ``global-auth-cache-duration`` ``authreq.ParseStringToCacheDurations``
  (proxy/_authcache.py); ``global-auth-snippet`` is not implemented here (the ConfigMap
  reader warns).
- ``internal/ingress/controller/config/config.go`` ``NewDefault``: the global
  ``AuthCacheDuration`` is ``[]string{}``: with ``global-auth-cache-key`` and no
  ``global-auth-cache-duration`` nginx.tmpl writes no ``proxy_cache_valid`` line, so only an
  answer's own ``X-Accel-Expires`` / ``Cache-Control`` / ``Expires`` time caches it.
- ``internal/ingress/controller/config/config.go`` ``NewDefault``: ``NoAuthLocations:
  "/.well-known/acme-challenge"``.
- ``internal/ingress/annotations/authreqglobal/main.go``: ``enable-global-auth`` a bool,
  default true (a value ``GetBoolAnnotation`` refuses: the default).
- ``internal/ingress/controller/template/template.go`` ``shouldApplyGlobalAuth``:
  ``location.ExternalAuth.URL == "" && globalExternalAuthURL != "" &&
  location.EnableGlobalAuth`` (a location's own ``auth-url`` wins; nginx.tmpl then uses
  ``$all.Cfg.GlobalExternalAuth`` as ``$externalAuth``); ``isLocationInLocationList``: a
  location whose path starts with an item of ``no-auth-locations`` (split on ``,``, items
  trimmed, empty ones skipped) gets none of nginx.tmpl's ``auth_request``, ``auth-signin``
  ``error_page`` or ``auth_basic``/``auth_digest`` lines (its own ``auth-url`` and basic
  auth are skipped too).
- ``internal/ingress/controller/controller.go`` ``createServers``: the catch-all server's
  ``location /`` (a host no Ingress names) has ``EnableGlobalAuth`` false; a host's own
  ``location /`` takes its oldest Ingress's annotations (``locationApplyAnnotations``).

ingresslib's choices: an invalid value of a ``global-auth-*`` key is an error of the
ConfigMap (ingress-nginx warns and runs without global authentication, or with the default
of that key), as any invalid ConfigMap value is; an nginx variable in ``global-auth-url`` is
refused (nothing is expanded there, as in ``auth-url``). As for ``auth-url``, the reverse
proxy asks the auth service for routed requests only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .._goparse import parse_bool, trim_space
from ._access import BASIC_AUTH_ANNOTATIONS
from ._authcache import AuthCacheConfig, key_problem, parse_durations
from ._extauth import (_HEADER_RE, _METHODS, _PARAM_RE, ExtAuth, _never_from_auth, _redirect_ok,
                       _signin, _url)

__all__ = ["ENABLE_GLOBAL_AUTH", "DEFAULT_NO_AUTH_LOCATIONS", "check_url", "check_method",
           "check_signin", "check_signin_param", "check_response_headers",
           "check_request_redirect", "check_cache_key", "check_cache_duration",
           "split_locations", "global_ext_auth", "in_locations",
           "route_auth", "effective_auth", "fold"]

#: The per-Ingress annotation (without the prefix): authreqglobal/main.go.
ENABLE_GLOBAL_AUTH = "enable-global-auth"
#: config.go ``NoAuthLocations`` default.
DEFAULT_NO_AUTH_LOCATIONS = ("/.well-known/acme-challenge",)


# ------------------------------------------------------------------ the ConfigMap's values
def check_url(value: str) -> str:
    """``global-auth-url`` (ValueError: why not)."""
    try:
        return _url(value)[0]
    except UnicodeError:
        raise ValueError("not a valid URL") from None


def check_method(value: str) -> str:
    if value not in _METHODS:
        raise ValueError(f"invalid HTTP method {value!r} (one of {', '.join(_METHODS)})")
    return value


def check_signin(value: str) -> str:
    return _signin(value)


def check_signin_param(value: str) -> str:
    v = trim_space(value)
    if _PARAM_RE.fullmatch(v) is None:
        raise ValueError("a URL query parameter name (letters, digits, - . _ ~)")
    return v


def check_response_headers(value: str) -> tuple[str, ...]:
    """configmap.go: ``splitAndTrimSpace(val, ",")`` (empty items dropped), each
    ``authreq.ValidHeader``."""
    names = tuple(h for h in (trim_space(h) for h in value.split(",")) if h)
    _check_header_names(names)
    return names


def _check_header_names(names: tuple[str, ...]) -> None:
    for h in names:
        if _HEADER_RE.fullmatch(h) is None:
            raise ValueError(f"invalid header name {h!r} (letters, digits, - and _)")
        if _never_from_auth(h):
            # (auth-response-headers: warned and ignored, proxy/_extauth.py)
            raise ValueError(f"header {h!r} frames the request or is hop-by-hop: never set "
                             "from the auth answer")


def check_request_redirect(value: str) -> str:
    v = trim_space(value)
    if not _redirect_ok(v):
        raise ValueError("printable ASCII (it is sent as the X-Auth-Request-Redirect header)")
    return v


def check_cache_key(value: str) -> str:
    """``global-auth-cache-key`` (configmap.go: as written): ValueError where the annotation
    ``auth-cache-key`` is warned and not cached (no nginx variable, an unsupported one)."""
    problem = key_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_cache_duration(value: str) -> str:
    """``global-auth-cache-duration`` (``ParseStringToCacheDurations``)."""
    parse_durations(value)
    return value


def split_locations(value: str) -> tuple[str, ...]:
    """``no-auth-locations``: template.go ``isLocationInLocationList`` splits on ``,`` and
    trims spaces; empty items match nothing."""
    return tuple(item.strip(" ") for item in value.split(",") if item.strip(" "))


@functools.lru_cache(maxsize=16)
def _build(url: str, method: str, signin: str, param: str, headers: tuple[str, ...],
           redirect: str, always: bool, cache_key: str = "", cache_duration: str = ""
           ) -> ExtAuth:
    v, endpoint, tls, host, target = _url(url)
    cache: AuthCacheConfig | None = None
    if cache_key:
        # config.go NewDefault: no global-auth-cache-duration, no proxy_cache_valid line.
        items, valid = parse_durations(cache_duration) if cache_duration else ((), ())
        cache = AuthCacheConfig(cache_key, valid, items)
    return ExtAuth(v, endpoint, tls, host, target,
                   method.encode("ascii") if method else None, signin or None,
                   param or "rd", headers,
                   redirect.encode("ascii") if redirect else None, always, cache=cache)


def global_ext_auth(settings: Any) -> ExtAuth | None:
    """The ``ExtAuth`` of ``settings``' ``global_auth_*`` fields (None: no
    ``global_auth_url``); raises ValueError naming the field whose value is invalid
    (``ProxySettings.__post_init__`` calls it)."""
    s = settings
    checks: tuple[tuple[str, Callable[[str], object]], ...] = (
        ("global_auth_url", check_url), ("global_auth_method", check_method),
        ("global_auth_signin", check_signin),
        ("global_auth_signin_redirect_param", check_signin_param),
        ("global_auth_request_redirect", check_request_redirect),
        ("global_auth_cache_key", check_cache_key),
        ("global_auth_cache_duration", check_cache_duration))
    for name, check in checks:
        value = getattr(s, name, "")
        if value:
            try:
                if check(value) != value:
                    raise ValueError("surrounding spaces")
            except ValueError as e:
                raise ValueError(f"{name}: {value!r}: {e}") from None
    try:
        _check_header_names(s.global_auth_response_headers)
    except ValueError as e:
        raise ValueError(f"global_auth_response_headers: {e}") from None
    for item in s.no_auth_locations:
        if not item.strip(" "):
            raise ValueError(f"no_auth_locations: an empty item in {s.no_auth_locations!r}")
    if not s.global_auth_url:
        return None
    return _build(s.global_auth_url, s.global_auth_method, s.global_auth_signin,
                  s.global_auth_signin_redirect_param, s.global_auth_response_headers,
                  s.global_auth_request_redirect, s.global_auth_always_set_cookie,
                  s.global_auth_cache_key, s.global_auth_cache_duration)


# ------------------------------------------------------------------ per route
def in_locations(path: str | None, locations: tuple[str, ...]) -> bool:
    """template.go ``isLocationInLocationList``: the location's path (a rule path as
    written; None: the server's ``location /``) starts with one of ``locations``."""
    p = path or "/"
    return any(p.startswith(item.strip(" ")) for item in locations if item.strip(" "))


def route_auth(annotations: Mapping[str, str], prefix: str, rule_path: str | None,
               settings: Any, own: ExtAuth | None, own_denied: str | None,
               warn: Callable[[str, str], None]) -> ExtAuth | None:
    """The external authentication of a (non-canary) route: its own ``auth-url``'s (``own``),
    else the ConfigMap's global one unless ``enable-global-auth`` is false; None for a
    ``no-auth-locations`` rule path. ``rule_path`` None (not known here: a route without
    annotations shares one parse) leaves that test to the request (``effective_auth``)."""
    raw = annotations.get(prefix + ENABLE_GLOBAL_AUTH)
    enabled = True
    if raw is not None:
        b = parse_bool(raw)
        if b is None:
            warn(prefix + ENABLE_GLOBAL_AUTH, f"invalid boolean {raw!r}: must be \"true\" or "
                 "\"false\"; using the default true")
        else:
            enabled = b
    auth = own
    if auth is None and own_denied is None and enabled and prefix + "auth-url" not in annotations:
        auth = global_ext_auth(settings)
    if auth is None or not settings.no_auth_locations:
        return auth
    if rule_path is None:
        return replace(auth, no_auth_locations=settings.no_auth_locations)
    if in_locations(rule_path, settings.no_auth_locations):
        if own is not None:
            warn(prefix + "auth-url", f"not applied to the rule path {rule_path!r}: it is in "
                 "the ConfigMap's no-auth-locations (as in ingress-nginx)")
        return None
    return auth


def effective_auth(auth: ExtAuth | None, match: Any) -> ExtAuth | None:
    """``auth`` (a route's ``RouteOptions.ext_auth``) for a request that reached ``match``:
    None when the rule path is in the ``no-auth-locations`` ``auth`` carries (set only where
    the options were parsed without the rule path)."""
    if auth is None or not auth.no_auth_locations:
        return auth
    if in_locations(getattr(match, "path", None), auth.no_auth_locations):
        return None
    return auth


def fold(annotations: Mapping[str, str], prefix: str, rule_path: str | None, settings: Any,
         own: ExtAuth | None, own_denied: str | None, access_annotations: Mapping[str, str],
         enforced: bool, warn: Callable[[str, str], None], warn_route: Callable[[str], None]
         ) -> tuple[ExtAuth | None, str | None, Mapping[str, str]]:
    """``parse_route_options``'s step for a non-canary route: its ``ext_auth`` (``own``, the
    global one, or None), a denial (the global authentication applies and this front end
    cannot ask (``enforced`` False) while ``deny_unenforced_access_annotations`` is on), and
    its access annotations without the basic-auth ones on a ``no-auth-locations`` path."""
    denied: str | None = None
    if enforced:
        auth = route_auth(annotations, prefix, rule_path, settings, own, own_denied, warn)
    else:
        auth = None
        unasked = route_auth(annotations, prefix, rule_path, settings, None, None, warn)
        # (a rule path known here is tested already; None: the server's ``location /``)
        if unasked is not None and effective_auth(unasked, None) is not None:
            if settings.deny_unenforced_access_annotations:
                denied = ("global-auth-url (ConfigMap): external authentication is not "
                          "implemented by this front end")
                warn_route(f"{denied}: the routes answer 503; set "
                           "deny-unenforced-access-annotations to \"false\" to serve them "
                           "without it")
            else:
                warn_route("global-auth-url (ConfigMap): external authentication is not "
                           "implemented by this front end; the routes are served without it")
    basic = [k for k in access_annotations if k.startswith(prefix)
             and k[len(prefix):] in BASIC_AUTH_ANNOTATIONS]
    if basic and settings.no_auth_locations and in_locations(rule_path,
                                                             settings.no_auth_locations):
        for key in sorted(basic):
            warn(key, f"not applied to the rule path {rule_path or '/'!r}: it is in the "
                 "ConfigMap's no-auth-locations (as in ingress-nginx)")
        access_annotations = {k: v for k, v in access_annotations.items() if k not in basic}
    return auth, denied, access_annotations
