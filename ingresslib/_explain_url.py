"""The URL ``explain`` is given, as a browser or curl sends it: the host in ASCII (UTS 46
nontransitional, as browsers and curl encode it), the path and query percent-encoded, a URL's
credentials as Basic, and the URL as printed (its password as ``***``)."""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
import unicodedata
from urllib.parse import unquote_to_bytes, urlsplit

__all__ = ["UsageError", "split_url", "shown_url", "url_credentials", "ascii_host", "client_text",
           "remove_dot_segments"]


class UsageError(ValueError):
    """A command-line value ``explain`` cannot use (a URL, a ``-H`` header, a method)."""


#: What a browser percent-encodes in a path or query (WHATWG URL, "path percent-encode set":
#: C0 controls, space, ``"``, ``#``, ``<``, ``>``, ``?``, backquote, ``{``, ``}``, and every
#: code point above ASCII, as UTF-8). ``#`` and ``?`` are split off before this is applied.
_ENCODE_RE = re.compile(r'[\x00-\x20"<>`{}\x7f-\U0010ffff]')


#: A UTF-16 surrogate pair, or a lone surrogate that is no ``surrogateescape`` stand-in for a
#: byte (U+DC80-U+DCFF): a ``\ud800`` no command line gives (Python reads argv with
#: surrogateescape), only a str built in Python.
_SURROGATE_RE = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udc7f\udd00-\udfff]")


def client_text(text: str) -> str:
    """``text`` (a URL or a header value given to ``explain``) as a client reads it: a
    ``surrogateescape`` stand-in kept (the byte of a command-line value that is not UTF-8, sent
    as given, as curl sends it), a surrogate pair as the character it encodes and another lone
    surrogate as U+FFFD, as a browser reads it (the URL parser's input is a USVString: WebIDL
    converts a lone surrogate to U+FFFD, ``new URL("http://h/\\ud800")`` is
    ``http://h/%EF%BF%BD``; as the library reads a manifest's, ``_models.go_text``). Encoded
    with ``surrogateescape``, it raises no UnicodeEncodeError."""
    if _SURROGATE_RE.search(text) is None:
        return text
    return _SURROGATE_RE.sub(
        lambda m: m.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace"),
        text)


def _client_bytes(text: str) -> bytes:
    """``text`` as the bytes a client sends (:func:`client_text`, as UTF-8)."""
    return client_text(text).encode("utf-8", "surrogateescape")


def _percent_encode(text: str) -> str:
    # surrogateescape: a command-line URL that is not UTF-8 (Python reads argv so) has its
    # bytes encoded, as curl and browsers send them; another lone surrogate is U+FFFD
    # (``client_text``): not a UnicodeEncodeError.
    return _ENCODE_RE.sub(
        lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogateescape")),
        client_text(text))


#: UTS 46 deviation characters (and U+1E9E, which UTS 46 maps to U+00DF). Python's ``idna``
#: codec is IDNA 2003 (nameprep), which maps them away: ``faß.de`` -> ``fass.de``, ``ς`` ->
#: ``σ``, the joiners deleted. Browsers and curl keep them (UTS 46 nontransitional
#: processing: the URL Standard's "domain to ASCII" sets Transitional_Processing false, as
#: Chrome, Firefox and Safari do; curl calls libidn2 with ``IDN2_NONTRANSITIONAL``):
#: ``faß.de`` is ``xn--fa-hia.de``, another domain than ``fass.de``.
_DEVIATION_RE = re.compile("([\u00df\u03c2\u200c\u200d])")
_JOINERS = "\u200c\u200d"


def ascii_host(host: str) -> str:
    """``host[:port]`` as a client sends it: a non-ASCII name in its IDNA (``xn--``) form, as
    browsers and curl write it (``_idna``)."""
    if host.isascii():
        return host
    name, port = host, ""
    head, sep, tail = host.rpartition(":")
    if sep and tail.isdigit():
        name, port = head, ":" + tail
    try:
        return _idna(name) + port
    except UnicodeError as exc:
        raise UsageError(f"host {name!r} is not a valid internationalised domain name ({exc})") from None


def _idna(name: str) -> str:
    """IDNA 2003 (Python's codec) where it agrees with UTS 46 nontransitional processing,
    which browsers and curl use; the labels holding a deviation character (``_DEVIATION_RE``)
    keep it, as UTS 46 does, instead of IDNA 2003's mapping. A joiner (U+200C, U+200D) is kept
    after a virama (RFC 5892 CONTEXTJ, which browsers check) and refused elsewhere: IDNA 2003
    would delete it and route another host (the ZWNJ rule of joining scripts, which needs
    data Python's ``unicodedata`` lacks, is not modelled: give such a name in its ``xn--``
    form)."""
    name = name.replace("\u1e9e", "\u00df")
    if _DEVIATION_RE.search(name) is None:
        return name.encode("idna").decode("ascii")
    from encodings import idna as idna2003

    labels = idna2003.dots.split(name)
    out = []
    for label in labels:
        if _DEVIATION_RE.search(label) is None:
            out.append(label and idna2003.ToASCII(label).decode("ascii"))
            continue
        parts = _DEVIATION_RE.split(label)
        # nameprep (case folding, NFKC, prohibited characters) around the deviation
        # characters, which nameprep would map away; each is a starter with no decomposition,
        # so no normalisation crosses them.
        mapped = "".join(p if _DEVIATION_RE.fullmatch(p) else idna2003.nameprep(p)
                         for p in parts)
        for i, ch in enumerate(mapped):
            if ch in _JOINERS and (i == 0 or unicodedata.combining(mapped[i - 1]) != 9):
                raise UnicodeError(f"U+{ord(ch):04X} must follow a virama (RFC 5892 "
                                   "CONTEXTJ); browsers refuse this name")
        encoded = "xn--" + mapped.encode("punycode").decode("ascii")
        if len(encoded) > 63:
            raise UnicodeError("label too long")
        out.append(encoded)
    return ".".join(out)


#: A URL's scheme and its ``://`` (RFC 3986 §3.1: ``scheme = ALPHA *( ALPHA / DIGIT / "+" / "-"
#: / "." )``), at the start only (after the C0 controls and spaces ``urlsplit`` strips):
#: ``host/path?next=http://b/`` holds a ``://`` in its query and is a URL without a scheme
#: (``http://`` is put in front, as curl does).
_SCHEME = re.compile(r"[\x00-\x20]*[A-Za-z][A-Za-z0-9+.\-]*://")


def _with_scheme(url: str) -> str:
    return url if _SCHEME.match(url) else "http://" + url


def shown_url(url: str) -> str:
    """``url`` as explain prints it: a password in its userinfo written ``***`` (the output
    goes to terminals, CI logs and bug reports; the user name stays, it tells whose
    credentials were sent). Reads the authority by hand: a URL ``urlsplit`` refuses is
    printed in the error that says so."""
    m = _SCHEME.match(url)
    if m is not None:
        scheme, sep, rest = url[:m.end() - 3], "://", url[m.end():]
    elif url.startswith("/"):
        return url
    else:
        scheme, sep, rest = "", "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hostport = rest[:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    masked = userinfo.partition(":")[0] + ":***@" + hostport + rest[end:]
    return f"{scheme}://{masked}" if sep else masked


def url_credentials(url: str) -> str | None:
    """The ``Authorization`` value curl sends for a URL with userinfo, else None: user and
    password percent-decoded, as Basic credentials (curl lib/url.c ``parse_url_login``: "We
    have a user in the URL ... conn->bits.user_passwd = TRUE; /* enable user+password */",
    each part through ``curl_easy_unescape``); a user without password sends an empty one."""
    if url.startswith("/"):
        return None
    try:
        netloc = urlsplit(_with_scheme(url)).netloc
    except ValueError:
        return None
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None
    user, _, password = userinfo.partition(":")
    # Its bytes as given (a command-line value that is not UTF-8: surrogateescape).
    raw = b":".join(unquote_to_bytes(_client_bytes(part)) for part in (user, password))
    return "Basic " + base64.b64encode(raw).decode("ascii")


def split_url(url: str) -> tuple[str, str]:
    """``(host, path-with-query)`` from ``http://host/path``, ``host/path`` or ``/path``.

    The path is kept as written (percent-encoding included): it is what a client sends. What a
    client cannot send raw is encoded as a browser does: a non-ASCII host to its IDNA form,
    spaces and non-ASCII characters of the path to ``%XX``. A fragment never reaches the
    server and is dropped; userinfo is no part of the host (``explain_url`` sends it as
    Basic credentials, as curl does: ``url_credentials``). A URL that cannot be parsed raises :class:`UsageError`.
    """
    if not url.strip():
        raise UsageError("empty URL: give http://host/path, host/path or /path")
    if url.startswith("/"):
        host, rest = "", url
        rest = rest.split("#", 1)[0]
        return host, _percent_encode(rest)
    given, url = url, _with_scheme(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UsageError(f"cannot parse URL {shown_url(url)!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"unsupported scheme {parts.scheme!r} in {shown_url(url)!r}: "
                         "give http://host/path, https://host/path, host/path or /path")
    path = _percent_encode(parts.path or "/")
    if parts.query:
        path += "?" + _percent_encode(parts.query)
    return _url_host(parts.netloc.rsplit("@", 1)[-1], parts.scheme.lower(), given), path


def remove_dot_segments(path: str) -> str:
    """``path`` without its ``.`` and ``..`` segments, as curl (without ``--path-as-is``) and
    browsers send a URL's path (RFC 3986 §5.2.4 ``remove_dot_segments``; curl lib/urlapi.c
    ``dedotdotify``, the WHATWG URL path state): ``http://h/a/../b`` sends ``GET /b``,
    ``http://h/../x`` sends ``GET /x`` (a ``..`` at the root stays at the root),
    ``http://h/a/..`` sends ``GET /``. Only the literal segments: curl sends ``%2e%2e`` as
    written (the proxy decodes it). explain sends the path as written (``curl --path-as-is``,
    what the proxy's own checks answer) and says what these clients send instead."""
    if "." not in path:
        return path
    segments = path.split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")  # "/a/." is "/a/"
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")  # "/a/b/.." is "/a/"
        else:
            out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


#: What cannot be in a URL's host once percent-decoded: the URL Standard's "forbidden domain
#: code points" (C0 controls, space, ``#%/:<>?@[\]^|`` and DEL) that curl refuses as well
#: (lib/urlapi.c ``hostname_check``: ``" \r\n\t/:#?!@{}[]\\$\'\"^`*<>=;,+&()%"``, and
#: ``Curl_junkscan``: the controls and DEL), so that no request carries it as its Host. Not
#: ``|``: browsers refuse it, curl sends it (``Host: a|b``), and the proxy answers that 400;
#: nor what only curl refuses (``!``, ``*``...): browsers send it.
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^\x7f]")
_DEFAULT_PORT = {"http": 80, "https": 443}


#: One part of an IPv4 address as URL parsers read it: hexadecimal (``0x7f``), octal (a
#: leading ``0``: ``0177``) or decimal (ten digits at most: a longer one is past 32 bits, and
#: ``int()`` refuses thousands of decimal digits).
_IPV4_PART = re.compile(r"0[xX][0-9A-Fa-f]+|0[0-7]*|[1-9][0-9]{0,9}")


def _ipv4(name: str) -> str | None:
    """``name`` in dotted-quad form when it is an IPv4 address in one of the forms URL
    parsers read (``127.1``, ``0x7f.1``, ``0177.0.0.1``, ``2130706433``), else None. Browsers
    and curl send the address they connect to as the Host: ``http://127.1/`` sends ``Host:
    127.0.0.1`` (WHATWG URL "IPv4 parser", serialized as four decimals; curl lib/urlapi.c
    ``ipv4_normalize``: "Handle partial IPv4 numerical addresses and different bases, like
    '16843009', '0x7f', '0x7f.1' '0177.1.1.1' etc."). The last part fills the bits left
    (``a.b`` is 8 and 24 bits). A name that is no such address to curl is left as it is, as
    curl sends it (curl 7.88: ``Host: 1.2.3.09``, ``10.0.0.256``, ``1..2``, ``127.1.``,
    ``0x``). Browsers differ there: a name whose last label is a number is an IPv4 address or
    a refused URL (WHATWG "ends in a number checker", commit ab0e820: "foo.0", "1.2.3.4.5"
    are rejected), ``127.1.`` and ``0x`` read as addresses (a trailing dot dropped; ``0x`` is
    0). Where curl and browsers disagree on the order, explain reads the address after the
    percent-decoding and IDNA mapping, as browsers do (``127%2E1``: ``127.0.0.1``; curl reads
    it before and sends ``Host: 127.1``)."""
    parts = name.split(".")
    if len(parts) > 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    # The parts checked above (the C library's inet_aton would also take trailing text after
    # a space), the value is inet_aton's: the last part fills the bits left, each part
    # bounded.
    try:
        return socket.inet_ntoa(socket.inet_aton(name))
    except OSError:
        return None


def _url_host(hostport: str, scheme: str, url: str) -> str:
    """The ``Host`` a browser or curl sends for the authority ``hostport`` of ``url`` (its
    userinfo removed), or :class:`UsageError` for a URL they refuse: no host
    (``http:///x``), a port that is no number in 1-65535 (``h:80x``, ``h:65536``), a host
    with a forbidden character. As they do: the host percent-decoded (``open%2Etest`` is
    ``open.test``) and IDNA-encoded, an IPv6 literal's zone dropped (curl ``hostname_check``:
    the zone only picks the interface; browsers refuse zones) and the address compressed, an
    empty port and the scheme's default port left out (``h:`` and ``h:80`` send ``Host: h``)
    and a port's leading zeros dropped, an IPv4 address in a short or numeric form written as
    four decimals (``127.1``: ``127.0.0.1``, :func:`_ipv4`)."""
    shown = shown_url(url)
    if hostport.startswith("["):
        end = hostport.find("]")
        literal, rest = hostport[1:end], hostport[end + 1:]
        address = literal.partition("%")[0]  # RFC 6874 zone: "%25eth0" (curl: "%eth0" too)
        try:
            name = "[" + ipaddress.IPv6Address(address).compressed + "]"
        except ValueError:
            raise UsageError(f"bad IPv6 address [{literal}] in {shown!r}") from None
        if rest and not rest.startswith(":"):
            raise UsageError(f"bad host {hostport!r} in {shown!r}")
        port = rest[1:]
    else:
        name, _, port = hostport.partition(":")
        if ":" in port:
            raise UsageError(f"bad host {hostport!r} in {shown!r}: one ':' before the port")
        try:
            name = unquote_to_bytes(name).decode("utf-8") if "%" in name else name
        except UnicodeDecodeError:
            raise UsageError(f"bad host {hostport!r} in {shown!r}: its percent-encoding is "
                             "not UTF-8") from None
        if not name:
            raise UsageError(f"no host in {shown!r}: give http://host/path, or /path for a "
                             "request without Host")
        bad = _FORBIDDEN_HOST.search(name)
        if bad is not None:
            raise UsageError(f"bad host {name!r} in {shown!r}: {bad.group()!r} cannot be in a "
                             "host name (browsers and curl refuse the URL)")
        if any("\udc80" <= ch <= "\udcff" for ch in name):
            # A command-line byte that is not UTF-8 (argv's surrogateescape stand-in): no name
            # IDNA can encode; said as the percent-decoded case above says it, with its bytes
            # (the IDNA codec's message named a "\udcff" no one typed).
            raise UsageError(f"bad host {hostport!r} in {shown!r}: it is not UTF-8 (browsers "
                             "and curl refuse the URL)")
        name = ascii_host(name)
        # IDNA's mapping can make one (U+FF0F FULLWIDTH SOLIDUS is "/"): refused as well.
        bad = _FORBIDDEN_HOST.search(name)
        if bad is not None:
            raise UsageError(f"bad host {hostport!r} in {shown!r}: it maps to {name!r}, and "
                             f"{bad.group()!r} cannot be in a host name")
        name = _ipv4(name) or name
    if port:
        if not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65535:
            raise UsageError(f"bad port {port!r} in {shown!r}: a number in 1-65535")
        if int(port) != _DEFAULT_PORT.get(scheme):
            return f"{name}:{int(port)}"
    return name
