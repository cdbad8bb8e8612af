"""The ``retention`` section (Synapse's names and checks), and the pure policy rules."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.config import RetentionConfig, RetentionPurgeJob, parse_config
from homeserver.retention.policy import (
    RetentionPolicy,
    effective_policy,
    is_expired,
    policy_of_content,
)

DAY_MS = 86_400_000


def _config(**section: Any) -> RetentionConfig:
    return parse_config({"server_name": "test.local", "retention": section}, {}).retention


def test_full_section() -> None:
    config = _config(
        enabled=True,
        default_policy={"min_lifetime": "1d", "max_lifetime": "1y"},
        allowed_lifetime_min=3_600_000,
        allowed_lifetime_max="1y",
        purge_jobs=[
            {"longest_max_lifetime": "3d", "interval": "12h"},
            {"shortest_max_lifetime": "3d", "interval": "1d"},
        ],
    )
    assert config == RetentionConfig(
        enabled=True,
        default_min_lifetime=DAY_MS,
        default_max_lifetime=365 * DAY_MS,
        allowed_lifetime_min=3_600_000,
        allowed_lifetime_max=365 * DAY_MS,
        purge_jobs=(
            RetentionPurgeJob(12 * 3_600_000, None, 3 * DAY_MS),
            RetentionPurgeJob(DAY_MS, 3 * DAY_MS, None),
        ),
    )


def test_defaults_off_with_one_daily_job() -> None:
    config = parse_config({"server_name": "test.local"}, {}).retention
    assert not config.enabled
    assert config.default_max_lifetime is None
    assert config.purge_jobs == (RetentionPurgeJob(DAY_MS, None, None),)
    assert _config(enabled=True, purge_jobs=[]).purge_jobs == config.purge_jobs


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"enabled": "yes"}, "retention.enabled"),
        ({"default_policy": {"max_lifetime": "forever"}}, "retention.default_policy.max_lifetime"),
        (
            {"default_policy": {"min_lifetime": "2d", "max_lifetime": "1d"}},
            "retention.default_policy: the default retention policy's 'min_lifetime'",
        ),
        (
            {"allowed_lifetime_min": "2d", "allowed_lifetime_max": "1d"},
            "retention.allowed_lifetime_min: can not be greater",
        ),
        ({"purge_jobs": [{"longest_max_lifetime": "1d"}]}, "retention.purge_jobs[0].interval"),
        ({"purge_jobs": [{"interval": 0}]}, "retention.purge_jobs[0].interval"),
        (
            {
                "purge_jobs": [
                    {"interval": "1d", "shortest_max_lifetime": 5, "longest_max_lifetime": 1}
                ]
            },
            "retention.purge_jobs[0].shortest_max_lifetime: can not be greater",
        ),
        ({"purge_jobs": {"interval": "1d"}}, "retention.purge_jobs: expected a list"),
        ({"enabeld": True}, 'did you mean "enabled"'),
        ({"default_policy": {"max_lifetim": 5}}, "retention.default_policy.max_lifetim"),
    ],
)
def test_bad_section_is_refused(section: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match="retention") as raised:
        _config(**section)
    assert message in str(raised.value)


def test_policy_of_content_as_synapse_records_it() -> None:
    assert policy_of_content({"max_lifetime": 5}) == RetentionPolicy(None, 5)
    assert policy_of_content({"min_lifetime": 1, "max_lifetime": 5}) == RetentionPolicy(1, 5)
    # no lifetime, or one that is not an integer (from another server): no policy
    assert policy_of_content({}) is None
    assert policy_of_content({"max_lifetime": "5"}) is None
    assert policy_of_content({"max_lifetime": 5, "min_lifetime": True}) is None


def test_effective_policy_and_expiry() -> None:
    config = _config(enabled=True, default_policy={"min_lifetime": 1, "max_lifetime": 100})
    assert effective_policy(None, config) == RetentionPolicy(1, 100)
    assert effective_policy(RetentionPolicy(None, 50), config) == RetentionPolicy(1, 50)
    policy = RetentionPolicy(None, 100)
    assert is_expired(is_state=False, origin_server_ts=899, policy=policy, now_ms=1000)
    assert not is_expired(is_state=False, origin_server_ts=900, policy=policy, now_ms=1000)
    assert not is_expired(is_state=True, origin_server_ts=0, policy=policy, now_ms=1000)
    assert not is_expired(is_state=False, origin_server_ts=0, policy=RetentionPolicy(), now_ms=1000)
