"""Schemathesis over the project's own OpenAPI schema: every operation, every role, real tokens.

Checks: no 5xx; every status code is documented; every body - error envelopes
included - matches the schema documented for its status; content types match;
schema-violating input is rejected with a 4xx. A failure it finds is fixed and
the example stays here (``tests/api/test_errors.py`` keeps the regressions).
Bounded by ``FUZZ_EXAMPLES`` examples per operation and role (CI: a few minutes).
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from modelhub.wsgi import application
from tests.conftest import bearer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
ROLES = ["admin", "manager", "developer", "analyst", "viewer", None]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]


def _openapi() -> dict:
    import django

    django.setup()
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(_openapi())


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_every_operation_for_every_role(case, personas):
    for role in ROLES:
        headers = {"Authorization": bearer(personas[role])} if role else {}
        case.call_and_validate(app=application, headers=headers, checks=CHECKS)
