"""FakeKube plus what session 13's watch review needed: a resourceVersion that goes back in time,
and RBAC.

- ``restore(backup)``: etcd restored from a backup, as ``etcdctl snapshot restore`` does. The
  objects and the resourceVersion go back to what ``backup()`` saved; a watch from a version
  the server has not reached is answered as kube-apiserver's watch cache answers it after its
  3 s wait (``waitUntilFreshAndBlock``): ``504`` with a ``Status`` of reason ``Timeout`` and a
  ``ResourceVersionTooLarge`` cause (the body quoted in kubernetes-client/java#2190).
- ``rbac``: when set, a function ``(verb, plural, namespace) -> bool``; a request it refuses
  is answered ``403 Forbidden`` with the API server's wording.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncio

from _fake_kube import KINDS, FakeKube, Request, _send_json, _status

__all__ = ["FakeKubeS13", "too_large_status"]


def too_large_status(asked: int, current: int) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"Timeout: Too large resource version: {asked}, current: {current}",
            "reason": "Timeout",
            "details": {"causes": [{"reason": "ResourceVersionTooLarge",
                                    "message": "Too large resource version"}],
                        "retryAfterSeconds": 1},
            "code": 504}


class FakeKubeS13(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.rbac: Callable[[str, str, str | None], bool] | None = None
        #: ``Retry-After`` on the 504 "Too large resource version" (kube-apiserver sends the
        #: Status's ``retryAfterSeconds``, 1); ``None`` leaves the header out.
        self.too_large_retry_after: int | None = 1
        #: plural -> how many versions the API server's cache for it lags behind ``rv``: a watch
        #: from a version above ``rv - lag`` is "too large" (1 and up: a cache that stopped
        #: following etcd, or a lagging API server in front of a newer one).
        self.cache_lag: dict[str, int] = {}

    def backup(self) -> tuple[int, dict[str, dict[tuple[str, str], dict[str, Any]]]]:
        return self.rv, copy.deepcopy(self.objects)

    def restore(self, backup: tuple[int, dict[str, dict[tuple[str, str], dict[str, Any]]]]
                ) -> None:
        """Objects and resourceVersion as at ``backup()``; no history; open watches dropped."""
        self.rv, objects = backup
        self.objects = copy.deepcopy(objects)
        self.history.clear()
        self.compacted = 0
        for plural in KINDS:
            self.drop(plural)

    async def _respond(self, target: str, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        segs = [unquote(s) for s in parts.path.strip("/").split("/")]
        plural = segs[-1]
        namespace = segs[segs.index("namespaces") + 1] if "namespaces" in segs else None
        watch = query.get("watch") in ("true", "1")
        verb = "watch" if watch else "list"
        if self.rbac is not None and plural in KINDS and not self.rbac(verb, plural, namespace):
            self.requests.append(Request(plural, namespace, watch, query))
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            group = KINDS[plural][0].rpartition("/")[0]
            await _send_json(writer, 403, _status(
                403, "Forbidden", f'{plural} is forbidden: User "system:serviceaccount:x:y" '
                f'cannot {verb} resource "{plural}" in API group "{group}" {scope}'))
            return
        rv = query.get("resourceVersion")
        if watch and rv and rv.isdigit() and int(rv) > self.rv - self.cache_lag.get(plural, 0):
            self.requests.append(Request(plural, namespace, watch, query))
            data = json.dumps(too_large_status(int(rv), self.rv)).encode()
            retry = (b"Retry-After: %d\r\n" % self.too_large_retry_after
                     if self.too_large_retry_after is not None else b"")
            writer.write(b"HTTP/1.1 504 X\r\nContent-Type: application/json\r\n%s"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (retry, len(data), data))
            await writer.drain()
            return
        await super()._respond(target, writer)
