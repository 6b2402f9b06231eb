"""One process, several ASGI apps, routed by Kubernetes Ingress rules.

The same Ingress that fronts these services in a cluster routes them here, in-process: ``/api``
goes to the API app (which sees ``root_path="/api"`` and routes on the rest), everything else to
the site. It needs an ASGI server (``pip install uvicorn``; ingresslib does not depend on one).
Run it with one of::

    python examples/asgi_app.py                      # uvicorn on 127.0.0.1:8000
    python examples/asgi_app.py --port 0             # a free port (uvicorn prints which)
    uvicorn asgi_app:app --host 127.0.0.1 --port 8000   # from the folder holding this file

then ``curl -H 'Host: shop.example.test' http://127.0.0.1:8000/api/items`` (the API's JSON) and
``curl -H 'Host: shop.example.test' http://127.0.0.1:8000/about`` (the site's page). Without that
``Host`` header no rule matches: 404. The file stands alone (its manifests are inline): copy it
anywhere.

Any ASGI app can be mounted (Starlette, FastAPI, Django's ASGI handler, ...); these two are
written without a framework to keep the example dependency-free.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from ingresslib import IngressASGI, parse_manifests

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: shop}
spec:
  rules:
  - host: shop.example.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: site, port: {name: http}}}}
"""

ITEMS = [{"id": 1, "name": "teapot"}, {"id": 2, "name": "cup"}]


async def _respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def api(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """The API service. It routes on its own path: ``path`` minus ``root_path``."""
    if scope["type"] == "lifespan":
        return  # no startup work: returning tells IngressASGI (and the server) so
    own_path = scope["path"][len(scope["root_path"]):] or "/"
    decision = scope["ingresslib.decision"]
    if own_path == "/items":
        body = json.dumps({"items": ITEMS, "served_by": decision.backend}).encode()
        await _respond(send, 200, body, b"application/json")
    else:
        await _respond(send, 404, b'{"error": "no such endpoint"}', b"application/json")


async def site(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """The web site: one page for every path."""
    if scope["type"] == "lifespan":
        return
    page = f"<h1>shop</h1><p>you asked for {scope['path']}</p>".encode()
    await _respond(send, 200, page, b"text/html; charset=utf-8")


app = IngressASGI(
    parse_manifests(MANIFESTS),
    backends={
        "shop/api:80": api,        # namespace/service:port, the port as the Ingress writes it
        "shop/site:http": site,
    },
)


if __name__ == "__main__":
    import argparse

    try:
        import uvicorn
    except ImportError:
        raise SystemExit("this example is served by uvicorn, which ingresslib does not install: "
                         "pip install uvicorn") from None

    ap = argparse.ArgumentParser(description="serve the example on 127.0.0.1 with uvicorn")
    ap.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free port")
    uvicorn.run(app, host="127.0.0.1", port=ap.parse_args().port)
