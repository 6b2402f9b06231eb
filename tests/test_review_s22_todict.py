"""Review s22 (X9): ``Resources.from_dicts`` with the official ``kubernetes`` client's
``to_dict()`` form (CONTRACT.md "Loading manifests"; SEMANTICS §1: "Accept both the API's
camelCase keys and the snake_case keys with ``None`` values that the official ``kubernetes``
client's ``to_dict()`` produces").

The fixtures below are real outputs, pasted so the suite needs no new dependency: kubernetes
37.0.2 (``pip install --target``), objects built with its models (V1Ingress, V1IngressClass,
V1Service, V1EndpointSlice, V1Endpoints, V1Secret) or deserialized by its ``ApiClient`` from an
API server's JSON (``LIST_*``: an IngressList with managedFields and status, a LoadBalancer
Service, an EndpointSlice with targetRef and hints); ``TO_DICT`` is ``obj.to_dict()``, ``CAMEL``
``ApiClient().sanitize_for_serialization(obj)`` of the same object (the JSON the client sends).
(The deserialized timestamps' ``TzInfo(0)`` is written here as ``timezone.utc``.)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ingresslib import Resources, Router, RouteTable, ValidationError

TO_DICT = [{'api_version': 'networking.k8s.io/v1',
  'kind': 'Ingress',
  'metadata': {'annotations': {'nginx.ingress.kubernetes.io/rewrite-target': '/',
                               'nginx.ingress.kubernetes.io/use-regex': 'true'},
               'creation_timestamp': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': {'app_name': 'x'},
               'managed_fields': None,
               'name': 'web',
               'namespace': 'shop',
               'owner_references': None,
               'resource_version': '7',
               'self_link': None,
               'uid': 'u-web'},
  'spec': {'default_backend': {'resource': None,
                               'service': {'name': 'web',
                                           'port': {'name': 'http', 'number': None}}},
           'ingress_class_name': 'nginx',
           'rules': [{'host': 'a.example.com',
                      'http': {'paths': [{'backend': {'resource': None,
                                                      'service': {'name': 'web',
                                                                  'port': {'name': None,
                                                                           'number': 80}}},
                                          'path': '/api',
                                          'path_type': 'Prefix'},
                                         {'backend': {'resource': {'api_group': 'k8s.example.com',
                                                                   'kind': 'Bucket',
                                                                   'name': 'b'},
                                                      'service': None},
                                          'path': '/static',
                                          'path_type': 'Exact'}]}}],
           'tls': [{'hosts': ['a.example.com'], 'secret_name': 'tls'}]},
  'status': None},
 {'api_version': 'networking.k8s.io/v1',
  'kind': 'IngressClass',
  'metadata': {'annotations': {'ingressclass.kubernetes.io/is-default-class': 'true'},
               'creation_timestamp': None,
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': None,
               'managed_fields': None,
               'name': 'nginx',
               'namespace': None,
               'owner_references': None,
               'resource_version': None,
               'self_link': None,
               'uid': None},
  'spec': {'controller': 'k8s.io/ingress-nginx',
           'parameters': {'api_group': 'k8s.example.com',
                          'kind': 'P',
                          'name': 'p',
                          'namespace': 'shop',
                          'scope': 'Namespace'}}},
 {'api_version': 'v1',
  'kind': 'Service',
  'metadata': {'annotations': None,
               'creation_timestamp': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': None,
               'managed_fields': None,
               'name': 'web',
               'namespace': 'shop',
               'owner_references': None,
               'resource_version': '7',
               'self_link': None,
               'uid': 'u-web'},
  'spec': {'allocate_load_balancer_node_ports': None,
           'cluster_ip': '10.0.0.1',
           'cluster_ips': None,
           'external_ips': None,
           'external_name': None,
           'external_traffic_policy': None,
           'health_check_node_port': None,
           'internal_traffic_policy': None,
           'ip_families': None,
           'ip_family_policy': None,
           'load_balancer_class': None,
           'load_balancer_ip': None,
           'load_balancer_source_ranges': None,
           'ports': [{'app_protocol': 'http',
                      'name': 'http',
                      'node_port': None,
                      'port': 80,
                      'protocol': 'TCP',
                      'target_port': 8080},
                     {'app_protocol': None,
                      'name': 'https',
                      'node_port': None,
                      'port': 443,
                      'protocol': 'TCP',
                      'target_port': 'https'}],
           'publish_not_ready_addresses': None,
           'selector': {'app': 'web'},
           'session_affinity': None,
           'session_affinity_config': None,
           'traffic_distribution': None,
           'type': 'ClusterIP'},
  'status': None},
 {'api_version': 'v1',
  'kind': 'Service',
  'metadata': {'annotations': None,
               'creation_timestamp': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': None,
               'managed_fields': None,
               'name': 'ext',
               'namespace': 'shop',
               'owner_references': None,
               'resource_version': '7',
               'self_link': None,
               'uid': 'u-ext'},
  'spec': {'allocate_load_balancer_node_ports': None,
           'cluster_ip': None,
           'cluster_ips': None,
           'external_ips': None,
           'external_name': 'example.org',
           'external_traffic_policy': None,
           'health_check_node_port': None,
           'internal_traffic_policy': None,
           'ip_families': None,
           'ip_family_policy': None,
           'load_balancer_class': None,
           'load_balancer_ip': None,
           'load_balancer_source_ranges': None,
           'ports': [{'app_protocol': None,
                      'name': None,
                      'node_port': None,
                      'port': 80,
                      'protocol': None,
                      'target_port': None}],
           'publish_not_ready_addresses': None,
           'selector': None,
           'session_affinity': None,
           'session_affinity_config': None,
           'traffic_distribution': None,
           'type': 'ExternalName'},
  'status': None},
 {'address_type': 'IPv4',
  'api_version': 'discovery.k8s.io/v1',
  'endpoints': [{'addresses': ['10.1.0.1'],
                 'conditions': {'ready': True, 'serving': True, 'terminating': False},
                 'deprecated_topology': None,
                 'hints': None,
                 'hostname': 'h',
                 'node_name': 'n1',
                 'target_ref': None,
                 'zone': 'z'},
                {'addresses': ['10.1.0.2'],
                 'conditions': {'ready': False, 'serving': True, 'terminating': True},
                 'deprecated_topology': None,
                 'hints': None,
                 'hostname': None,
                 'node_name': None,
                 'target_ref': None,
                 'zone': None}],
  'kind': 'EndpointSlice',
  'metadata': {'annotations': None,
               'creation_timestamp': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': {'kubernetes.io/service-name': 'web'},
               'managed_fields': None,
               'name': 'web-abc',
               'namespace': 'shop',
               'owner_references': None,
               'resource_version': '7',
               'self_link': None,
               'uid': 'u-web-abc'},
  'ports': [{'app_protocol': 'http', 'name': 'http', 'port': 8080, 'protocol': 'TCP'},
            {'app_protocol': None, 'name': 'https', 'port': 8443, 'protocol': 'TCP'}]},
 {'api_version': 'v1',
  'kind': 'Endpoints',
  'metadata': {'annotations': None,
               'creation_timestamp': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': None,
               'managed_fields': None,
               'name': 'web',
               'namespace': 'shop',
               'owner_references': None,
               'resource_version': '7',
               'self_link': None,
               'uid': 'u-web'},
  'subsets': [{'addresses': [{'hostname': 'h3',
                              'ip': '10.1.0.3',
                              'node_name': 'n2',
                              'target_ref': None}],
               'not_ready_addresses': [{'hostname': None,
                                        'ip': '10.1.0.4',
                                        'node_name': None,
                                        'target_ref': None}],
               'ports': [{'app_protocol': 'http',
                          'name': 'http',
                          'port': 8080,
                          'protocol': 'TCP'}]}]},
 {'api_version': 'v1',
  'data': {'tls.crt': 'Y2VydA==', 'tls.key': 'a2V5'},
  'immutable': None,
  'kind': 'Secret',
  'metadata': {'annotations': None,
               'creation_timestamp': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': None,
               'managed_fields': None,
               'name': 'tls',
               'namespace': 'shop',
               'owner_references': None,
               'resource_version': '7',
               'self_link': None,
               'uid': 'u-tls'},
  'string_data': {'extra': 'plain'},
  'type': 'kubernetes.io/tls'}]

CAMEL = [{'apiVersion': 'networking.k8s.io/v1',
  'kind': 'Ingress',
  'metadata': {'annotations': {'nginx.ingress.kubernetes.io/rewrite-target': '/',
                               'nginx.ingress.kubernetes.io/use-regex': 'true'},
               'creationTimestamp': '2026-01-01T00:00:00+00:00',
               'labels': {'app_name': 'x'},
               'name': 'web',
               'namespace': 'shop',
               'resourceVersion': '7',
               'uid': 'u-web'},
  'spec': {'defaultBackend': {'service': {'name': 'web', 'port': {'name': 'http'}}},
           'ingressClassName': 'nginx',
           'rules': [{'host': 'a.example.com',
                      'http': {'paths': [{'backend': {'service': {'name': 'web',
                                                                  'port': {'number': 80}}},
                                          'path': '/api',
                                          'pathType': 'Prefix'},
                                         {'backend': {'resource': {'apiGroup': 'k8s.example.com',
                                                                   'kind': 'Bucket',
                                                                   'name': 'b'}},
                                          'path': '/static',
                                          'pathType': 'Exact'}]}}],
           'tls': [{'hosts': ['a.example.com'], 'secretName': 'tls'}]}},
 {'apiVersion': 'networking.k8s.io/v1',
  'kind': 'IngressClass',
  'metadata': {'annotations': {'ingressclass.kubernetes.io/is-default-class': 'true'},
               'name': 'nginx'},
  'spec': {'controller': 'k8s.io/ingress-nginx',
           'parameters': {'apiGroup': 'k8s.example.com',
                          'kind': 'P',
                          'name': 'p',
                          'namespace': 'shop',
                          'scope': 'Namespace'}}},
 {'apiVersion': 'v1',
  'kind': 'Service',
  'metadata': {'creationTimestamp': '2026-01-01T00:00:00+00:00',
               'name': 'web',
               'namespace': 'shop',
               'resourceVersion': '7',
               'uid': 'u-web'},
  'spec': {'clusterIP': '10.0.0.1',
           'ports': [{'appProtocol': 'http',
                      'name': 'http',
                      'port': 80,
                      'protocol': 'TCP',
                      'targetPort': 8080},
                     {'name': 'https', 'port': 443, 'protocol': 'TCP', 'targetPort': 'https'}],
           'selector': {'app': 'web'},
           'type': 'ClusterIP'}},
 {'apiVersion': 'v1',
  'kind': 'Service',
  'metadata': {'creationTimestamp': '2026-01-01T00:00:00+00:00',
               'name': 'ext',
               'namespace': 'shop',
               'resourceVersion': '7',
               'uid': 'u-ext'},
  'spec': {'externalName': 'example.org', 'ports': [{'port': 80}], 'type': 'ExternalName'}},
 {'addressType': 'IPv4',
  'apiVersion': 'discovery.k8s.io/v1',
  'endpoints': [{'addresses': ['10.1.0.1'],
                 'conditions': {'ready': True, 'serving': True, 'terminating': False},
                 'hostname': 'h',
                 'nodeName': 'n1',
                 'zone': 'z'},
                {'addresses': ['10.1.0.2'],
                 'conditions': {'ready': False, 'serving': True, 'terminating': True}}],
  'kind': 'EndpointSlice',
  'metadata': {'creationTimestamp': '2026-01-01T00:00:00+00:00',
               'labels': {'kubernetes.io/service-name': 'web'},
               'name': 'web-abc',
               'namespace': 'shop',
               'resourceVersion': '7',
               'uid': 'u-web-abc'},
  'ports': [{'appProtocol': 'http', 'name': 'http', 'port': 8080, 'protocol': 'TCP'},
            {'name': 'https', 'port': 8443, 'protocol': 'TCP'}]},
 {'apiVersion': 'v1',
  'kind': 'Endpoints',
  'metadata': {'creationTimestamp': '2026-01-01T00:00:00+00:00',
               'name': 'web',
               'namespace': 'shop',
               'resourceVersion': '7',
               'uid': 'u-web'},
  'subsets': [{'addresses': [{'hostname': 'h3', 'ip': '10.1.0.3', 'nodeName': 'n2'}],
               'notReadyAddresses': [{'ip': '10.1.0.4'}],
               'ports': [{'appProtocol': 'http',
                          'name': 'http',
                          'port': 8080,
                          'protocol': 'TCP'}]}]},
 {'apiVersion': 'v1',
  'data': {'tls.crt': 'Y2VydA==', 'tls.key': 'a2V5'},
  'kind': 'Secret',
  'metadata': {'creationTimestamp': '2026-01-01T00:00:00+00:00',
               'name': 'tls',
               'namespace': 'shop',
               'resourceVersion': '7',
               'uid': 'u-tls'},
  'stringData': {'extra': 'plain'},
  'type': 'kubernetes.io/tls'}]

LIST_TO_DICT = [{'api_version': 'networking.k8s.io/v1',
  'items': [{'api_version': None,
             'kind': None,
             'metadata': {'annotations': {'foo': 'bar'},
                          'creation_timestamp': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
                          'deletion_grace_period_seconds': None,
                          'deletion_timestamp': None,
                          'finalizers': None,
                          'generate_name': None,
                          'generation': 2,
                          'labels': None,
                          'managed_fields': [{'api_version': 'networking.k8s.io/v1',
                                              'fields_type': 'FieldsV1',
                                              'fields_v1': {'f:metadata': {'f:annotations': {'.': {},
                                                                                             'f:foo': {}}},
                                                            'f:spec': {'f:rules': {}}},
                                              'manager': 'kubectl',
                                              'operation': 'Update',
                                              'subresource': None,
                                              'time': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)}],
                          'name': 'web',
                          'namespace': 'shop',
                          'owner_references': [{'api_version': 'v1',
                                                'block_owner_deletion': True,
                                                'controller': None,
                                                'kind': 'X',
                                                'name': 'o',
                                                'uid': 'u'}],
                          'resource_version': '5',
                          'self_link': None,
                          'uid': 'u1'},
             'spec': {'default_backend': None,
                      'ingress_class_name': 'nginx',
                      'rules': [{'host': 'a.example.com',
                                 'http': {'paths': [{'backend': {'resource': None,
                                                                 'service': {'name': 'web',
                                                                             'port': {'name': None,
                                                                                      'number': 80}}},
                                                     'path': '/',
                                                     'path_type': 'Prefix'}]}}],
                      'tls': None},
             'status': {'load_balancer': {'ingress': [{'hostname': None,
                                                       'ip': '1.2.3.4',
                                                       'ports': [{'error': None,
                                                                  'port': 80,
                                                                  'protocol': 'TCP'}]}]}}}],
  'kind': 'IngressList',
  'metadata': {'_continue': 'abc',
               'remaining_item_count': None,
               'resource_version': '9',
               'self_link': None,
               'shard_info': None}},
 {'api_version': 'v1',
  'kind': 'Service',
  'metadata': {'annotations': None,
               'creation_timestamp': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': None,
               'managed_fields': None,
               'name': 'web',
               'namespace': 'shop',
               'owner_references': None,
               'resource_version': None,
               'self_link': None,
               'uid': None},
  'spec': {'allocate_load_balancer_node_ports': True,
           'cluster_ip': '10.0.0.1',
           'cluster_ips': ['10.0.0.1'],
           'external_ips': None,
           'external_name': None,
           'external_traffic_policy': 'Local',
           'health_check_node_port': 30001,
           'internal_traffic_policy': 'Cluster',
           'ip_families': ['IPv4'],
           'ip_family_policy': 'SingleStack',
           'load_balancer_class': None,
           'load_balancer_ip': None,
           'load_balancer_source_ranges': None,
           'ports': [{'app_protocol': None,
                      'name': None,
                      'node_port': None,
                      'port': 80,
                      'protocol': 'TCP',
                      'target_port': 8080}],
           'publish_not_ready_addresses': None,
           'selector': {'app': 'web'},
           'session_affinity': 'ClientIP',
           'session_affinity_config': {'client_ip': {'timeout_seconds': 10}},
           'traffic_distribution': None,
           'type': 'LoadBalancer'},
  'status': {'conditions': [{'last_transition_time': datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc),
                             'message': 'm',
                             'observed_generation': None,
                             'reason': 'r',
                             'status': 'True',
                             'type': 'x'}],
             'load_balancer': {'ingress': [{'hostname': None,
                                            'ip': '1.2.3.4',
                                            'ip_mode': 'VIP',
                                            'ports': None}]}}},
 {'address_type': 'IPv4',
  'api_version': 'discovery.k8s.io/v1',
  'endpoints': [{'addresses': ['10.1.0.1'],
                 'conditions': {'ready': True, 'serving': True, 'terminating': False},
                 'deprecated_topology': None,
                 'hints': {'for_nodes': None, 'for_zones': [{'name': 'z'}]},
                 'hostname': None,
                 'node_name': 'n1',
                 'target_ref': {'api_version': None,
                                'field_path': None,
                                'kind': 'Pod',
                                'name': 'p',
                                'namespace': 'shop',
                                'resource_version': None,
                                'uid': 'pu'},
                 'zone': 'z'}],
  'kind': 'EndpointSlice',
  'metadata': {'annotations': None,
               'creation_timestamp': None,
               'deletion_grace_period_seconds': None,
               'deletion_timestamp': None,
               'finalizers': None,
               'generate_name': None,
               'generation': None,
               'labels': {'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
                          'kubernetes.io/service-name': 'web'},
               'managed_fields': None,
               'name': 'web-1',
               'namespace': 'shop',
               'owner_references': [{'api_version': 'v1',
                                     'block_owner_deletion': True,
                                     'controller': True,
                                     'kind': 'Service',
                                     'name': 'web',
                                     'uid': 's'}],
               'resource_version': None,
               'self_link': None,
               'uid': None},
  'ports': [{'app_protocol': None, 'name': '', 'port': 8080, 'protocol': 'TCP'}]}]

LIST_CAMEL = [{'apiVersion': 'networking.k8s.io/v1',
  'items': [{'metadata': {'annotations': {'foo': 'bar'},
                          'creationTimestamp': '2026-01-01T00:00:00Z',
                          'generation': 2,
                          'managedFields': [{'apiVersion': 'networking.k8s.io/v1',
                                             'fieldsType': 'FieldsV1',
                                             'fieldsV1': {'f:metadata': {'f:annotations': {'.': {},
                                                                                           'f:foo': {}}},
                                                          'f:spec': {'f:rules': {}}},
                                             'manager': 'kubectl',
                                             'operation': 'Update',
                                             'time': '2026-01-01T00:00:00Z'}],
                          'name': 'web',
                          'namespace': 'shop',
                          'ownerReferences': [{'apiVersion': 'v1',
                                               'blockOwnerDeletion': True,
                                               'kind': 'X',
                                               'name': 'o',
                                               'uid': 'u'}],
                          'resourceVersion': '5',
                          'uid': 'u1'},
             'spec': {'ingressClassName': 'nginx',
                      'rules': [{'host': 'a.example.com',
                                 'http': {'paths': [{'backend': {'service': {'name': 'web',
                                                                             'port': {'number': 80}}},
                                                     'path': '/',
                                                     'pathType': 'Prefix'}]}}]},
             'status': {'loadBalancer': {'ingress': [{'ip': '1.2.3.4',
                                                      'ports': [{'port': 80,
                                                                 'protocol': 'TCP'}]}]}}}],
  'kind': 'IngressList',
  'metadata': {'continue': 'abc', 'resourceVersion': '9'}},
 {'apiVersion': 'v1',
  'kind': 'Service',
  'metadata': {'creationTimestamp': '2026-01-01T00:00:00Z', 'name': 'web', 'namespace': 'shop'},
  'spec': {'allocateLoadBalancerNodePorts': True,
           'clusterIP': '10.0.0.1',
           'clusterIPs': ['10.0.0.1'],
           'externalTrafficPolicy': 'Local',
           'healthCheckNodePort': 30001,
           'internalTrafficPolicy': 'Cluster',
           'ipFamilies': ['IPv4'],
           'ipFamilyPolicy': 'SingleStack',
           'ports': [{'port': 80, 'protocol': 'TCP', 'targetPort': 8080}],
           'selector': {'app': 'web'},
           'sessionAffinity': 'ClientIP',
           'sessionAffinityConfig': {'clientIP': {'timeoutSeconds': 10}},
           'type': 'LoadBalancer'},
  'status': {'conditions': [{'lastTransitionTime': '2026-01-01T00:00:00Z',
                             'message': 'm',
                             'reason': 'r',
                             'status': 'True',
                             'type': 'x'}],
             'loadBalancer': {'ingress': [{'ip': '1.2.3.4', 'ipMode': 'VIP'}]}}},
 {'addressType': 'IPv4',
  'apiVersion': 'discovery.k8s.io/v1',
  'endpoints': [{'addresses': ['10.1.0.1'],
                 'conditions': {'ready': True, 'serving': True, 'terminating': False},
                 'hints': {'forZones': [{'name': 'z'}]},
                 'nodeName': 'n1',
                 'targetRef': {'kind': 'Pod', 'name': 'p', 'namespace': 'shop', 'uid': 'pu'},
                 'zone': 'z'}],
  'kind': 'EndpointSlice',
  'metadata': {'labels': {'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
                          'kubernetes.io/service-name': 'web'},
               'name': 'web-1',
               'namespace': 'shop',
               'ownerReferences': [{'apiVersion': 'v1',
                                    'blockOwnerDeletion': True,
                                    'controller': True,
                                    'kind': 'Service',
                                    'name': 'web',
                                    'uid': 's'}]},
  'ports': [{'name': '', 'port': 8080, 'protocol': 'TCP'}]}]

# NetworkPolicy(...).to_dict(): the client's renamed keys (`_from`, `_except`) and `ip_block`
# live in kinds ingresslib does not read; kept aside as they are.
NETWORK_POLICY = {
    'api_version': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
    'metadata': {'annotations': None, 'creation_timestamp': None,
                 'deletion_grace_period_seconds': None, 'deletion_timestamp': None,
                 'finalizers': None, 'generate_name': None, 'generation': None, 'labels': None,
                 'managed_fields': None, 'name': 'np', 'namespace': 'shop',
                 'owner_references': None, 'resource_version': None, 'self_link': None,
                 'uid': None},
    'spec': {'egress': None,
             'ingress': [{'_from': [{'ip_block': {'_except': ['10.1.0.0/16'], 'cidr': '10.0.0.0/8'},
                                     'namespace_selector': None, 'pod_selector': None}],
                          'ports': None}],
             'pod_selector': {'match_expressions': None, 'match_labels': {'app': 'web'}},
             'policy_types': None}}

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _roundtrip(objs: Any) -> Any:
    """What a cache or a queue makes of to_dict() output: ``json.dumps(default=str)``."""
    return json.loads(json.dumps(objs, default=str))


# --- the official client's to_dict() loads as the camelCase manifest ------------------------------


def test_to_dict_loads_as_the_camelcase_manifest() -> None:
    camel = Resources.from_dicts(CAMEL)
    snake = Resources.from_dicts(TO_DICT)
    assert snake == camel
    assert snake.warnings == () and camel.warnings == ()
    (ing,) = snake.ingresses
    assert ing.metadata.ref == "shop/web" and ing.metadata.creation_timestamp == T0
    assert ing.metadata.resource_version == "7" and ing.metadata.uid == "u-web"
    assert ing.metadata.annotations["nginx.ingress.kubernetes.io/rewrite-target"] == "/"
    assert dict(ing.metadata.labels) == {"app_name": "x"}  # map keys never renamed
    assert ing.spec.ingress_class_name == "nginx"
    assert ing.spec.default_backend is not None and ing.spec.default_backend.service is not None
    assert ing.spec.default_backend.service.port.name == "http"
    assert ing.spec.default_backend.service.port.number is None
    paths = ing.spec.rules[0].paths
    assert paths is not None and [(p.path, p.path_type) for p in paths] == [
        ("/api", "Prefix"), ("/static", "Exact")]
    assert paths[0].backend.service is not None and paths[0].backend.service.port.number == 80
    res_backend = paths[1].backend.resource
    assert res_backend is not None and res_backend.api_group == "k8s.example.com"
    assert [(t.hosts, t.secret_name) for t in ing.spec.tls] == [(("a.example.com",), "tls")]
    (cls,) = snake.ingress_classes
    assert cls.spec.parameters is not None
    assert (cls.spec.parameters.scope, cls.spec.parameters.namespace) == ("Namespace", "shop")
    web, ext = snake.services
    assert [(p.port, p.target_port, p.app_protocol) for p in web.spec.ports] == [
        (80, 8080, "http"), (443, "https", None)]
    assert web.metadata.annotations == {} and web.spec.cluster_ip == "10.0.0.1"
    assert (ext.spec.type, ext.spec.external_name) == ("ExternalName", "example.org")
    assert ext.spec.ports[0].protocol == "TCP"  # None: defaulted as an absent field
    (eps,) = snake.endpoint_slices
    assert eps.metadata.labels["kubernetes.io/service-name"] == "web"
    assert eps.address_type == "IPv4"
    assert [(e.addresses, e.conditions.ready, e.conditions.serving, e.conditions.terminating,
             e.node_name) for e in eps.endpoints] == [
        (("10.1.0.1",), True, True, False, "n1"), (("10.1.0.2",), False, True, True, None)]
    assert [(p.name, p.port, p.app_protocol) for p in eps.ports] == [
        ("http", 8080, "http"), ("https", 8443, None)]
    (ep,) = snake.endpoints
    assert [a.node_name for a in ep.subsets[0].addresses] == ["n2"]
    assert [a.ip for a in ep.subsets[0].not_ready_addresses] == ["10.1.0.4"]
    (sec,) = snake.secrets
    assert sec.type == "kubernetes.io/tls"
    assert dict(sec.data) == {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
    assert dict(sec.string_data) == {"extra": "plain"}


def _fields(m: Any) -> Any:
    """A Match's contract fields (Match compares by identity: one object per route)."""
    if m is None:
        return None
    return (m.service, m.port, m.namespace, m.ingress, m.host, m.path, m.path_type,
            m.is_default_backend, m.resource)


@pytest.mark.parametrize("form", ["to_dict", "json"])
def test_to_dict_routes_as_the_camelcase_manifest(form: str) -> None:
    objs = TO_DICT if form == "to_dict" else _roundtrip(TO_DICT)
    camel, snake = Resources.from_dicts(CAMEL), Resources.from_dicts(objs)
    t_camel, t_snake = RouteTable.build(camel), RouteTable.build(snake)
    for host, path in [("a.example.com", "/api/x"), ("a.example.com", "/static"),
                       ("a.example.com", "/other"), ("b.example.com", "/")]:
        assert _fields(t_snake.match(host, path)) == _fields(t_camel.match(host, path))
    m = t_snake.match("a.example.com", "/api/x")
    assert m is not None and (m.service, m.port, m.ingress) == ("web", 80, "shop/web")
    r_camel, r_snake = Router(camel, seed=1), Router(snake, seed=1)
    d_camel = r_camel.route("GET", "a.example.com", "/api/x")
    d_snake = r_snake.route("GET", "a.example.com", "/api/x")
    assert d_snake is not None and d_camel is not None
    assert (d_snake.service, d_snake.port, d_snake.endpoint) == (
        d_camel.service, d_camel.port, d_camel.endpoint) == ("web", 8080, ("10.1.0.1", 8080))


# --- defect 1: a JSON-roundtripped to_dict() was refused -----------------------------------------
#
# to_dict() holds creation_timestamp as a datetime; `json.dumps(..., default=str)` writes
# "2026-01-01 00:00:00+00:00". from_dicts refused every object: `metadata.creationTimestamp:
# Invalid value: "2026-01-01 00:00:00+00:00": must be an RFC 3339 date-time`. The snake_case key
# (only the client writes it) now also takes str() of a datetime; the camelCase key stays as
# strict as the API server (metav1.Time: time.RFC3339).


def test_json_roundtripped_to_dict_loads() -> None:
    objs = _roundtrip(TO_DICT)
    assert objs[0]["metadata"]["creation_timestamp"] == "2026-01-01 00:00:00+00:00"
    res = Resources.from_dicts(objs)
    assert res == Resources.from_dicts(CAMEL) and res.warnings == ()
    assert [s.metadata.creation_timestamp for s in res.services] == [T0, T0]


def test_json_roundtripped_api_list_loads() -> None:
    res = Resources.from_dicts(_roundtrip(LIST_TO_DICT))
    assert res == Resources.from_dicts(LIST_CAMEL) and res.warnings == ()
    assert res.ingresses[0].metadata.creation_timestamp == T0


def _secret_ts(key: str, value: Any) -> datetime | None:
    obj = {"api_version": "v1", "kind": "Secret", "metadata": {"name": "s", key: value}}
    return Resources.from_dicts([obj]).secrets[0].metadata.creation_timestamp


@pytest.mark.parametrize("value, expected", [
    ("2026-01-01 00:00:00+00:00", T0),
    ("2026-01-01 01:00:00+01:00", T0),
    ("2026-01-01 00:00:00.250000+00:00", T0 + timedelta(milliseconds=250)),
    ("2026-01-01 00:00:00", T0),  # str() of a naive datetime: UTC, as the datetime is read
    ("2026-01-01T00:00:00", T0),  # its isoformat()
    ("2026-01-01T00:00:00Z", T0),
])
def test_client_timestamp_strings(value: str, expected: datetime) -> None:
    ts = _secret_ts("creation_timestamp", value)
    assert ts == expected and ts is not None and ts.utcoffset() is not None


@pytest.mark.parametrize("key, value", [
    ("creationTimestamp", "2026-01-01 00:00:00+00:00"),  # the API server refuses it
    ("creation_timestamp", "2026-01-01"),
    ("creation_timestamp", "yesterday"),
    ("creation_timestamp", "2026-01-01 00:00+00:00"),
])
def test_timestamps_still_refused(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as ei:
        _secret_ts(key, value)
    assert [str(e) for e in ei.value.errors] == [
        f'Secret default/s: metadata.creationTimestamp: Invalid value: "{value}": '
        "must be an RFC 3339 date-time (e.g. 2024-01-02T03:04:05Z)"]


# --- defect 2: `unknown field "spec.cluster_ips"` for every Service from the API -----------------
#
# kubernetes 37.0.2 names ServiceSpec.clusterIPs `cluster_ips` (externalIPs `external_ips`);
# ingresslib knew only the older clients' `cluster_i_ps`/`external_i_ps`, so every Service read
# from an API server (clusterIPs is always set) warned.


def test_api_objects_to_dict_give_no_warning() -> None:
    snake = Resources.from_dicts(LIST_TO_DICT)
    assert snake.warnings == ()
    assert snake == Resources.from_dicts(LIST_CAMEL)
    assert LIST_TO_DICT[1]["spec"]["cluster_ips"] == ["10.0.0.1"]
    assert LIST_TO_DICT[0]["metadata"]["_continue"] == "abc"
    (ing,) = snake.ingresses
    assert ing.metadata.annotations == {"foo": "bar"}


def _service(**spec: Any) -> dict[str, Any]:
    return {"api_version": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}], **spec}}


@pytest.mark.parametrize("spec", [
    # (clusterIPs needs clusterIP, its first value: session 35's x36)
    {"cluster_ip": "10.0.0.1", "cluster_ips": ["10.0.0.1"], "external_ips": ["192.0.2.1"]},  # kubernetes 37.0.2
    {"cluster_ip": "10.0.0.1", "cluster_i_ps": ["10.0.0.1"], "external_i_ps": ["192.0.2.1"]},  # older clients
    {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "externalIPs": ["192.0.2.1"]},
])
def test_both_client_spellings_of_cluster_ips(spec: dict[str, Any]) -> None:
    assert Resources.from_dicts([_service(**spec)]).warnings == ()


def test_an_unknown_field_next_to_cluster_ips_still_warns() -> None:
    res = Resources.from_dicts([_service(cluster_ip="10.0.0.1", cluster_ips=["10.0.0.1"], cluster_ipz=["x"])])
    assert [str(w) for w in res.warnings] == ['Service default/web: unknown field "spec.cluster_ipz"']


# --- defect 3: list items on their own: say what to pass ------------------------------------------
#
# `[i.to_dict() for i in api.list_...().items]`: the API server sets kind/apiVersion on the list
# only, so every item has `api_version: None, kind: None`. The error said only "every object
# needs `kind` and `apiVersion`"; it now says where they went and what loads.


def test_list_items_alone_say_to_pass_the_list() -> None:
    items = LIST_TO_DICT[0]["items"]
    assert items[0]["kind"] is None and items[0]["api_version"] is None
    with pytest.raises(ValidationError) as ei:
        Resources.from_dicts(items)
    assert [str(e) for e in ei.value.errors] == [
        "object 1: kind: Required value: every object needs `kind` and `apiVersion` (the "
        "official client leaves kind and api_version None in the items of a list it read: pass "
        "the list's to_dict(), whose kind names its items; and in a model built without them: "
        "set them)"]
    # ... which loads.
    assert [i.metadata.ref for i in Resources.from_dicts([LIST_TO_DICT[0]]).ingresses] == ["shop/web"]


@pytest.mark.parametrize("obj", [
    {"apiVersion": "v1", "metadata": {"name": "x"}},
    {"api_version": "v1", "kind": None, "metadata": {"name": "x"}},  # only kind is missing
])
def test_other_objects_without_kind_keep_the_short_message(obj: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as ei:
        Resources.from_dicts([obj])
    assert [str(e) for e in ei.value.errors] == [
        "object 1: kind: Required value: every object needs `kind` and `apiVersion`"]


# --- other kinds -----------------------------------------------------------------------------------


def test_other_kinds_to_dict_kept_aside_as_they_are() -> None:
    res = Resources.from_dicts([NETWORK_POLICY, *TO_DICT])
    assert res.ignored == (NETWORK_POLICY,)
    assert res.ignored[0]["spec"]["ingress"][0]["_from"][0]["ip_block"]["_except"] == ["10.1.0.0/16"]
    assert res.ignored[0] is not NETWORK_POLICY
