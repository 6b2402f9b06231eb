"""README's shop.example.com as manifests: the Ingress ``shop`` routing /cart to Service ``api``,
and its canary by header ``X-Canary`` to ``api-v2``, both in namespace ``shop``.

Several test files run the docs' examples against it; each picks the parts its page needs.
"""

from __future__ import annotations


def _ingress(metadata: str, service: str, ingress_class: str | None) -> str:
    klass = f"  ingressClassName: {ingress_class}\n" if ingress_class else ""
    return f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
{metadata}spec:
{klass}  rules:
  - host: shop.example.com
    http:
      paths:
      - {{path: /cart, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
"""


def _backend(service: str, slice_name: str, address: str) -> tuple[str, str]:
    """Its Service, and its EndpointSlice (the slices follow both Services)."""
    return f"""\
---
apiVersion: v1
kind: Service
metadata: {{name: {service}, namespace: shop}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
""", f"""\
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {slice_name}, namespace: shop, labels: {{kubernetes.io/service-name: {service}}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: [{address}]}}]
"""


def shop_manifests(*, ingress_class: str | None = None,
                   addresses: tuple[str, str] | None = None) -> str:
    """The two Ingresses; with ``ingress_class``, an IngressClass of that name (controller
    k8s.io/ingress-nginx) named by both; with ``addresses``, Services ``api`` and ``api-v2`` and
    one EndpointSlice each, on those addresses (port 8080)."""
    out = ""
    if ingress_class:
        out += f"""\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: {ingress_class}}}
spec: {{controller: k8s.io/ingress-nginx}}
---
"""
    out += _ingress("metadata: {name: shop, namespace: shop}\n", "api", ingress_class)
    out += "---\n" + _ingress("""\
metadata:
  name: shop-canary
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
""", "api-v2", ingress_class)
    if addresses is not None:
        (svc_a, slice_a), (svc_b, slice_b) = (_backend("api", "api-1", addresses[0]),
                                              _backend("api-v2", "api-v2-1", addresses[1]))
        out += svc_a + svc_b + slice_a + slice_b
    return out
