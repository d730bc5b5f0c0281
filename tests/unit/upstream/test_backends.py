"""Pool state without sockets: eligibility, outlier ejection, health thresholds, drain, reload, retry budget."""

from __future__ import annotations

import random
from typing import Any

from lanner.config.pools import PoolConfig
from lanner.upstream.backends import Pool


def make_pool(count: int = 3, **settings: Any) -> Pool:
    backends = [{"address": f"10.0.0.{index}:80"} for index in range(1, count + 1)]
    return Pool(PoolConfig.model_validate({"name": "p", "backends": backends, **settings}), random.Random(1))


def eligible(pool: Pool, now: float) -> list[str]:
    return [backend.key for backend in pool.eligible(now)]


def test_consecutive_5xx_eject_and_a_success_resets_the_count() -> None:
    pool = make_pool(outlier={"consecutive_5xx": 3, "max_ejection_percent": 50})
    first = pool.backends[0]
    pool.answered(first, 500, 0)
    pool.answered(first, 502, 0)
    pool.answered(first, 200, 0)
    pool.answered(first, 503, 0)
    pool.answered(first, 500, 0)
    assert first.key in eligible(pool, 0)
    pool.answered(first, 500, 0)
    assert first.key not in eligible(pool, 1)
    assert first.key in eligible(pool, 30.0)  # base ejection time 30 s


def test_gateway_failures_eject_by_default_and_ejections_grow_then_cap() -> None:
    pool = make_pool(outlier={"base_ejection_time": 10, "max_ejection_time": 25, "max_ejection_percent": 50})
    backend = pool.backends[1]
    now = 0.0
    for expected in (10, 20, 25, 25):
        for _ in range(5):
            pool.gateway_failed(backend, now, "refused")
        assert backend.ejected_until - now == expected
        now = backend.ejected_until  # failing again the moment it returns


def test_ejection_count_decays_while_a_backend_stays_in() -> None:
    pool = make_pool(outlier={"base_ejection_time": 10, "max_ejection_percent": 50})
    backend = pool.backends[0]
    for _ in range(5):
        pool.gateway_failed(backend, 0, "reset")
    returned = backend.ejected_until
    for _ in range(5):
        pool.gateway_failed(backend, returned + 25, "reset")  # 2 base times later: forgiven twice
    assert backend.ejections == 1
    assert backend.ejected_until == returned + 25 + 10


def test_at_most_the_ejection_share_but_always_one() -> None:
    pool = make_pool(4)  # 10% of 4 backends rounds down to 0: one may still be ejected
    for backend in pool.backends:
        for _ in range(5):
            pool.gateway_failed(backend, 0, "refused")
    assert len(eligible(pool, 1)) == 3
    wide = make_pool(4, outlier={"max_ejection_percent": 50})
    for backend in wide.backends:
        for _ in range(5):
            wide.gateway_failed(backend, 0, "refused")
    assert len(eligible(wide, 1)) == 2


def test_health_rise_and_fall_and_a_passing_check_returns_an_ejected_backend() -> None:
    pool = make_pool(health={"rise": 2, "fall": 3}, outlier={"max_ejection_percent": 50})
    backend = pool.backends[0]
    pool.checked(backend, False, 0, "503")
    pool.checked(backend, False, 0, "503")
    assert backend.healthy
    pool.checked(backend, False, 0, "503")
    assert not backend.healthy and backend.key not in eligible(pool, 0)
    pool.checked(backend, True, 0, "200")
    assert not backend.healthy
    pool.checked(backend, True, 0, "200")
    assert backend.healthy and backend.key in eligible(pool, 0)
    for _ in range(5):
        pool.gateway_failed(backend, 100, "timeout")
    assert backend.key not in eligible(pool, 101)
    pool.checked(backend, True, 102, "200")
    assert backend.key in eligible(pool, 102)


def test_drain_and_a_reload_keep_state() -> None:
    pool = make_pool(outlier={"max_ejection_percent": 50})
    assert pool.drain("10.0.0.2:80")
    assert not pool.drain("10.9.9.9:80")
    for _ in range(5):
        pool.gateway_failed(pool.backends[0], 0, "refused")
    assert eligible(pool, 1) == ["10.0.0.3:80"]
    reloaded = PoolConfig.model_validate(
        {"name": "p", "backends": [{"address": f"10.0.0.{i}:80", "weight": 2} for i in (1, 2, 3, 4)]}
    )
    pool.reconfigure(reloaded)
    assert eligible(pool, 1) == ["10.0.0.3:80", "10.0.0.4:80"]  # still drained, still ejected, one added
    assert [backend.weight for backend in pool.backends] == [2, 2, 2, 2]
    pool.drain("10.0.0.2:80", on=False)
    assert "10.0.0.2:80" in eligible(pool, 1)


def test_choose_skips_tried_backends_and_answers_none_when_none_is_left() -> None:
    pool = make_pool(2)
    first = pool.choose(0, None)
    assert first is not None
    second = pool.choose(0, None, [first])
    assert second is not None and second is not first
    assert pool.choose(0, None, [first, second]) is None


def test_retry_budget_is_a_share_of_requests_in_flight_with_a_floor() -> None:
    pool = make_pool(retries={"budget": 0.2, "min_concurrency": 3})
    pool.active, pool.retries = 100, 19
    assert pool.may_retry()
    pool.retries = 20
    assert not pool.may_retry()
    pool.active, pool.retries = 2, 2
    assert pool.may_retry()  # under the floor of 3
    pool.retries = 3
    assert not pool.may_retry()
