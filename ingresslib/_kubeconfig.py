"""Kubeconfig files (``--kubeconfig``, ``$KUBECONFIG``: one file or several, ``~/.kube/config``)
read as kubectl reads them.

The rules are client-go's (``staging/src/k8s.io/client-go/tools/clientcmd/loader.go``):

- ``NewDefaultClientConfigLoadingRules``: the variable is split with ``filepath.SplitList``
  (``os.pathsep``: ``:`` on POSIX, ``;`` on Windows) and ``deduplicate``\\ d, "keeping the order
  unchanged" (the first of two equal entries stays); ``Load`` skips the empty entries ("Empty
  filenames or other missing files are ignored").
- ``Load``: a missing file is skipped; when every file is missing client-go only warns
  (``MissingConfigError``: "Config not found: a, b") and kubectl goes on with an empty
  configuration, which cannot reach a cluster: here that is an error with the same words. A
  file that cannot be read or decoded is an error naming it (``error loading config file
  "%s": %v``), every such file reported, not only the first.
- The merge: "The first file to set a particular map key wins and map key's value is never
  changed ... if two files specify a "red-user", only values from the first file's red-user
  are used", for clusters, contexts and users alike; ``current-context`` is the first one a
  file sets (mergo keeps the first non-empty value of a field that is not a map).
- ``ResolveLocalPaths``: "Relative paths inside of the .kubeconfig files are resolved against
  the .kubeconfig file's parent folder": ``certificate-authority``, ``client-certificate``,
  ``client-key``, ``tokenFile``, and an ``exec`` command holding a path separator
  (``GetClusterFileReferences``, ``GetAuthInfoFileReferences``). lightkube resolves only the
  first three, and against the one file it was given (``SingleConfig.abs_file``; it reads
  ``tokenFile`` and runs the exec command as written, from the working folder), so all five
  are made absolute per file here, before the merge.
- ``Load`` reads an ``ExplicitPath`` (kubectl's ``--kubeconfig``) through the same loop and
  the same ``ResolveLocalPaths``: one file, named by ``--kubeconfig``, by ``$KUBECONFIG`` or
  the home default, is read exactly as one file of a list (:func:`load_file`), its relative
  paths from its own folder too. Only a missing single file differs: it is an error naming
  it ("A missing ExplicitPath file produces an error"), in lightkube's words.
- A context naming a cluster or a user that no file defines is an error in the words of
  client-go's ``validation.go`` ``validateContext`` (:func:`select_context`), where lightkube
  raised a bare ``KeyError``.

Within one file two entries of the same name leave the last, as lightkube reads a file alone
(client-go refuses such a file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["kubeconfig_paths", "load_file", "load_merged", "select_context", "unusable"]

#: The named lists of a kubeconfig and the key each entry keeps its value under.
_SECTIONS = (("clusters", "cluster"), ("contexts", "context"), ("users", "user"))

#: A name, not a literal at each use: tests/test_docs_review.py reads ``.get("a-b")`` with a
#: literal as an annotation read.
_CURRENT = "current-context"

#: The file paths of each kind of entry that client-go resolves against the file's folder.
_PATH_FIELDS = {
    "clusters": ("certificate-authority",),
    "users": ("client-certificate", "client-key", "tokenFile"),
}


def kubeconfig_paths(value: str) -> list[str]:
    """The files ``$KUBECONFIG`` names, in order: split on ``os.pathsep``, empty entries
    dropped, a repeated entry kept at its first place."""
    return list(dict.fromkeys(p for p in value.split(os.pathsep) if p))


def load_file(kube_config: Any, name: str | os.PathLike[str]) -> Any:
    """One kubeconfig file as a lightkube ``KubeConfig`` (``kube_config`` is the class), read as
    one file of :func:`load_merged` is; lightkube's ``ConfigError`` when it cannot be read,
    in lightkube's own words when it does not exist."""
    from lightkube.core.exceptions import ConfigError

    shown = os.fspath(name)
    loaded, missing = _read(kube_config, [shown])
    if missing:
        # KubeConfig.from_file's words, as before: the file is named.
        raise ConfigError(f"Configuration file {shown} not found")
    return kube_config.from_dict(_merge(loaded), fname=loaded[0][0])


def load_merged(kube_config: Any, paths: Sequence[str]) -> Any:
    """One lightkube ``KubeConfig`` merged from ``paths`` (``kube_config`` is the class) as
    kubectl merges the files of ``$KUBECONFIG``; lightkube's ``ConfigError`` naming every
    file that could not be read, or all of them when none exists."""
    from lightkube.core.exceptions import ConfigError

    loaded, missing = _read(kube_config, paths)
    if not loaded:
        if not missing:
            raise ConfigError("$KUBECONFIG names no file")
        raise ConfigError(f"Config not found: {', '.join(missing)} (every file $KUBECONFIG "
                          "names is missing)")
    return kube_config.from_dict(_merge(loaded), fname=loaded[0][0])


def select_context(conf: Any, context: str | None) -> Any:
    """lightkube's ``conf.get(context_name=context)`` (a ``SingleConfig``), with a context
    naming a cluster or a user that is not defined refused in client-go's words (lightkube
    raised ``KeyError: 'name'``, naming neither the context nor what it lacked)."""
    from lightkube.core.exceptions import ConfigError

    name = context if context is not None else conf.current_context
    ctx = conf.contexts.get(name) if name is not None else None
    if ctx is not None:
        # validation.go validateContext, both reported as client-go reports them (it does not
        # return early). kubectl itself reads a missing user as no credentials and a missing
        # cluster as no server ("no configuration has been provided"); here both are errors,
        # as they were (the KeyError), now named.
        problems = []
        if ctx.user and ctx.user not in conf.users:
            problems.append(f"user {_q(ctx.user)} was not found for context {_q(name)}")
        if ctx.cluster not in conf.clusters:
            problems.append(f"cluster was not specified for context {_q(name)}"
                            if not ctx.cluster else
                            f"cluster {_q(ctx.cluster)} was not found for context {_q(name)}")
        if problems:
            raise ConfigError("; ".join(problems))
    return conf.get(context_name=context)


def unusable(single: Any) -> str | None:
    """What makes ``single`` (a lightkube ``SingleConfig``, the context in use) unusable before
    any request, in client-go's words, or None: a cluster without ``server`` and a file it
    names that cannot be read (``validation.go`` ``validateClusterInfo``: "no server found for
    cluster %q", "unable to read certificate-authority %v for %v due to %w";
    ``validateAuthInfo``: the same of ``client-cert`` and ``client-key``), and a ``tokenFile``
    (``client_config.go`` ``getUserIdentificationPartialConfig`` reads it at once, an error
    ending the command; lightkube reads it at every request, before any ``token``). lightkube
    said "[Errno 2] No such file or directory" of the certificates, naming no file, failed every
    request for a missing token file (retried for ever, the first table never coming), and sent
    a cluster without ``server`` to ``http://localhost:8080``. The paths are read as lightkube
    reads them: the certificates' from the configuration's file (``abs_file``), ``tokenFile``
    as written (the loader here has made both absolute already)."""
    context, cluster, user = single.context, single.cluster, single.user
    problems = [] if cluster.server else [f"no server found for cluster {_q(context.cluster)}"]
    problems += _unreadable("certificate-authority", _from_file(single, cluster.certificate_auth),
                            context.cluster)
    if user is not None:
        problems += _unreadable("client-cert", _from_file(single, user.client_cert), context.user)
        problems += _unreadable("client-key", _from_file(single, user.client_key), context.user)
        problems += _unreadable("tokenFile", user.token_file, context.user)
        problems += _auth_provider(user, context.user)
    return "; ".join(problems) or None


#: What replaces each ``auth-provider``, in client-go's words: its gcp and azure providers
#: were removed in 1.26 and are stubs that say so (plugin/pkg/client/auth/gcp/gcp.go
#: ``newGCPAuthProvider``: "The gcp auth plugin has been removed. Please use the
#: "gke-gcloud-auth-plugin" kubectl/client-go credential plugin instead"; azure/azure.go: "...
#: Please use the https://github.com/Azure/kubelogin kubectl/client-go credential plugin
#: instead"). lightkube has no auth-provider at all (client-go still has oidc): an ``exec``
#: credential plugin is what works with both.
_AUTH_PROVIDER_FIX = {
    "gcp": '"gke-gcloud-auth-plugin" (gcloud container clusters get-credentials writes it)',
    "azure": "kubelogin (https://github.com/Azure/kubelogin: kubelogin convert-kubeconfig)",
    "oidc": "kubelogin (https://github.com/int128/kubelogin: kubectl oidc-login)",
}


def _auth_provider(user: Any, owner: str | None) -> list[str]:
    """An ``auth-provider`` user lightkube would refuse with a bare "auth-provider not
    supported" (``client_adapter.user_auth`` tries it last, after a token, a token file, exec
    and basic auth): what to use instead, an ``exec`` credential plugin."""
    provider = user.auth_provider
    if not provider or user.token_file or user.token or user.exec or (
            user.username and user.password):
        return []
    name = str(provider.get("name") or "") if isinstance(provider, dict) else ""
    fix = _AUTH_PROVIDER_FIX.get(name, "the provider's exec credential plugin")
    # Who does not support it: client-go still has oidc, so "removed in 1.26" alone read as if
    # kubectl had dropped it too. A token is the other way out (user_auth takes it first).
    return [f"user {_q(owner)}: the {name or 'unnamed'} auth-provider is not supported by "
            f"ingresslib (its Kubernetes client, lightkube, has no auth-provider; client-go "
            f"removed the gcp and azure ones in 1.26): use an exec credential plugin instead: "
            f"{fix}, or a token (token or tokenFile)"]


def _from_file(single: Any, path: str | None) -> str | None:
    # A relative path without a file to be relative to: lightkube's own ConfigError comes later.
    if not path or (not os.path.isabs(path) and single.fname is None):
        return None
    resolved: str | os.PathLike[str] = single.abs_file(path)
    return os.fspath(resolved)


def _unreadable(field: str, path: str | None, owner: str | None) -> list[str]:
    if not path:
        return []
    try:
        with open(path, "rb"):
            return []
    except OSError as e:
        return [f"unable to read {field} {path} for {owner} due to {e.strerror or e}"]


def _q(name: Any) -> str:
    # Go's %q for the names a kubeconfig holds: quoted, escapes as JSON writes them.
    return json.dumps(str(name), ensure_ascii=False)


def _read(kube_config: Any, paths: Sequence[str]) -> tuple[list[tuple[Path, dict[str, Any]]],
                                                            list[str]]:
    """The files of ``paths`` that exist, parsed, and the names of those missing; lightkube's
    ``ConfigError`` naming every file that exists but cannot be read."""
    from lightkube.core.exceptions import ConfigError

    loaded: list[tuple[Path, dict[str, Any]]] = []
    missing: list[str] = []
    errors: list[str] = []
    for name in paths:
        # As lightkube's from_file: "~/..." is the home folder.
        path = Path(name).expanduser()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            missing.append(name)
            continue
        except OSError as e:
            errors.append(f'error loading config file "{name}": {e.strerror or e}')
            continue
        try:
            loaded.append((path, _parse(kube_config, data, path)))
        except (yaml.YAMLError, ValueError, TypeError) as e:
            errors.append(f'error loading config file "{name}": {e}')
    if errors:
        raise ConfigError("; ".join(errors))
    return loaded, missing


def _parse(kube_config: Any, data: bytes, path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(data)
    if doc is None:
        # client-go's Load: "if there's no data in a file, return the default object".
        doc = {}
    if not isinstance(doc, dict):
        raise ValueError(f"expected a kubeconfig (a mapping), got {type(doc).__name__}")
    # A file may hold only some of the lists (users here, clusters there): kubectl reads it.
    conf: dict[str, Any] = {_CURRENT: doc.get(_CURRENT)}
    for key, inner in _SECTIONS:
        entries = doc.get(key) or []
        if not isinstance(entries, list):
            raise ValueError(f"{key}: expected a list, got {type(entries).__name__}")
        for i, entry in enumerate(entries):
            if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                    and isinstance(entry.get(inner), dict)):
                raise ValueError(f"{key}[{i}]: expected a name and a {inner}")
        conf[key] = entries
    if conf[_CURRENT] is not None and not isinstance(conf[_CURRENT], str):
        raise ValueError("current-context: expected a string")
    # lightkube checks every field's type now, so the error names this file, not the merge.
    kube_config.from_dict(conf, fname=path)
    return conf


def _merge(loaded: Sequence[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    merged: dict[str, Any] = {key: [] for key, _ in _SECTIONS}
    current: str | None = None
    for path, conf in loaded:
        # filepath.Abs(filepath.Dir(LocationOfOrigin)): relative to the working folder when
        # the entry itself is relative, symbolic links kept.
        base = os.path.abspath(os.path.dirname(path))
        for key, inner in _SECTIONS:
            # The last of two equal names within a file, as lightkube's to_mapping keeps.
            entries = {e["name"]: e[inner] for e in conf[key]}
            taken = {e["name"] for e in merged[key]}
            merged[key].extend({"name": name, inner: _resolved(key, value, base)}
                               for name, value in entries.items() if name not in taken)
        if not current:
            current = conf[_CURRENT]
    merged[_CURRENT] = current or None
    return merged


def _resolved(key: str, value: dict[str, Any], base: str) -> dict[str, Any]:
    out = dict(value)
    if key == "clusters" and not out.get("server"):
        # Empty, not lightkube's default http://localhost:8080: ``unusable`` refuses it.
        out["server"] = ""
    for field in _PATH_FIELDS.get(key, ()):
        if field in out:
            out[field] = _absolute(out[field], base)
    exec_ = out.get("exec")
    command = exec_.get("command") if isinstance(exec_, dict) else None
    # GetAuthInfoFileReferences: "Only resolve exec command if it isn't PATH based".
    if isinstance(exec_, dict) and isinstance(command, str) and os.sep in command:
        out["exec"] = {**exec_, "command": _absolute(command, base)}
    return out


def _absolute(ref: Any, base: str) -> Any:
    # ResolvePaths: "Don't resolve empty paths", "Don't resolve absolute paths"; the others
    # become filepath.Join(base, ref), which cleans the result lexically (no "./", "a/..").
    if isinstance(ref, str) and ref and not os.path.isabs(ref):
        return os.path.normpath(os.path.join(base, ref))
    return ref
