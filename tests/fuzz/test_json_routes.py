"""A few hundred generated requests against every JSON route, on SQLite and PostgreSQL:
never a 5xx, never a row changed by a rejected request (tests/fuzz/site_fuzz.py)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.fuzz.site_fuzz import build_site, check, requests

EXAMPLES = {"sqlite": 300, "postgresql": 150}


def test_json_routes_survive_generated_requests(db_url: str) -> None:
    site = build_site(db_url)
    assert len(site.rules) >= 5  # the API's routes, the progress JSON and /healthz

    @settings(max_examples=EXAMPLES[site.engine.dialect.name], deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(requests(site))
    def run(request: dict) -> None:
        problems = check(site, request)
        assert not problems, (request, problems)

    run()
    assert sum(site.statuses.values()) >= 100
    assert any(400 <= status < 500 for status in site.statuses)
    site.app.extensions["fvlab_engine"].dispose()
    site.engine.dispose()
