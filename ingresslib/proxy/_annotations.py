"""Per-route proxy options read from ingress-nginx annotations on the matched Ingress.

An invalid value is reported (a warning on the injected logger, once per route and table) and
the setting's default applies, as ingress-nginx does ("annotations with invalid values are
ignored"), never silently.

``rewrite-target`` and regex captures: matching uses Prefix semantics on the canonical path
(SEMANTICS §4, ImplementationSpecific included), so a rule path such as ``/api(/|$)(.*)`` is not
a regex for the matcher. For the rewrite only, ingress-nginx's generated
``rewrite "(?i)<rule path>" <target> break;`` is reproduced: the rule path is compiled as a
case-insensitive regex anchored at the start of the canonical path; when it matches, the whole
path becomes ``rewrite-target`` with ``$1``..``$9`` replaced by the groups (missing groups are
empty); when it does not, the path is forwarded unchanged. Without ``use-regex`` the rule path
is escaped first (no groups), which gives ingress-nginx's well-known "everything becomes the
target" behaviour of ``rewrite-target: /`` on a plain path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from typing import TypeVar

from ._settings import NEXT_UPSTREAM_CONDITIONS, ProxySettings

_T = TypeVar("_T")

__all__ = ["RouteOptions", "parse_route_options", "parse_size", "PREFIX"]

PREFIX = "nginx.ingress.kubernetes.io/"

_SIZE_RE = re.compile(r"^([0-9]+)([kKmMgG]?)$")
_SIZE_UNIT = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}
_TARGET_GROUP_RE = re.compile(r"\$([0-9])")


def parse_size(value: str) -> int:
    """nginx size syntax: ``1m`` -> 1048576, ``8k``, ``512``; raises ValueError."""
    m = _SIZE_RE.match(value.strip())
    if m is None:
        raise ValueError(f"invalid size {value!r}")
    return int(m.group(1)) * _SIZE_UNIT[m.group(2).lower()]


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """The effective options of one route: annotations merged over the settings."""

    #: None: redirect when the host has TLS and ``ssl_redirect`` is on (the default rule).
    ssl_redirect: bool
    force_ssl_redirect: bool
    app_root: str | None
    rewrite_target: str | None
    #: Compiled rule-path regex for rewrite-target (None when no rewrite).
    rewrite_regex: re.Pattern[str] | None
    x_forwarded_prefix: str | None
    connect_timeout: float
    read_timeout: float
    send_timeout: float
    next_upstream: frozenset[str]
    next_upstream_tries: int
    body_size: int
    #: ``backend-protocol: HTTPS``: talk TLS to the endpoints.
    backend_tls: bool = False
    #: Warnings found while parsing (also logged once).
    warnings: tuple[str, ...] = ()

    def rewrite(self, path: str) -> str:
        """Apply rewrite-target to a canonical path (see the module docstring)."""
        if self.rewrite_target is None or self.rewrite_regex is None:
            return path
        m = self.rewrite_regex.match(path)
        if m is None:
            return path
        groups = m.groups()

        def group(g: re.Match[str]) -> str:
            i = int(g.group(1))
            if i == 0:
                return m.group(0)
            return (groups[i - 1] or "") if i <= len(groups) else ""

        new = _TARGET_GROUP_RE.sub(group, self.rewrite_target)
        if not new.startswith("/"):
            new = "/" + new
        return new


# Go's strconv.ParseBool, which ingress-nginx's annotation parser uses (``parser/main.go``
# ``parseBool``; ``validators.go`` ``ValidateBool``): exactly these spellings, nothing trimmed or
# lower-cased. Anything else ("tRuE", " true", "yes") makes ingress-nginx use the default.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f'invalid boolean {value!r}: must be "true" or "false"')


# Go's strconv.Atoi, which ingress-nginx uses for integer annotations (``parser/main.go``
# ``parseInt``, ``validators.go`` ``ValidateInt``): optional sign, ASCII decimal digits, no
# spaces or underscores (Python's int() would also take " 5", "1_0" and non-ASCII digits).
_ATOI = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _atoi(value: str) -> int:
    if _ATOI.fullmatch(value) is None:
        raise ValueError(f"invalid integer {value!r}")
    return int(value)


def _seconds(value: str) -> float:
    # "All timeout values are unitless and in seconds" (ingress-nginx annotations.md, Custom
    # timeouts); proxy/main.go reads them with GetIntAnnotation, so "30s" or "4.5" are invalid
    # there and the ConfigMap's value applies: the same here, with a warning.
    try:
        n = _atoi(value)
    except ValueError:
        raise ValueError(f"invalid timeout {value!r}: must be a whole number of seconds, "
                         'such as "60"') from None
    if n <= 0:
        # ingress-nginx's Atoi takes "0" and writes "proxy_read_timeout 0s;"; a zero or
        # negative timeout is refused here instead (ingresslib's choice), with a warning.
        raise ValueError(f"invalid timeout {value!r}: must be greater than 0")
    return float(n)


# ingress-nginx validates the raw value with ``validUpstreamAnnotation`` (proxy/main.go): each
# condition followed by at most one whitespace character, so " error" or "error  timeout" are
# invalid there (the ConfigMap's value applies).
_NEXT_UPSTREAM_RE = re.compile(r"(?:[a-z_0-9]+\s?)+", re.ASCII)


def _next_upstream(value: str) -> frozenset[str]:
    if _NEXT_UPSTREAM_RE.fullmatch(value) is None:
        raise ValueError(f"invalid proxy-next-upstream {value!r}: conditions separated by "
                         "single spaces")
    parts = frozenset(value.split())
    unknown = parts - NEXT_UPSTREAM_CONDITIONS
    if not parts or unknown:
        raise ValueError(f"invalid proxy-next-upstream {value!r}")
    return parts


def _backend_tls(value: str) -> bool:
    # ingress-nginx: HTTP, HTTPS, AUTO_HTTP, GRPC, GRPCS, FCGI; only the HTTP/1.1 ones apply here.
    v = value.strip().upper()
    if v in ("HTTP", "AUTO_HTTP"):
        return False
    if v == "HTTPS":
        return True
    raise ValueError(f"unsupported backend-protocol {value!r} (HTTP or HTTPS)")


def _tries(value: str) -> int:
    n = _atoi(value)
    if n < 0:
        raise ValueError(f"invalid tries {value!r}: must be 0 (unlimited) or more")
    return n


def _show(value: object) -> str:
    """A setting's value as an annotation would spell it, for the warning's "default used"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, frozenset):
        return '"' + " ".join(sorted(value)) + '"'
    if value is None:
        return "(none)"
    return str(value)


def _path_value(value: str) -> str:
    v = value.strip()
    if not v.startswith("/") or any(c in v for c in " \t\r\n"):
        raise ValueError(f"invalid path {value!r}")
    return v


def _header_value(value: str) -> str:
    v = value.strip()
    if not v or any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError(f"invalid header value {value!r}")
    return v


def _compile_rule_path(rule_path: str | None, use_regex: bool) -> re.Pattern[str]:
    if rule_path is None:
        rule_path = "/"
    if use_regex:
        return re.compile(rule_path, re.IGNORECASE)
    return re.compile(re.escape(rule_path), re.IGNORECASE)


def parse_route_options(
    annotations: Mapping[str, str],
    rule_path: str | None,
    settings: ProxySettings,
    logger: logging.Logger | None = None,
    where: str = "",
) -> RouteOptions:
    """Merge one route's annotations over ``settings``; invalid values warn and fall back."""
    warnings: list[str] = []

    def get(name: str, conv: Callable[[str], _T], default: _T) -> _T:
        raw = annotations.get(PREFIX + name)
        if raw is None:
            return default
        try:
            return conv(raw)
        except (ValueError, re.error) as e:
            warnings.append(f"{where}: annotation {PREFIX}{name}: {e}; "
                            f"using the default {_show(default)}")
            return default

    ssl_redirect = get("ssl-redirect", _bool, settings.ssl_redirect)
    force = get("force-ssl-redirect", _bool, False)
    app_root: str | None = get("app-root", _path_value, None)
    rewrite_target: str | None = get("rewrite-target", _header_value, None)
    use_regex = get("use-regex", _bool, False)
    prefix: str | None = get("x-forwarded-prefix", _header_value, None)
    connect = get("proxy-connect-timeout", _seconds, settings.proxy_connect_timeout)
    read = get("proxy-read-timeout", _seconds, settings.proxy_read_timeout)
    send = get("proxy-send-timeout", _seconds, settings.proxy_send_timeout)
    nxt = get("proxy-next-upstream", _next_upstream, frozenset(settings.proxy_next_upstream))
    tries = get("proxy-next-upstream-tries", _tries, settings.proxy_next_upstream_tries)
    body = get("proxy-body-size", parse_size, settings.proxy_body_size)
    backend_tls = get("backend-protocol", _backend_tls, False)

    regex: re.Pattern[str] | None = None
    if rewrite_target is not None:
        try:
            regex = _compile_rule_path(rule_path, bool(use_regex))
        except re.error as e:
            warnings.append(f"{where}: rule path {rule_path!r} is not a valid regex for "
                            f"rewrite-target ({e}); rewrite-target ignored")
            rewrite_target = None
    if logger is not None:
        for w in warnings:
            logger.warning("%s", w)
    return RouteOptions(
        ssl_redirect=bool(ssl_redirect),
        force_ssl_redirect=bool(force),
        app_root=app_root,
        rewrite_target=rewrite_target,
        rewrite_regex=regex,
        x_forwarded_prefix=prefix,
        connect_timeout=float(connect),
        read_timeout=float(read),
        send_timeout=float(send),
        next_upstream=nxt,
        next_upstream_tries=tries,
        body_size=body,
        backend_tls=backend_tls,
        warnings=tuple(warnings),
    )
