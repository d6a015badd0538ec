"""Property-based tests of the JSON API from its own OpenAPI document (schemathesis): no request the schema
allows may produce a server error, for a logged-in investigator whose requests carry the session's CSRF
token, so the generated writes (attestations, overrides, signed decisions) get past the CSRF check to
validation, the store and the signature check."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from cd7kit.data import Study
from cd7kit.datasets.case_reports import case_report_tables
from cd7kit.store import open_store
from cd7kit.web import create_app
from cd7kit.web.app import SESSION_COOKIE


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    store = open_store(str(tmp_path_factory.mktemp("schemathesis") / "api.sqlite"))
    # the trial's criteria make the screening endpoints evaluate (the case-report patients reach its checkpoints)
    store.save_study(Study.from_tables(**case_report_tables(), meta={"study_id": "CASES", "trial": "NCT06849401"}), actor="test", role="system")
    app = create_app(store, "CASES")
    token, session = app.state.sessions.create("inv", "Dr Investigator", "investigator")
    return app, token, session.csrf


def _operations(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [r.ok() for r in schema.get_all_operations()]


def test_every_operation_without_server_error(web):
    app, token, csrf = web
    ops = _operations(app)
    assert len(ops) >= 16  # the API's operations are all exercised
    for op in ops:

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case):
            response = case.call(headers={"Cookie": f"{SESSION_COOKIE}={token}", "X-CSRF-Token": csrf}, timeout=120)
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])

        check()
