"""schemathesis against the admin API's own OpenAPI document: no 500s, every answer as documented.

Each operation gets its own hypothesis run of generated requests (valid and
invalid); `call_and_validate` applies schemathesis's default checks (no server
error, status codes, content types, headers and bodies as documented, invalid
input refused). One check is left out: "schema-valid input accepted", because a
`filter` is a query language JSON Schema cannot describe, so a schema-valid
string may be a bad filter, answered 400 `bad_filter` by design.
"""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.integration.servers import Origin

EXAMPLES = 40  # per operation


def test_admin_api_conforms_to_its_openapi_document(start_lanner: Any, start_backend: Any, origin: Origin) -> None:
    backend = start_backend("b1")
    lanner = start_lanner(
        {
            "listeners": [
                {"name": "forward"},
                {"name": "web", "type": "reverse", "routes": [{"pool": "p"}]},
            ],
            "pools": [{"name": "p", "backends": [{"address": backend.address}]}],
        }
    )
    with httpx.Client(proxy=lanner.http_proxy, timeout=10) as client:
        for path in ("/small", "/gzip", "/status?code=500", "/headers"):
            client.get(f"http://127.0.0.1:{origin.port}{path}")
    schema = schemathesis.openapi.from_url(f"{lanner.admin_url}/api/v1/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: Any) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            conforms()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # schemathesis raises a FailureGroup; every operation is tried
            failures[operation.label] = str(exc)[:3000]
    assert operations >= 15
    assert not failures, "\n\n".join(f"{label}: {failure}" for label, failure in failures.items())
    assert lanner.alive() and "admin API call failed" not in lanner.log()
