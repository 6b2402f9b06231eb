"""The API server's create-time validation, rule by rule.

Each rule sits beside the Kubernetes source text it implements: networking rules from
``pkg/apis/networking/validation/validation.go``, core rules (names, Services, Secrets, v1
Endpoints) from ``pkg/apis/core/validation/validation.go``, EndpointSlice rules from
``pkg/apis/discovery/validation/validation.go``, and the message helpers from
``k8s.io/apimachinery/pkg/util/validation``. Messages, field paths and type words are copied so
``ingresslib check`` prints what ``kubectl apply`` would.

Validators work on decoded models (``_decode`` has already reported wrong JSON types) and return
a list of :class:`~ingresslib._errors.FieldError`; they never raise. Identical errors of one
object are reported once, as the API server's ``ErrorList.ToAggregate()`` prints them. Values
print as field.Error's ErrorBody prints them: strings with ``%q``, numbers and bools with ``%v``,
anything else as its ``json.Marshal`` text (``null`` for a nil slice, ``[]`` for an empty one).

Fields the models do not hold are not validated (Service ``externalIPs``, EndpointSlice
``hints``/``deprecatedTopology``, ``metadata.generateName``, ``ownerReferences``,
``finalizers``...): ingresslib never reads them. A Service is checked as the API server's create
does, its service storage's beginCreate first (``clusterIPs`` and the family fields, then the
node port allocator): a refusal there is the whole answer (:func:`_begin_create`), but for
the one a stored object may break (``validate_service``'s ``stored``: ``ResourceStore``).

Deliberate differences from the API server, each documented:

- ``spec.tls[].hosts`` must not be IP addresses either (SEMANTICS §2: "same rules for
  ``spec.tls[].hosts``"); the API server only checks the DNS shape there. An IP can never be an
  SNI name, so such an entry could not select a certificate anyway.
- EndpointSlice and Endpoints addresses are not checked against the loopback and link-local
  ranges (ValidateEndpointIP / ValidateNonSpecialIP): manifests for a local ingresslib
  legitimately point at 127.0.0.1. Those helpers' parse check and their refusal of the
  unspecified address (0.0.0.0, ::), which no manifest needs, are kept.
- EndpointSlice ``ports[].port`` must be 1-65535 when set; the API server's validatePorts does
  not check it. ingresslib connects to that port, and a number outside the range would make the
  connect call raise instead of failing like an unreachable endpoint.
- A ``NodePort`` or ``LoadBalancer`` Service's ``nodePort`` is checked against 1-65535, where
  the API server's allocator checks the cluster's range (default 30000-32767), unknown here;
  the allocator's pool is taken as empty (other Services' node ports are not compared). The
  other checks that depend on the cluster (families and dual-stack it serves, its service
  CIDRs) are not made either.
- Secret ``data`` values that are not base64 are reported without echoing the value (it may be
  key material); the API server fails to decode the request body instead.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from ._errors import FieldError
from ._iptext import ip_text
from ._models import (
    ConfigMap,
    GO_SPACE,
    LEGACY_CLASS_ANNOTATION,
    Endpoint,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    Ingress,
    IngressBackend,
    IngressClass,
    IngressRule,
    IngressSpec,
    ObjectMeta,
    Secret,
    Service,
    ServiceSpec,
    go_utf8,
)

__all__ = [
    "validate_ingress",
    "validate_ingress_class",
    "validate_service",
    "validate_endpoint_slice",
    "validate_endpoints",
    "validate_secret",
    "is_dns1123_subdomain",
    "is_dns1123_label",
    "is_dns1035_label",
    "is_wildcard_dns1123_subdomain",
    "is_valid_port_name",
    "is_valid_port_num",
    "is_qualified_name",
    "is_valid_label_value",
    "object_label",
]

REQUIRED = "Required value"
INVALID = "Invalid value"
UNSUPPORTED = "Unsupported value"
FORBIDDEN = "Forbidden"
DUPLICATE = "Duplicate value"
TOO_LONG = "Too long"
TOO_MANY = "Too many"
SPEC_RULES_DETAIL = "either `defaultBackend` or `rules` must be specified"


def object_label(kind: str, meta: ObjectMeta, *, cluster_scoped: bool = False) -> str:
    """``Ingress default/web`` (``IngressClass nginx`` for the cluster-scoped kind)."""
    name = meta.name or "<no name>"
    if cluster_scoped:
        return f"{kind} {name}"
    return f"{kind} {meta.namespace}/{name}"


# --- k8s.io/apimachinery/pkg/util/validation: the message helpers -----------------------------


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # RegexError: `msg += " (e.g. "; for i := range examples { if i > 0 { msg += " or " };
    # msg += "'" + examples[i] + "', " }; msg += "regex used for validation is '" + re + "')"`.
    # The double space before "or" is the API server's, kept on purpose.
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, ex in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{ex}', "
    return out + f"regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} bytes"


def _inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
_WILDCARD_FMT = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_WILDCARD_MSG = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
    "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
    "alphanumeric character"
)
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"

# Go's regexp `^...$` anchors at the very end of the text; re.fullmatch does the same
# (Python's `$` would also accept a trailing newline).
_dns1123_label = re.compile(_DNS1123_LABEL_FMT).fullmatch
_dns1123_subdomain = re.compile(_DNS1123_SUBDOMAIN_FMT).fullmatch
_dns1035_label = re.compile(_DNS1035_LABEL_FMT).fullmatch
_wildcard_subdomain = re.compile(_WILDCARD_FMT).fullmatch
_http_path = re.compile(_HTTP_PATH_FMT).fullmatch
_config_key = re.compile(_CONFIG_KEY_FMT).fullmatch
_port_name_charset = re.compile("[-a-z0-9]+").fullmatch
_has_letter = re.compile("[a-z]").search
_ip_chars = re.compile("[0-9a-fA-F.:]+").fullmatch
_sloppy_ipv4 = re.compile(r"[0-9]+(\.[0-9]+){3}").fullmatch


def _byte_len(value: str) -> int:
    """Go's len() of a string: its UTF-8 byte count (cheap for ASCII)."""
    return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))


def _too_long(value: str, limit: int) -> bool:
    """More than ``limit`` UTF-8 bytes (Go's len() counts bytes); cheap for short ASCII."""
    n = len(value)
    return n > limit or (n * 4 > limit and len(value.encode("utf-8", "surrogatepass")) > limit)


@lru_cache(maxsize=4096)
def is_dns1123_subdomain(value: str) -> tuple[str, ...]:
    """IsDNS1123Subdomain: the messages for ``value`` (empty when valid)."""
    errs: list[str] = []
    if _too_long(value, 253):
        errs.append(_max_len_error(253))
    if not _dns1123_subdomain(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return tuple(errs)


@lru_cache(maxsize=4096)
def is_dns1123_label(value: str) -> tuple[str, ...]:
    """IsDNS1123Label."""
    errs: list[str] = []
    if _too_long(value, 63):
        errs.append(_max_len_error(63))
    if not _dns1123_label(value):
        if _dns1123_subdomain(value):
            # "It was a valid subdomain and not a valid label. Since we already checked
            # length, it must be dots."
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return tuple(errs)


@lru_cache(maxsize=4096)
def is_dns1035_label(value: str) -> tuple[str, ...]:
    """IsDNS1035Label."""
    errs: list[str] = []
    if _too_long(value, 63):
        errs.append(_max_len_error(63))
    if not _dns1035_label(value):
        errs.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return tuple(errs)


@lru_cache(maxsize=4096)
def is_wildcard_dns1123_subdomain(value: str) -> tuple[str, ...]:
    """IsWildcardDNS1123Subdomain: "valid: *.bar.com, *.foo.bar.com; invalid: *.*.bar.com,
    *.foo.*.com, *bar.com, f*.bar.com, *"."""
    errs: list[str] = []
    if _too_long(value, 253):
        errs.append(_max_len_error(253))
    if not _wildcard_subdomain(value):
        errs.append(_regex_error(_WILDCARD_MSG, _WILDCARD_FMT, "*.example.com"))
    return tuple(errs)


def is_valid_port_num(port: int) -> tuple[str, ...]:
    """IsValidPortNum: "a valid, non-zero port number"."""
    if 1 <= port <= 65535:
        return ()
    return (_inclusive_range_error(1, 65535),)


@lru_cache(maxsize=4096)
def is_valid_port_name(port: str) -> tuple[str, ...]:
    """IsValidPortName (IANA_SVC_NAME): "It must be non-empty and no more than 15 characters
    long. It may contain only [-a-z0-9] and must contain at least one letter [a-z]. It must not
    start or end with a hyphen, nor contain adjacent hyphens." """
    errs: list[str] = []
    if _too_long(port, 15):
        errs.append(_max_len_error(15))
    if not _port_name_charset(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _has_letter(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return tuple(errs)


def _is_path_segment_name(name: str) -> list[str]:
    # IsValidPathSegmentName: NameMayNotBe = {".", ".."}, NameMayNotContain = {"/", "%"}.
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _is_config_key(value: str) -> list[str]:
    # IsConfigMapKey: length, regex, then hasChDirPrefix.
    errs: list[str] = []
    if _too_long(value, 253):
        errs.append(_max_len_error(253))
    if not _config_key(value):
        errs.append(_regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_qname = re.compile(_QNAME_FMT).fullmatch
_label_value = re.compile(_LABEL_VALUE_FMT).fullmatch


@lru_cache(maxsize=4096)
def is_qualified_name(value: str) -> tuple[str, ...]:
    """IsQualifiedName: label and annotation keys, ``[prefix/]name``."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        # content.IsLabelKey (what validation.IsQualifiedName now is): `"a valid label key " +
        # RegexError(...)`; releases before the move said "a qualified name ".
        return (
            "a valid label key "
            + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        )
    if not name:
        errs.append("name part must be non-empty")
    elif _too_long(name, 63):
        errs.append("name part " + _max_len_error(63))
    if not _qname(name):
        errs.append("name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return tuple(errs)


@lru_cache(maxsize=4096)
def is_valid_label_value(value: str) -> tuple[str, ...]:
    """IsValidLabelValue."""
    errs: list[str] = []
    if _too_long(value, 63):
        errs.append(_max_len_error(63))
    if not _label_value(value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return tuple(errs)


def _parse_ip_sloppy(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """netutils.ParseIPSloppy: Go 1.16's net.ParseIP, kept because later Go versions got stricter.

    It differs from the stdlib parser in three ways that matter here: an IPv4 octet may carry any
    number of leading zeros (`dtoi` reads digits until the value exceeds 255), an IPv6 group any
    number of leading zeros (`xtoi`, value <= 0xFFFF), and a zone ("fe80::1%eth0") is refused.
    """
    if not _ip_chars(value):
        return None  # the common case (a host name), without the cost of an exception
    if ":" not in value:
        return _sloppy_v4(value)
    head, _, tail = value.rpartition(":")
    if "." in tail:
        # "An IPv4 address may be embedded in the last 32 bits": parsed by the sloppy parseIPv4.
        v4 = _sloppy_v4(tail)
        if v4 is None:
            return None
        value = f"{head}:{v4}"
    groups = value.split(":")
    for i, g in enumerate(groups):
        if len(g) > 4 and "." not in g:
            g = g.lstrip("0") or "0"
            if len(g) > 4:
                return None
            groups[i] = g
    try:
        return ipaddress.IPv6Address(":".join(groups))
    except ValueError:
        return None


def _sloppy_v4(value: str) -> ipaddress.IPv4Address | None:
    if not _sloppy_ipv4(value):
        return None
    # Go 1.16's dtoi reads any number of leading zeros ("0000000001" is 1) and gives up once
    # the value passes 0xFFFFFF; int() would refuse a text past 4,300 digits with a ValueError
    # (a crash out of validation), so the zeros go first and a long rest is no octet.
    digits = [o.lstrip("0") or "0" for o in value.split(".")]
    if any(len(d) > 3 for d in digits):
        return None
    octets = [int(d) for d in digits]
    if any(o > 255 for o in octets):
        return None
    return ipaddress.IPv4Address(".".join(map(str, octets)))


def _is_ip(value: str) -> bool:
    return _parse_ip_sloppy(value) is not None


def canonical_ip(value: str) -> str:
    """The address an endpoint's IP names, as Kubernetes reads it (ParseIPSloppy), written
    canonically; ``value`` unchanged if it is no IP (an FQDN). Connecting to the text as written
    would not do: the C resolver reads a leading-zero octet as octal ("010.0.0.1" is 8.0.0.1
    to getaddrinfo, 10.0.0.1 to Kubernetes)."""
    ip = _parse_ip_sloppy(value)
    return value if ip is None else ip_text(ip)


def _is_to4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    # net.IP.To4() != nil: an IPv4 address, or an IPv4-mapped IPv6 one ("::ffff:a.b.c.d").
    if ip is None:
        return False
    return isinstance(ip, ipaddress.IPv4Address) or ip.ipv4_mapped is not None


def _supported(values: Iterable[str]) -> str:
    # field.NotSupported: `"supported values: " + strings.Join(quoted, ", ")`.
    return "supported values: " + ", ".join(f'"{v}"' for v in values)


class _Errs:
    """Accumulates the errors of one object (its label is filled in once)."""

    __slots__ = ("obj", "out")

    def __init__(self, obj: str) -> None:
        self.obj = obj
        self.out: list[FieldError] = []

    def invalid(self, field: str, value: Any, detail: str, *, json_value: bool = False) -> None:
        self.out.append(FieldError(self.obj, field, INVALID, detail, value, True, json_value=json_value))

    def invalid_each(self, field: str, value: Any, msgs: Iterable[str]) -> None:
        for msg in msgs:
            self.out.append(FieldError(self.obj, field, INVALID, msg, value, True))

    def required(self, field: str, detail: str = "") -> None:
        self.out.append(FieldError(self.obj, field, REQUIRED, detail))

    def forbidden(self, field: str, detail: str) -> None:
        self.out.append(FieldError(self.obj, field, FORBIDDEN, detail))

    def unsupported(self, field: str, value: Any, supported: Sequence[str], *, named: bool = False) -> None:
        # `named`: the value's Go type is a named string type (core.Protocol...), which
        # ErrorBody prints with json.Marshal, not %q (FieldError.json_value).
        self.out.append(
            FieldError(self.obj, field, UNSUPPORTED, _supported(supported), value, True, json_value=named)
        )

    def too_long(self, field: str, limit: int) -> None:
        # field.TooLong: the value is omitted, "may not be more than %d bytes".
        self.out.append(FieldError(self.obj, field, TOO_LONG, f"may not be more than {limit} bytes"))

    def duplicate(self, field: str, value: Any, *, json_value: bool = False) -> None:
        self.out.append(FieldError(self.obj, field, DUPLICATE, "", value, True, json_value=json_value))

    def result(self) -> list[FieldError]:
        return unique_errors(self.out)


def unique_errors(errors: list[FieldError]) -> list[FieldError]:
    """``errors`` without repeats, first occurrence kept: the API server's message is
    ``errs.ToAggregate()`` (field/errors.go: `msg := fmt.Sprintf("%v", err); if
    errorMsgs.Has(msg) { continue }`), so identical errors of one object print once (two labels
    with the same bad value, say). Free for a valid object (no errors)."""
    if len(errors) < 2:
        return errors
    seen: set[str] = set()
    out: list[FieldError] = []
    for err in errors:
        text = str(err)
        if text not in seen:
            seen.add(text)
            out.append(err)
    return out


# --- ObjectMeta (core ValidateObjectMeta) -----------------------------------------------------


#: TotalAnnotationSizeLimitB (256 KiB).
_TOTAL_ANNOTATION_SIZE = 256 * 1024


def _validate_meta(e: _Errs, meta: ObjectMeta, name_fn: Any, *, namespaced: bool) -> None:
    # ValidateObjectMeta: `if len(meta.Name) == 0 { field.Required(fldPath.Child("name"),
    # "name or generateName is required") } else { for _, msg := range nameFn(meta.Name, false)
    # { field.Invalid(fldPath.Child("name"), meta.Name, msg) } }`
    if not meta.name:
        e.required("metadata.name", "name or generateName is required")
    else:
        e.invalid_each("metadata.name", meta.name, name_fn(meta.name))
    # "ValidateNamespaceName = NameIsDNSLabel". Cluster-scoped kinds: kubectl drops the namespace
    # before sending, so a stray one is not reported.
    if namespaced:
        e.invalid_each("metadata.namespace", meta.namespace, is_dns1123_label(meta.namespace))
    # ValidateLabels: `for k, v := range labels { ValidateLabelName(k, fldPath) (IsQualifiedName);
    # for _, msg := range validation.IsValidLabelValue(v) { field.Invalid(fldPath, v, msg) } }`
    _validate_labels(e, "metadata.labels", meta.labels)
    # ValidateAnnotations: `for k := range annotations { for _, msg := range
    # validation.IsQualifiedName(strings.ToLower(k)) { field.Invalid(fldPath, k, msg) } }`, and
    # `if err := ValidateAnnotationsSize(annotations); err != nil { field.TooLong(fldPath, "",
    # TotalAnnotationSizeLimitB) }`.
    size = 0
    for k, v in meta.annotations.items():
        e.invalid_each("metadata.annotations", k, is_qualified_name(_go_lower(k)))
        # `totalSize += (int64)(len(k)) + (int64)(len(v))`: Go's len() counts UTF-8 bytes.
        size += _byte_len(k) + _byte_len(v)
    if size > _TOTAL_ANNOTATION_SIZE:
        e.too_long("metadata.annotations", _TOTAL_ANNOTATION_SIZE)


def _go_lower(key: str) -> str:
    """Go's ``strings.ToLower``: each rune's simple lower case (``unicode.ToLower``). Python's
    ``str.lower`` applies SpecialCasing too, whose one unconditional lower-case entry is U+0130
    ("İ" -> "i" plus U+0307): Go makes it a plain "i", so an annotation key "İ" is valid to the
    API server. (Final sigma, Python's other difference, stays a non-ASCII letter either way.)"""
    if key.isascii():
        return key.lower()
    return key.replace("\u0130", "i").lower()


def _validate_labels(e: _Errs, fld: str, labels: Mapping[str, str]) -> None:
    # ValidateLabels: `for k, v := range labels { ValidateLabelName(k, fldPath) (IsQualifiedName);
    # for _, msg := range validation.IsValidLabelValue(v) { field.Invalid(fldPath, v, msg) } }`
    for k, v in labels.items():
        e.invalid_each(fld, k, is_qualified_name(k))
        e.invalid_each(fld, v, is_valid_label_value(v))


# --- networking.k8s.io/v1 Ingress -------------------------------------------------------------

#: supportedPathTypes.List() (sorted, as the API server lists them).
_SUPPORTED_PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
#: `invalidPathSequences = []string{"//", "/./", "/../", "%2f", "%2F"}`
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
#: `invalidPathSuffixes = []string{"/..", "/."}`
_INVALID_PATH_SUFFIXES = ("/..", "/.")
_MAX_LEN_CONTROLLER = 250
#: Stricter than the API server for TLS hosts (module docstring).
_TLS_HOSTS_REJECT_IP = True


def validate_ingress(ing: Ingress, obj: str | None = None) -> list[FieldError]:
    """Every create-time error of ``ing`` (ValidateIngressCreate)."""
    e = _Errs(obj or object_label("Ingress", ing.metadata))
    # `ValidateIngressName = apimachineryvalidation.NameIsDNSSubdomain`
    _validate_meta(e, ing.metadata, is_dns1123_subdomain, namespaced=True)
    _validate_ingress_spec(e, ing.spec)
    # ValidateIngressCreate: `if annotationIsSet && ingress.Spec.IngressClassName != nil &&
    # annotationVal != *ingress.Spec.IngressClassName { field.Invalid(annotationPath,
    # annotationVal, "must match `ingressClassName` when both are specified") }`
    ann = ing.metadata.annotations.get(LEGACY_CLASS_ANNOTATION)
    if ann is not None and ing.spec.ingress_class_name is not None:
        if ann != ing.spec.ingress_class_name:
            e.invalid(
                "annotations." + LEGACY_CLASS_ANNOTATION,
                ann,
                "must match `ingressClassName` when both are specified",
            )
    return e.result()


def _validate_ingress_spec(e: _Errs, spec: IngressSpec) -> None:
    # `if len(spec.Rules) == 0 && spec.DefaultBackend == nil { errMsg := fmt.Sprintf("either
    # `%s` or `rules` must be specified", "defaultBackend"); field.Invalid(fldPath, spec.Rules,
    # errMsg) }`
    # The value is spec.Rules, which ErrorBody renders with `json.Marshal(e.BadValue)`: `null`
    # for a nil slice (`rules` absent or null, or a model built in code), `[]` for `rules: []`
    # (the decoder sets the value to []: the model cannot tell the two apart).
    if not spec.rules and spec.default_backend is None:
        e.out.append(FieldError(e.obj, "spec", INVALID, SPEC_RULES_DETAIL, None, True, json_value=True))
    if spec.default_backend is not None:
        _validate_backend(e, spec.default_backend, "spec.defaultBackend")
    for i, rule in enumerate(spec.rules):
        _validate_rule(e, rule, f"spec.rules[{i}]")
    for t, tls in enumerate(spec.tls):
        base = f"spec.tls[{t}]"
        for h, host in enumerate(tls.hosts):
            fld = f"{base}.hosts[{h}]"
            # validateIngressTLS: `if strings.Contains(host, "*") { IsWildcardDNS1123Subdomain
            # ... continue }; IsDNS1123Subdomain(host)`
            if _TLS_HOSTS_REJECT_IP and _is_ip(host):
                e.invalid(fld, host, "must be a DNS name, not an IP address")
            if "*" in host:
                e.invalid_each(fld, host, is_wildcard_dns1123_subdomain(host))
            else:
                e.invalid_each(fld, host, is_dns1123_subdomain(host))
        # validateTLSSecretName: `if len(name) == 0 { return nil }; ValidateSecretName(name)`
        if tls.secret_name:
            e.invalid_each(f"{base}.secretName", tls.secret_name, is_dns1123_subdomain(tls.secret_name))
    # `ValidateIngressClassName = apimachineryvalidation.NameIsDNSSubdomain`
    if spec.ingress_class_name is not None:
        e.invalid_each(
            "spec.ingressClassName", spec.ingress_class_name, is_dns1123_subdomain(spec.ingress_class_name)
        )


def _validate_rule(e: _Errs, rule: IngressRule, base: str) -> None:
    host = rule.host
    if host:
        fld = base + ".host"
        # `if isIP := (netutils.ParseIPSloppy(ih.Host) != nil); isIP { field.Invalid(...,
        # "must be a DNS name, not an IP address") }`
        if _is_ip(host):
            e.invalid(fld, host, "must be a DNS name, not an IP address")
        # `if strings.Contains(ih.Host, "*") { IsWildcardDNS1123Subdomain } else
        # { IsDNS1123Subdomain }`: a port ("foo.com:80") or upper case fails the regex.
        if "*" in host:
            e.invalid_each(fld, host, is_wildcard_dns1123_subdomain(host))
        else:
            e.invalid_each(fld, host, is_dns1123_subdomain(host))
    # validateIngressRuleValue: `if ingressRule.HTTP != nil {...}`: a host-only rule is valid.
    if rule.paths is None:
        return
    # validateHTTPIngressRuleValue: `if len(httpIngressRuleValue.Paths) == 0
    # { field.Required(fldPath.Child("paths"), "") }`
    if not rule.paths:
        e.required(base + ".http.paths")
    for i, p in enumerate(rule.paths):
        pbase = f"{base}.http.paths[{i}]"
        # `if path.PathType == nil { return append(allErrs, field.Required(
        # fldPath.Child("pathType"), "pathType must be specified")) }` (backend not checked).
        if p.path_type is None:
            e.required(pbase + ".pathType", "pathType must be specified")
            continue
        path = p.path or ""
        if p.path_type in ("Exact", "Prefix"):
            # `if !strings.HasPrefix(path.Path, "/") { "must be an absolute path" }`
            if not path.startswith("/"):
                e.invalid(pbase + ".path", path, "must be an absolute path")
            if path:
                for seq in _INVALID_PATH_SEQUENCES:
                    if seq in path:
                        e.invalid(pbase + ".path", path, f"must not contain '{seq}'")
                for suffix in _INVALID_PATH_SUFFIXES:
                    if path.endswith(suffix):
                        e.invalid(pbase + ".path", path, f"cannot end with '{suffix}'")
        elif p.path_type == "ImplementationSpecific":
            # `if len(path.Path) > 0 { if !strings.HasPrefix(path.Path, "/") {...} }`:
            # anything else (regexes included) is the controller's business.
            if path and not path.startswith("/"):
                e.invalid(pbase + ".path", path, "must be an absolute path")
        else:
            # `field.NotSupported(..., *path.PathType, ...)`: a networking.PathType.
            e.unsupported(pbase + ".pathType", p.path_type, _SUPPORTED_PATH_TYPES, named=True)
        _validate_backend(e, p.backend, pbase + ".backend")


def _validate_backend(e: _Errs, backend: IngressBackend, base: str) -> None:
    # validateIngressBackend.
    svc, res = backend.service, backend.resource
    if svc is not None and res is not None:
        # `field.Invalid(fldPath, "", "cannot set both resource and service backends")`
        e.invalid(base, "", "cannot set both resource and service backends")
        return
    if res is not None:
        _validate_typed_ref(e, res.api_group, res.kind, res.name, base + ".resource")
        return
    if svc is None:
        # `default: field.Invalid(fldPath, "", "resource or service backend is required")`
        e.invalid(base, "", "resource or service backend is required")
        return
    # `if len(backend.Service.Name) == 0 { field.Required(fldPath.Child("service", "name"), "") }
    # else { apivalidation.ValidateServiceName }` (NameIsDNS1035Label).
    if not svc.name:
        e.required(base + ".service.name")
    else:
        e.invalid_each(base + ".service.name", svc.name, is_dns1035_label(svc.name))
    # `hasPortName := len(backend.Service.Port.Name) > 0; hasPortNumber :=
    # backend.Service.Port.Number != 0`
    has_name = bool(svc.port.name)
    has_number = bool(svc.port.number)
    if has_name and has_number:
        e.invalid(base, "", "cannot set both port name & port number")
    elif has_name:
        assert svc.port.name is not None
        e.invalid_each(base + ".service.port.name", svc.port.name, is_valid_port_name(svc.port.name))
    elif has_number:
        assert svc.port.number is not None
        e.invalid_each(base + ".service.port.number", svc.port.number, is_valid_port_num(svc.port.number))
    else:
        e.required(base, "port name or number is required")


def _validate_typed_ref(e: _Errs, api_group: str | None, kind: str, name: str, base: str) -> None:
    # validateIngressTypedLocalObjectReference / validateIngressClassParametersReference.
    if api_group is not None:
        e.invalid_each(base + ".apiGroup", api_group, is_dns1123_subdomain(api_group))
    if not kind:
        e.required(base + ".kind")
    else:
        e.invalid_each(base + ".kind", kind, _is_path_segment_name(kind))
    if not name:
        e.required(base + ".name")
    else:
        e.invalid_each(base + ".name", name, _is_path_segment_name(name))


# --- networking.k8s.io/v1 IngressClass --------------------------------------------------------

#: supportedIngressClassParametersReferenceScopes.List()
_SUPPORTED_SCOPES = ("Cluster", "Namespace")


def validate_ingress_class(ic: IngressClass, obj: str | None = None) -> list[FieldError]:
    """Every create-time error of ``ic`` (ValidateIngressClass)."""
    e = _Errs(obj or object_label("IngressClass", ic.metadata, cluster_scoped=True))
    _validate_meta(e, ic.metadata, is_dns1123_subdomain, namespaced=False)
    controller = ic.spec.controller
    # validateIngressClassSpec: `if len(spec.Controller) == 0 { field.Required(...) } else {
    # if len(spec.Controller) > maxLenIngressClassController { field.TooLong(...) };
    # validation.IsDomainPrefixedPath(fldPath.Child("controller"), spec.Controller) }`
    if not controller:
        e.required("spec.controller")
    else:
        if _too_long(controller, _MAX_LEN_CONTROLLER):
            e.too_long("spec.controller", _MAX_LEN_CONTROLLER)
        _domain_prefixed_path(e, "spec.controller", controller)
    params = ic.spec.parameters
    if params is not None:
        base = "spec.parameters"
        _validate_typed_ref(e, params.api_group, params.kind, params.name, base)
        # v1 defaulting: "Scope ... Defaults to Cluster" when parameters are set (the decoder
        # applies it; None here means a model built by hand).
        scope = params.scope if params.scope is not None else "Cluster"
        if scope not in _SUPPORTED_SCOPES:
            e.unsupported(base + ".scope", scope, _SUPPORTED_SCOPES)
        elif scope == "Namespace":
            # `if params.Namespace == nil { field.Required(fldPath.Child("namespace"),
            # "`parameters.scope` is set to 'Namespace'") } else { ValidateNamespaceName }`
            if params.namespace is None:
                e.required(base + ".namespace", "`parameters.scope` is set to 'Namespace'")
            else:
                e.invalid_each(base + ".namespace", params.namespace, is_dns1123_label(params.namespace))
        elif params.namespace is not None:
            # `field.Forbidden(fldPath.Child("namespace"), "`parameters.scope` is set to 'Cluster'")`
            e.forbidden(base + ".namespace", "`parameters.scope` is set to 'Cluster'")
    return e.result()


def _domain_prefixed_path(e: _Errs, fld: str, value: str) -> None:
    # IsDomainPrefixedPath: "All characters before the first "/" must be a valid subdomain as
    # defined by RFC 1123. All characters trailing the first "/" must be valid HTTP Path
    # characters as defined by RFC 3986."
    host, sep, path = value.partition("/")
    if not sep or not host or not path:
        e.invalid(fld, value, 'must be a domain-prefixed path (such as "acme.io/foo")')
        return
    e.invalid_each(fld, host, is_dns1123_subdomain(host))
    if not _http_path(path):
        e.invalid(fld, path, _regex_error("Invalid path", _HTTP_PATH_FMT))


# --- v1 Service ---------------------------------------------------------------------------------

#: supportedPortProtocols (sorted).
_SUPPORTED_PROTOCOLS = ("SCTP", "TCP", "UDP")
_SUPPORTED_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
#: The Service types whose nodePorts the API server allocates.
_NODE_PORT_TYPES = ("LoadBalancer", "NodePort")
#: supportedServiceIPFamily, supportedServiceIPFamilyPolicy (sorted).
_IP_FAMILIES = ("IPv4", "IPv6")
_IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")


#: A Service port is an int32 (``ServicePort.Port``): past it, the object never decodes.
_INT32 = 1 << 31


def validate_service(svc: Service, obj: str | None = None, *,
                     stored: bool = False) -> list[FieldError]:
    """The Service rules ingresslib depends on (core ValidateService, create), in its order,
    after the refusals of the service storage's beginCreate (:func:`_begin_create`).

    ``stored``: ``svc`` is one the API server stored (``ResourceStore``'s second look at an
    object an admission-only rule refused): the node port allocator's refusal of one node port
    for two port numbers (:data:`_NODE_PORT_TAKEN`), which only create makes, is told with the
    other rules' errors instead of alone. An update stores such a Service: updateNodePorts
    allocates each node port once per Service (`if !containsNumber(oldNodePortsNumbers, ...)
    && !portAllocated[...] { nodePortOp.Allocate(...) }`), and ValidateService's (protocol,
    nodePort) duplicate check lets two protocols share one."""
    e = _Errs(obj or object_label("Service", svc.metadata))
    if _begin_create(e, svc.spec, stored) and not (stored and _only_node_ports_taken(e.out)):
        return e.result()
    # `ValidateServiceName = apimachineryvalidation.NameIsDNS1035Label`
    _validate_meta(e, svc.metadata, is_dns1035_label, namespaced=True)
    # `if topologyModeSet && topologyHintsSet && topologyModeVal != topologyHintsVal {
    # field.Invalid(metaPath.Child("annotations").Key(core.AnnotationTopologyMode),
    # topologyModeVal, fmt.Sprintf("must match annotations[%s] when both are specified",
    # core.DeprecatedAnnotationTopologyAwareHints)) }`
    ann = svc.metadata.annotations
    mode = ann.get(_TOPOLOGY_MODE)
    if mode is not None:
        hints = ann.get(_TOPOLOGY_HINTS)
        if hints is not None and hints != mode:
            e.invalid(f"metadata.annotations[{_TOPOLOGY_MODE}]", mode,
                      f"must match annotations[{_TOPOLOGY_HINTS}] when both are specified")
    spec = svc.spec
    headless = _is_headless(spec)
    # `if len(service.Spec.Ports) == 0 && !isHeadlessService(service) && service.Spec.Type !=
    # core.ServiceTypeExternalName { field.Required(specPath.Child("ports"), "") }`
    if not spec.ports and not headless and spec.type != "ExternalName":
        e.required("spec.ports")
    if spec.type in ("LoadBalancer", "NodePort"):
        if headless:
            # `field.Invalid(specPath.Child("clusterIPs").Index(0), service.Spec.ClusterIPs[0],
            # "may not be set to 'None' for LoadBalancer services")` (NodePort likewise)
            e.invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {spec.type} services")
    elif spec.type == "ExternalName":
        # `if len(service.Spec.ClusterIPs) > 0 { field.Forbidden(specPath.Child("clusterIPs"),
        # "may not be set for ExternalName services") }`, ipFamilies and ipFamilyPolicy alike.
        if spec.cluster_ips:
            e.forbidden("spec.clusterIPs", "may not be set for ExternalName services")
        if spec.ip_families:
            e.forbidden("spec.ipFamilies", "may not be set for ExternalName services")
        if spec.ip_family_policy is not None:
            e.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services")
        # "The value (a CNAME) may have a trailing dot to denote it as fully qualified":
        # `cname := strings.TrimSuffix(service.Spec.ExternalName, "."); if len(cname) > 0 {
        # ValidateDNS1123Subdomain(cname, ...) } else { field.Required(...) }`
        cname = spec.external_name or ""
        cname = cname[:-1] if cname.endswith(".") else cname
        if cname:
            e.invalid_each("spec.externalName", cname, is_dns1123_subdomain(cname))
        else:
            e.required("spec.externalName")
    require_name = len(spec.ports) > 1
    names: set[str] = set()
    for i, port in enumerate(spec.ports):
        base = f"spec.ports[{i}]"
        # validateServicePort: `if requireName && len(sp.Name) == 0 { field.Required(name) }
        # else if len(sp.Name) != 0 { ValidateDNS1123Label; if allNames.Has(sp.Name)
        # { field.Duplicate(name, sp.Name) } }`
        if require_name and not port.name:
            e.required(base + ".name")
        elif port.name:
            e.invalid_each(base + ".name", port.name, is_dns1123_label(port.name))
            if port.name in names:
                e.duplicate(base + ".name", port.name)
            names.add(port.name)
        e.invalid_each(base + ".port", port.port, is_valid_port_num(port.port))
        _validate_protocol(e, base + ".protocol", port.protocol)
        # ValidatePortNumOrName(sp.TargetPort, ...): int -> IsValidPortNum, string ->
        # IsValidPortName. Unset (0 or "") is `port` by then: SetDefaults_Service runs before
        # validation (`if sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort ==
        # intstr.FromString("") { sp.TargetPort = intstr.FromInt32(sp.Port) }`), so a port out
        # of range is told twice: "[spec.ports[0].port: Invalid value: 0: must be between 1
        # and 65535, inclusive, spec.ports[0].targetPort: Invalid value: 0: ...]". A port
        # past int32 is never defaulted: the API server's decoder refuses the object before
        # (`Port int32`: "cannot unmarshal number 3000000000 into Go struct field
        # ServicePort.spec.ports.port of type int32"), so it is told once, at `port`.
        tp = port.target_port
        if tp is None and -_INT32 <= port.port < _INT32:
            tp = port.port
        if isinstance(tp, int):
            e.invalid_each(base + ".targetPort", tp, is_valid_port_num(tp))
        elif isinstance(tp, str):
            e.invalid_each(base + ".targetPort", tp, is_valid_port_name(tp))
        # `if sp.AppProtocol != nil { ValidateQualifiedName(*sp.AppProtocol, ...) }`
        if port.app_protocol is not None:
            e.invalid_each(base + ".appProtocol", port.app_protocol, is_qualified_name(port.app_protocol))
    # `if service.Spec.Selector != nil { ValidateLabels(service.Spec.Selector, specPath.Child("selector")) }`
    _validate_labels(e, "spec.selector", spec.selector)
    # (ValidateServiceClusterIPsRelatedFields comes next: _begin_create ran it already, and
    # it has nothing to say of an ExternalName Service.)
    if spec.type not in _SUPPORTED_SERVICE_TYPES:
        # `field.NotSupported(..., service.Spec.Type, ...)`: a core.ServiceType.
        e.unsupported("spec.type", spec.type, _SUPPORTED_SERVICE_TYPES, named=True)
    if spec.type == "ClusterIP":
        for i, port in enumerate(spec.ports):
            if port.node_port:
                # `field.Forbidden(portPath.Child("nodePort"), "may not be used when `type` is 'ClusterIP'")`
                e.forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'")
    # "Check for duplicate NodePorts, considering (protocol,port) pairs":
    # `field.Duplicate(portPath.Child("nodePort"), port.NodePort)`
    node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports):
        if not port.node_port:
            continue
        if (port.protocol, port.node_port) in node_ports:
            e.duplicate(f"spec.ports[{i}].nodePort", port.node_port)
        node_ports.add((port.protocol, port.node_port))
    # "Check for duplicate Ports, considering (protocol,port) pairs": `key :=
    # core.ServicePort{Protocol: port.Protocol, Port: port.Port}; field.Duplicate(portPath, key)`.
    # The value is that internal struct, which field.Error renders with json.Marshal (Go field
    # names, no json tags; an intstr 0 as a number).
    seen: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports):
        key = (port.protocol, port.port)
        if key in seen:
            struct = {"Name": "", "Protocol": port.protocol, "AppProtocol": None, "Port": port.port,
                      "TargetPort": 0, "NodePort": 0}
            e.duplicate(f"spec.ports[{i}]", struct, json_value=True)
        seen.add(key)
    _validate_source_ranges(e, svc)
    return e.result()


def _is_headless(spec: ServiceSpec) -> bool:
    # isHeadlessService: `len(service.Spec.ClusterIPs) == 1 && service.Spec.ClusterIPs[0] ==
    # core.ClusterIPNone`.
    return spec.cluster_ips == ("None",)


def _is_ipv6(value: str) -> bool:
    # netutils.IsIPv6String: `netIP != nil && netIP.To4() == nil` (an IPv4-mapped address is
    # IPv4).
    ip = _parse_ip_sloppy(value)
    return ip is not None and not _is_to4(ip)


def _begin_create(e: _Errs, spec: ServiceSpec, stored: bool = False) -> bool:
    """The refusals of the service storage's beginCreate, which the generic Store.Create calls
    before rest.BeforeCreate (PrepareForCreate, then Validate): each is the whole answer,
    ValidateService never runs. True when ``e`` holds one.

    beginCreate: normalizeClusterIPs (the model's: ServiceSpec.cluster_ips), then
    allocateCreate: initIPFamilyFields (`if service.Spec.Type == api.ServiceTypeExternalName {
    return nil }`: ValidateServiceClusterIPsRelatedFields as a pre-check, then the family
    policy), txnAllocClusterIPs (the cluster's service CIDRs: not known here), and
    txnAllocNodePorts for NodePort and LoadBalancer Services (``stored``: as
    :func:`_allocate_node_ports` reads a stored Service)."""
    if spec.type == "ExternalName":
        return False
    _validate_cluster_ips(e, spec)
    if not e.out:
        _validate_family_policy(e, spec)
    if not e.out and spec.type in _NODE_PORT_TYPES:
        _allocate_node_ports(e, spec, stored)
    return bool(e.out)


def _validate_cluster_ips(e: _Errs, spec: ServiceSpec) -> None:
    """ValidateServiceClusterIPsRelatedFields, in its order (not for ExternalName Services)."""
    ips = list(spec.cluster_ips)
    # `if len(service.Spec.ClusterIP) != 0 { if len(service.Spec.ClusterIPs) == 0 {
    # field.Required(clusterIPsField, "") } else if service.Spec.ClusterIPs[0] !=
    # service.Spec.ClusterIP { ... } } else if len(service.Spec.ClusterIPs) != 0 { ... }`; the
    # Required case cannot happen: normalizeClusterIPs filled clusterIPs.
    if spec.cluster_ip:
        if ips[0] != spec.cluster_ip:
            e.invalid("spec.clusterIPs", ips, "first value must match `clusterIP`", json_value=True)
    elif ips:
        e.invalid("spec.clusterIPs", ips, "must be empty when `clusterIP` is not specified", json_value=True)
    seen: set[str] = set()
    for i, family in enumerate(spec.ip_families):
        # IPFamily and IPFamilyPolicy are named string types: json.Marshal'd.
        if family not in _IP_FAMILIES:
            e.unsupported(f"spec.ipFamilies[{i}]", family, _IP_FAMILIES, named=True)
        if family in seen:
            e.duplicate(f"spec.ipFamilies[{i}]", family, json_value=True)
        seen.add(family)
    policy = spec.ip_family_policy
    if policy is not None and policy not in _IP_FAMILY_POLICIES:
        e.unsupported("spec.ipFamilyPolicy", policy, _IP_FAMILY_POLICIES, named=True)
    # "clusterIPs stand alone validation": a "None" is valid at the first place only, and only
    # alone; every other value must be an IP.
    invalid_ips = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                invalid_ips = True
                e.invalid("spec.clusterIPs", ips, "'None' must be the first and only value", json_value=True)
            continue
        if not _is_ip(ip):
            invalid_ips = True
            e.invalid(f"spec.clusterIPs[{i}]", ip, _IP_MSG)
    if len(ips) > 2:
        e.invalid("spec.clusterIPs", ips, "may only hold up to 2 values", json_value=True)
    # "if there is an invalid ip or misplaced none/empty string ... we stop here".
    if invalid_ips:
        return
    # `netutils.IsDualStackIPStrings(service.Spec.ClusterIPs)`: both families among them.
    if len(ips) > 1 and len({_is_ipv6(ip) for ip in ips}) < 2:
        e.invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family", json_value=True)
    if _is_headless(spec):
        return
    # "match clusterIPs to their families, if they were provided"
    for i, (ip, family) in enumerate(zip(ips, spec.ip_families)):
        if family == "IPv4" and _is_ipv6(ip):
            e.invalid(f"spec.clusterIPs[{i}]", ip, f"expected an IPv4 value as indicated by `ipFamilies[{i}]`")
        if family == "IPv6" and not _is_ipv6(ip):
            e.invalid(f"spec.clusterIPs[{i}]", ip, f"expected an IPv6 value as indicated by `ipFamilies[{i}]`")


def _validate_family_policy(e: _Errs, spec: ServiceSpec) -> None:
    """initIPFamilyFields after its pre-check, the rules that do not depend on the cluster (the
    families it serves are not known here: "not configured on this cluster" and "this cluster
    is not configured for dual-stack services" are never told)."""
    policy = spec.ip_family_policy
    if policy is None:
        # `else if service.Spec.ClusterIP == api.ClusterIPNone && len(service.Spec.Selector) ==
        # 0 { requireDualStack } else { singleStack }` (SetDefaults_Service sets none).
        policy = "RequireDualStack" if spec.cluster_ip == "None" and not spec.selector else "SingleStack"
    if policy != "SingleStack":
        return
    # `field.Invalid(field.NewPath("spec", "ipFamilyPolicy"), service.Spec.IPFamilyPolicy, ...)`:
    # the pointer's IPFamilyPolicy, json.Marshal'd.
    for values, what in ((spec.cluster_ips, "cluster IPs"), (spec.ip_families, "IP families")):
        if len(values) == 2:
            e.invalid("spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or 'PreferDualStack' "
                      f"when multiple {what} are specified", json_value=True)


#: portallocator ErrAllocated.
_NODE_PORT_TAKEN = "provided port is already allocated"


def _only_node_ports_taken(errors: list[FieldError]) -> bool:
    """Whether ``errors`` are the allocator's ErrAllocated only: within one Service (the pool
    is empty here), a node port two of its port numbers ask for."""
    return all(err.detail == _NODE_PORT_TAKEN for err in errors)


def _allocate_node_ports(e: _Errs, spec: ServiceSpec, stored: bool = False) -> None:
    """txnAllocNodePorts -> initNodePorts for a NodePort or LoadBalancer Service, on an empty
    pool: it stops at the first port it cannot allocate (`return errors.NewInvalid(...)`).

    Ports are allocated per Service port number (`svcPortToNodePort[int(servicePort.Port)]`),
    the first nodePort requested for that number (findRequestedNodePort) first, from one pool
    for every protocol: 53/TCP and 53/UDP share a node port, 80/TCP and 81/UDP may not. The
    cluster's range (--service-node-port-range, 30000-32767 by default) is not known here:
    1-65535 stands for it, told in IsValidPortNum's words where the allocator's are
    ErrNotInRange's ("provided port is not in the valid range. The range of valid ports is
    30000-32767"). A port without a nodePort gets a free one (AllocateNext) that collides with
    no request: ``allocateLoadBalancerNodePorts: false`` is not read, as it only skips those.

    ``stored`` (``validate_service``'s): a node port the Service asks for twice is told and
    passed over, the later ports still allocated, as an update does (updateNodePorts skips a
    node port the Service holds, `!portAllocated[...]`, and allocates the others: an
    ErrNotInRange after a shared port is never stored)."""
    taken: set[int] = set()
    by_port: dict[int, int] = {}
    for i, port in enumerate(spec.ports):
        node_port = port.node_port or 0
        granted = by_port.get(port.port, 0)
        if granted == 0:
            requested = next((p.node_port for p in spec.ports if p.port == port.port and p.node_port), 0)
            if not requested:
                continue
            want = requested
        elif node_port and node_port != granted:
            want = node_port
        else:
            continue
        problems = is_valid_port_num(want) or ([_NODE_PORT_TAKEN] if want in taken else [])
        if problems:
            e.invalid_each(f"spec.ports[{i}].nodePort", want, problems[:1])
            if not (stored and problems == [_NODE_PORT_TAKEN]):
                return
        taken.add(want)
        by_port.setdefault(port.port, want)


#: core.AnnotationTopologyMode and core.DeprecatedAnnotationTopologyAwareHints.
_TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
_TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"
#: core.AnnotationLoadBalancerSourceRangesKey.
_LB_SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"
_LB_ONLY = "may only be used when `type` is 'LoadBalancer'"
#: IsValidCIDR's detail.
_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_cidr_mask = re.compile("[0-9]+").fullmatch


def _is_cidr(value: str) -> bool:
    """netutils.ParseCIDRSloppy (Go 1.16's net.ParseCIDR) accepts ``value``: an address as
    ``_parse_ip_sloppy`` reads it, "/", and a decimal prefix length (leading zeros allowed:
    dtoi) of at most 32 for an IPv4 address, 128 for an IPv6 one ("::ffff:1.2.3.4/96" too)."""
    addr, sep, mask = value.partition("/")
    if not sep or not _cidr_mask(mask) or _parse_ip_sloppy(addr) is None:
        return False
    bits = mask.lstrip("0") or "0"
    return len(bits) <= 3 and int(bits) <= (128 if ":" in addr else 32)


def _validate_source_ranges(e: _Errs, svc: Service) -> None:
    """ValidateService's "Validate SourceRanges field or annotation": the field when it holds
    any entry, else the annotation when it is set (even to ""). Each needs `type:
    LoadBalancer`; each CIDR, space-trimmed (the annotation's also split at ","), must parse."""
    spec = svc.spec
    if spec.load_balancer_source_ranges:
        # `fieldPath := specPath.Child("LoadBalancerSourceRanges")` (capitalized, as written).
        fld = "spec.LoadBalancerSourceRanges"
        if spec.type != "LoadBalancer":
            e.forbidden(fld, _LB_ONLY)
        for i, value in enumerate(spec.load_balancer_source_ranges):
            # "due to a historical accident around transition from the annotation value,
            # these values are allowed to be space-padded"
            value = value.strip(GO_SPACE)
            if not _is_cidr(value):
                e.invalid(f"{fld}[{i}]", value, _CIDR_MSG)
        return
    val = svc.metadata.annotations.get(_LB_SOURCE_RANGES)
    if val is None:
        return
    fld = f"metadata.annotations[{_LB_SOURCE_RANGES}]"
    if spec.type != "LoadBalancer":
        e.forbidden(fld, _LB_ONLY)
    # `val = strings.TrimSpace(val); if val != "" { cidrs := strings.Split(val, ","); for _,
    # value := range cidrs { value = strings.TrimSpace(value); IsValidCIDR(fieldPath, value) } }`
    val = val.strip(GO_SPACE)
    if val:
        for value in val.split(","):
            value = value.strip(GO_SPACE)
            if not _is_cidr(value):
                e.invalid(fld, value, _CIDR_MSG)


def _validate_protocol(e: _Errs, fld: str, protocol: str) -> None:
    if not protocol:
        e.required(fld)
    elif protocol not in _SUPPORTED_PROTOCOLS:
        # `field.NotSupported(..., sp.Protocol, ...)`: a core.Protocol.
        e.unsupported(fld, protocol, _SUPPORTED_PROTOCOLS, named=True)


# --- discovery.k8s.io/v1 EndpointSlice ----------------------------------------------------------

_SUPPORTED_ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
#: maxAddresses, maxEndpoints, maxPorts in pkg/apis/discovery/validation.
_MAX_ADDRESSES = 100
_MAX_ENDPOINTS = 1000
_MAX_PORTS = 20000


def _too_many(e: _Errs, fld: str, actual: int, limit: int) -> None:
    # field.TooMany: `fmt.Sprintf("must have at most %d items", maxQuantity)`, value = the count.
    e.out.append(FieldError(e.obj, fld, TOO_MANY, f"must have at most {limit} items", actual, True))


def validate_endpoint_slice(es: EndpointSlice, obj: str | None = None) -> list[FieldError]:
    """The EndpointSlice rules (discovery ValidateEndpointSliceCreate)."""
    e = _Errs(obj or object_label("EndpointSlice", es.metadata))
    _validate_meta(e, es.metadata, is_dns1123_subdomain, namespaced=True)
    at = es.address_type
    if not at:
        e.required("addressType")
    elif at not in _SUPPORTED_ADDRESS_TYPES:
        # `field.NotSupported(..., addressType, ...)`: a discovery.AddressType.
        e.unsupported("addressType", at, _SUPPORTED_ADDRESS_TYPES, named=True)
    # `if len(endpoints) > maxEndpoints { field.TooMany(fldPath, len(endpoints), maxEndpoints);
    # return allErrs }`
    if len(es.endpoints) > _MAX_ENDPOINTS:
        _too_many(e, "endpoints", len(es.endpoints), _MAX_ENDPOINTS)
        endpoints: Sequence[Endpoint] = ()
    else:
        endpoints = es.endpoints
    for i, ep in enumerate(endpoints):
        base = f"endpoints[{i}]"
        # `if len(endpoint.Addresses) == 0 { field.Required(addressPath, "must contain at least
        # 1 address") } else if len(endpoint.Addresses) > maxAddresses { field.TooMany(...) }`
        if not ep.addresses:
            e.required(base + ".addresses", "must contain at least 1 address")
        elif len(ep.addresses) > _MAX_ADDRESSES:
            _too_many(e, base + ".addresses", len(ep.addresses), _MAX_ADDRESSES)
        for j, addr in enumerate(ep.addresses):
            fld = f"{base}.addresses[{j}]"
            # "This validates known address types, unknown types fall through and do not get
            # validated." IPv4/IPv6: IsValidIPv4Address / IsValidIPv6Address, then
            # ValidateEndpointIP (_endpoint_ip: the parse and unspecified checks; the loopback
            # and link-local ones are not kept, module docstring).
            if at == "IPv4":
                # IsValidIPv4Address: `if ip == nil || ip.To4() == nil { "must be a valid IPv4
                # address" }`; one parse serves it and ValidateEndpointIP.
                ip = _parse_ip_sloppy(addr)
                if not _is_to4(ip):
                    e.invalid(fld, addr, "must be a valid IPv4 address")
                _endpoint_ip(e, fld, addr, ip)
            elif at == "IPv6":
                # IsValidIPv6Address: `if ip == nil || ip.To4() != nil { "must be a valid IPv6
                # address" }`
                ip = _parse_ip_sloppy(addr)
                if ip is None or _is_to4(ip):
                    e.invalid(fld, addr, "must be a valid IPv6 address")
                _endpoint_ip(e, fld, addr, ip)
            elif at == "FQDN":
                _fqdn(e, fld, addr)
        # `if endpoint.NodeName != nil { ValidateNodeName(*endpoint.NodeName) }`
        if ep.node_name is not None:
            e.invalid_each(base + ".nodeName", ep.node_name, is_dns1123_subdomain(ep.node_name))
        # `if endpoint.Hostname != nil { ValidateDNS1123Label(*endpoint.Hostname) }` ("" too)
        if ep.hostname is not None:
            e.invalid_each(base + ".hostname", ep.hostname, is_dns1123_label(ep.hostname))
    # validatePorts: `if len(endpointPorts) > maxPorts { field.TooMany(...); return }`
    if len(es.ports) > _MAX_PORTS:
        _too_many(e, "ports", len(es.ports), _MAX_PORTS)
    else:
        _validate_endpoint_ports(e, es.ports, "ports", require_name=False, slice_rules=True)
    return e.result()


def _fqdn(e: _Errs, fld: str, name: str) -> None:
    # IsFullyQualifiedDomainName: `if len(name) == 0 { Required }; TrimSuffix "."; if errs :=
    # IsDNS1123Subdomain(name) { Invalid(fldPath, name, strings.Join(errs, ",")) }; if
    # len(strings.Split(name, ".")) < 2 { "should be a domain with at least two segments
    # separated by dots" }; for _, label := range strings.Split(name, ".") { if errs :=
    # IsDNS1123Label(label) { Invalid(fldPath, label, strings.Join(errs, ",")) } }`, each
    # returning at its first failure.
    if not name:
        e.required(fld)
        return
    name = name[:-1] if name.endswith(".") else name
    errs = is_dns1123_subdomain(name)
    if errs:
        e.invalid(fld, name, ",".join(errs))
        return
    labels = name.split(".")
    if len(labels) < 2:
        e.invalid(fld, name, "should be a domain with at least two segments separated by dots")
        return
    for label in labels:
        errs = is_dns1123_label(label)
        if errs:
            e.invalid(fld, label, ",".join(errs))
            return


def _endpoint_ip(
    e: _Errs, fld: str, addr: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
) -> None:
    # ValidateEndpointIP (EndpointSlice) / ValidateNonSpecialIP (v1 Endpoints), both: `if ip ==
    # nil { "must be a valid IP address"; return }; if ip.IsUnspecified() { field.Invalid(fldPath,
    # ipAddress, fmt.Sprintf("may not be unspecified (%v)", ipAddress)) }`, then the loopback and
    # link-local checks, which are not kept (module docstring). The unspecified one is: a
    # connection to 0.0.0.0 or :: reaches this host, so such an endpoint would send the
    # Ingress's traffic to whatever listens on the proxy's own machine.
    if ip is None:
        e.invalid(fld, addr, "must be a valid IP address")
        return
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None
                             and ip.ipv4_mapped.is_unspecified):
        # net.IP.IsUnspecified: `ip.Equal(IPv4zero) || ip.Equal(IPv6unspecified)`; Equal
        # compares "::ffff:0.0.0.0" as IPv4zero.
        e.invalid(fld, addr, f"may not be unspecified ({addr})")


def _validate_endpoint_ports(
    e: _Errs, ports: Sequence[EndpointPort], base: str, *, require_name: bool, slice_rules: bool
) -> None:
    names: set[str] = set()
    for i, port in enumerate(ports):
        pbase = f"{base}[{i}]"
        name = port.name or ""
        if require_name and not name:
            e.required(pbase + ".name")
        elif name:
            e.invalid_each(pbase + ".name", name, is_dns1123_label(name))
        if slice_rules:
            # EndpointSlice validatePorts: `if portNames.Has(*endpointPort.Name) {
            # field.Duplicate(idxPath.Child("name"), endpointPort.Name) }` (unnamed ports too).
            # v1 Endpoints' validateEndpointPort has no such check.
            if name in names:
                # `field.Duplicate(..., endpointPort.Name)`: a *string, which ErrorBody
                # dereferences (`valueType.Kind() == reflect.Pointer` ... `value =
                # reflectValue.Elem().Interface()`) before its `case string:` prints it with %q.
                e.duplicate(pbase + ".name", name)
            names.add(name)
        # EndpointSlice ports are range-checked although validatePorts is not (module docstring).
        if port.port is not None:
            e.invalid_each(pbase + ".port", port.port, is_valid_port_num(port.port))
        elif not slice_rules:
            # v1 Endpoints: `Port int32` is required there ("the port number of the endpoint").
            e.invalid(pbase + ".port", 0, _inclusive_range_error(1, 65535))
        if slice_rules and port.protocol == "":
            # EndpointSlice validatePorts: `if endpointPort.Protocol == nil { Required } else if
            # !supportedPortProtocols.Has(*endpointPort.Protocol) { NotSupported }`: an explicit
            # "" (not defaulted: the field is a pointer) is an unsupported value.
            e.unsupported(pbase + ".protocol", "", _SUPPORTED_PROTOCOLS, named=True)
        else:
            _validate_protocol(e, pbase + ".protocol", port.protocol)
        # Both kinds: `if port.AppProtocol != nil { ValidateQualifiedName(*port.AppProtocol) }`
        if port.app_protocol is not None:
            e.invalid_each(pbase + ".appProtocol", port.app_protocol, is_qualified_name(port.app_protocol))


# --- v1 Endpoints -------------------------------------------------------------------------------


_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def validate_endpoints(ep: Endpoints, obj: str | None = None) -> list[FieldError]:
    """The v1 Endpoints rules (core ValidateEndpointsCreate)."""
    e = _Errs(obj or object_label("Endpoints", ep.metadata))
    _validate_meta(e, ep.metadata, is_dns1123_subdomain, namespaced=True)
    for i, ss in enumerate(ep.subsets):
        base = f"subsets[{i}]"
        # validateEndpointSubsets: `if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0
        # { field.Required(idxPath, "must specify `addresses` or `notReadyAddresses`") }`
        if not ss.addresses and not ss.not_ready_addresses:
            e.required(base, "must specify `addresses` or `notReadyAddresses`")
        for key, addrs in (("addresses", ss.addresses), ("notReadyAddresses", ss.not_ready_addresses)):
            for j, addr in enumerate(addrs):
                abase = f"{base}.{key}[{j}]"
                # validateEndpointAddress: IsValidIP; `if len(address.Hostname) > 0 {
                # ValidateDNS1123Label }`; `if address.NodeName != nil { ValidateNodeName }`;
                # then ValidateNonSpecialIP (_endpoint_ip).
                ip = _parse_ip_sloppy(addr.ip)
                if ip is None:
                    e.invalid(abase + ".ip", addr.ip, _IP_MSG)
                if addr.hostname:
                    e.invalid_each(abase + ".hostname", addr.hostname, is_dns1123_label(addr.hostname))
                if addr.node_name is not None:
                    e.invalid_each(abase + ".nodeName", addr.node_name, is_dns1123_subdomain(addr.node_name))
                _endpoint_ip(e, abase + ".ip", addr.ip, ip)
        # `requireName := len(ss.Ports) > 1`
        _validate_endpoint_ports(
            e, ss.ports, base + ".ports", require_name=len(ss.ports) > 1, slice_rules=False
        )
    return e.result()


# --- v1 Secret ----------------------------------------------------------------------------------

#: core.MaxSecretSize = 1 * 1024 * 1024
_MAX_SECRET_SIZE = 1024 * 1024
_BASE64_MSG = "must be valid base64 (illegal base64 data)"
_base64_text = re.compile("[A-Za-z0-9+/]*={0,2}").fullmatch


def _base64_len(value: str) -> int | None:
    """The decoded length of ``value`` if the API server decodes it, else None.

    encoding/json decodes a []byte field with ``base64.StdEncoding.Decode``: "New line
    characters (\\r and \\n) are ignored", padding is required and ends the text (a "="
    after a full quantum, "Zm9v==", is CorruptInputError, though Python's b64decode takes it).
    Checked on the text, without decoding a megabyte of certificates.
    """
    if "\n" in value or "\r" in value:
        value = value.replace("\n", "").replace("\r", "")
    if len(value) % 4 or not _base64_text(value):
        return None
    return len(value) // 4 * 3 - (len(value) - len(value.rstrip("=")))


def validate_config_map(cm: ConfigMap, obj: str | None = None) -> list[FieldError]:
    """The ConfigMap rules (core ValidateConfigMap): the name a DNS subdomain, each key of
    ``data`` and ``binaryData`` a ConfigMap key, in one of them only ("duplicate of key present
    in binaryData", told at ``data``), ``binaryData`` base64 and the whole at most 1 MiB
    (core.MaxSecretSize)."""
    e = _Errs(obj or object_label("ConfigMap", cm.metadata))
    _validate_meta(e, cm.metadata, is_dns1123_subdomain, namespaced=True)
    total = 0
    for key, value in cm.data.items():
        e.invalid_each(f"data[{key}]", key, _is_config_key(key))
        # The data loop: `if _, isValue := cfg.BinaryData[key]; isValue { msg := "duplicate
        # of key present in binaryData"; field.Invalid(field.NewPath("data").Key(key), key,
        # msg) }`.
        if key in cm.binary_data:
            e.invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
        total += len(go_utf8(value))
    for key, value in cm.binary_data.items():
        e.invalid_each(f"binaryData[{key}]", key, _is_config_key(key))
        n = _base64_len(value)
        if n is None:
            e.out.append(FieldError(e.obj, f"binaryData[{key}]", INVALID, _BASE64_MSG))
        else:
            total += n
    if total > _MAX_SECRET_SIZE:
        e.too_long("", _MAX_SECRET_SIZE)
    return e.result()


_TLS_CERT_KEY = "tls.crt"
_TLS_KEY_KEY = "tls.key"


def validate_secret(sec: Secret, obj: str | None = None) -> list[FieldError]:
    """The Secret rules (core ValidateSecret); ``stringData`` counts as merged into ``data``,
    as the API server merges it before validating."""
    e = _Errs(obj or object_label("Secret", sec.metadata))
    # `ValidateSecretName = apimachineryvalidation.NameIsDNSSubdomain`
    _validate_meta(e, sec.metadata, is_dns1123_subdomain, namespaced=True)
    for key in sec.data:
        e.invalid_each(f"data[{key}]", key, _is_config_key(key))
    for key in sec.string_data:
        if key not in sec.data:
            e.invalid_each(f"data[{key}]", key, _is_config_key(key))
    total = 0
    for key, value in sec.data.items():
        # The request body is decoded before stringData is merged into data, so a `data`
        # value that is not base64 fails the request even when stringData replaces it
        # (encoding/json: `n, err := base64.StdEncoding.Decode(b, s); if err != nil {
        # d.saveError(err) }`); only its size no longer counts.
        n = _base64_len(value)
        if n is None:
            # The value is not echoed: it may be key material.
            e.out.append(FieldError(e.obj, f"data[{key}]", INVALID, _BASE64_MSG))
        elif key not in sec.string_data:
            total += n
    for value in sec.string_data.values():
        total += len(go_utf8(value))
    # `totalSize += len(value)` over the decoded data; `if totalSize > core.MaxSecretSize {
    # field.TooLong(dataPath, "", core.MaxSecretSize) }` (MaxSecretSize = 1 MiB).
    if total > _MAX_SECRET_SIZE:
        e.too_long("data", _MAX_SECRET_SIZE)
    _validate_secret_type(e, sec)
    return e.result()


def _validate_secret_type(e: _Errs, sec: Secret) -> None:
    """ValidateSecret's `switch secret.Type`: the keys each well-known type requires (other
    types, Opaque and "" need none)."""
    t = sec.type

    def has(key: str) -> bool:
        return key in sec.data or key in sec.string_data

    if t == "kubernetes.io/tls":
        # `case core.SecretTypeTLS: if _, exists := secret.Data[core.TLSCertKey]; !exists {
        # field.Required(dataPath.Key(core.TLSCertKey), "") }` (same for tls.key).
        for key in (_TLS_CERT_KEY, _TLS_KEY_KEY):
            if not has(key):
                e.required(f"data[{key}]")
    elif t == "kubernetes.io/basic-auth":
        # `_, usernameFieldExists := secret.Data[core.BasicAuthUsernameKey]` (and password):
        # "username or password might be empty, but the field must be present": `if
        # !usernameFieldExists && !passwordFieldExists { field.Required(...username) ;
        # field.Required(...password) }`
        if not has("username") and not has("password"):
            e.required("data[username]")
            e.required("data[password]")
    elif t == "kubernetes.io/ssh-auth":
        # `if len(secret.Data[core.SSHAuthPrivateKey]) == 0 { field.Required(...) }`: present
        # but empty is refused too.
        if not _secret_value_len(sec, "ssh-privatekey"):
            e.required("data[ssh-privatekey]")
    elif t == "kubernetes.io/service-account-token":
        # `if value := secret.Annotations[core.ServiceAccountNameKey]; len(value) == 0 {
        # field.Required(field.NewPath("metadata", "annotations").Key(core.ServiceAccountNameKey),
        # "") }`
        if not sec.metadata.annotations.get("kubernetes.io/service-account.name"):
            e.required("metadata.annotations[kubernetes.io/service-account.name]")
    elif t in _DOCKER_KEYS:
        # `dockercfgBytes, exists := secret.Data[core.DockerConfigKey]; if !exists {
        # field.Required(...); break }; if err := json.Unmarshal(dockercfgBytes,
        # &map[string]interface{}{}); err != nil { field.Invalid(dataPath.Key(...), "<secret
        # contents redacted>", err.Error()) }` (".dockerconfigjson" likewise).
        key = _DOCKER_KEYS[t]
        if not has(key):
            e.required(f"data[{key}]")
        elif key in sec.string_data or _base64_len(sec.data[key]) is not None:
            raw = sec.get_bytes(key)
            problem = _json_object_error(raw or b"")
            if problem:
                e.invalid(f"data[{key}]", "<secret contents redacted>", problem)


#: Secret type -> the data key it requires (core.DockerConfigKey, core.DockerConfigJSONKey).
_DOCKER_KEYS = {
    "kubernetes.io/dockercfg": ".dockercfg",
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
}


def _secret_value_len(sec: Secret, key: str) -> int:
    """The decoded length of ``key`` (0 when absent; undecodable data is reported apart)."""
    if key in sec.string_data:
        return len(go_utf8(sec.string_data[key]))
    raw = sec.data.get(key)
    return 0 if raw is None else (_base64_len(raw) or 0)


def _json_object_error(raw: bytes) -> str:
    """The error of Go's ``json.Unmarshal(raw, &map[string]interface{}{})`` ("" if none).

    The two common ones are Go's own words; for other syntax errors the detail is Python's
    (Go names the offending character differently)."""
    text = raw.decode("utf-8", "replace")
    if not text.strip():
        return "unexpected end of JSON input"

    def no_constant(name: str) -> Any:
        # Python takes NaN and Infinity; Go's decoder does not.
        raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")

    too_big: list[str] = []

    def number(literal: str) -> float:
        # Go decodes a number into an interface{} as a float64: one out of its range is
        # refused (decodeState.convertNumber); Python would make it inf or a big int.
        f = float(literal)
        if math.isinf(f) and not too_big:
            too_big.append(literal)
        return f

    try:
        value = json.loads(text, parse_constant=no_constant, parse_float=number,
                           parse_int=number)
    except RecursionError:
        # Python's decoder recurses once per level and gives up near 1,000; Go's nests up to
        # 10,000 (encoding/json maxNestingDepth): read such a value without recursing.
        return _deep_json_error(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            return "unexpected end of JSON input"
        return f"invalid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
    except ValueError as exc:
        return str(exc)
    if isinstance(value, dict) and too_big:
        return f"json: cannot unmarshal number {too_big[0]} into Go value of type float64"
    if value is None or isinstance(value, dict):
        return ""  # `null` leaves the map alone
    kind = {bool: "bool", str: "string", list: "array"}.get(type(value), "number")
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"


#: encoding/json's maxNestingDepth: "exceeded max depth" past it.
_JSON_MAX_DEPTH = 10000
#: One JSON token after optional whitespace: a string, another scalar, or a punctuation mark.
_JSON_TOKEN = re.compile(
    r'[ \t\n\r]*(?:("(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")'
    r"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null)|([\[\]{},:]))")


def _deep_json_error(text: str) -> str:
    """``_json_object_error`` for a value nested too deep for Python's decoder: one pass with
    an explicit stack of the open brackets. Go's words for the depth limit; a syntax error
    gets a generic detail."""
    stack: list[str] = []
    want = "value"  # value, value_or_end, key, key_or_end, colon, next (a comma or the end)
    pos = 0
    too_big = ""
    while m := _JSON_TOKEN.match(text, pos):
        pos = m.end()
        string, scalar, punct = m.groups()
        if punct in ("[", "{") and want in ("value", "value_or_end"):
            stack.append(punct)
            if len(stack) > _JSON_MAX_DEPTH:
                return f"invalid character '{punct}' exceeded max depth"
            want = "key_or_end" if punct == "{" else "value_or_end"
        elif (string or scalar) and want in ("value", "value_or_end"):
            if scalar and scalar[0] not in "tfn" and math.isinf(float(scalar)) and not too_big:
                too_big = scalar  # as in _json_object_error
            want = "next"
        elif string and want in ("key", "key_or_end"):
            want = "colon"
        elif punct == ":" and want == "colon":
            want = "value"
        elif punct == "," and want == "next" and stack:
            want = "key" if stack[-1] == "{" else "value"
        elif (stack and punct == ("}" if stack[-1] == "{" else "]")
              and want in ("next", "key_or_end" if punct == "}" else "value_or_end")):
            stack.pop()
            want = "next"
        else:
            break
        if want == "next" and not stack:
            break
    if want != "next" or stack or text[pos:].strip(" \t\n\r"):
        return "invalid JSON: not a valid JSON value"
    first = text.lstrip(" \t\n\r")[:1]
    if first == "{" and too_big:
        return f"json: cannot unmarshal number {too_big} into Go value of type float64"
    if first == "{" or first == "n":
        return ""
    kind = {"[": "array", '"': "string", "t": "bool", "f": "bool"}.get(first, "number")
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
