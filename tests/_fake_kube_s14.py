"""FakeKubeS13 plus what session 14's watch review needed: ``get`` of one object by name
(``GET .../namespaces/NS/secrets/NAME``: the object, or ``404 NotFound`` with the API server's
``Status``), and a record of those reads in ``gets``.

``rbac`` (from FakeKubeS13) is asked with the verb ``get`` for them.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, unquote, urlsplit

from _fake_kube import KINDS, Request, _send_json, _status
from _fake_kube_s13 import FakeKubeS13

__all__ = ["FakeKubeS14"]


class FakeKubeS14(FakeKubeS13):
    def __init__(self) -> None:
        super().__init__()
        #: ``(plural, namespace, name)`` of every ``get``, in order.
        self.gets: list[tuple[str, str | None, str]] = []

    async def _respond(self, target: str, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(target)
        segs = [unquote(s) for s in parts.path.strip("/").split("/")]
        if len(segs) >= 2 and segs[-2] in KINDS and segs[-1] not in KINDS:
            plural, name = segs[-2], segs[-1]
            namespace = segs[segs.index("namespaces") + 1] if "namespaces" in segs else None
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self.requests.append(Request(plural, namespace, False, dict(query, name=name)))
            self.gets.append((plural, namespace, name))
            await self._notify()
            if self.rbac is not None and not self.rbac("get", plural, namespace):
                await _send_json(writer, 403, _status(
                    403, "Forbidden", f'{plural} "{name}" is forbidden: User '
                    f'"system:serviceaccount:x:y" cannot get resource "{plural}"'))
                return
            fails = self._fail.get(plural)
            if fails:
                code, headers, message, _, _ = fails.pop(0)
                await _send_json(writer, code, _status(code, "InternalError", message), headers)
                return
            obj = self.objects[plural].get((namespace or "", name))
            if obj is None:
                await _send_json(writer, 404, _status(404, "NotFound",
                                                      f'{plural} "{name}" not found'))
                return
            await _send_json(writer, 200, json.loads(json.dumps(obj)))
            return
        await super()._respond(target, writer)

    def get_count(self, plural: str) -> int:
        return sum(1 for p, _, _ in self.gets if p == plural)

    def watch_requests(self, plural: str) -> list[Request]:
        return [r for r in self.requests if r.plural == plural and r.watch]

    def list_requests(self, plural: str) -> list[Request]:
        return [r for r in self.requests
                if r.plural == plural and not r.watch and "name" not in r.query]
