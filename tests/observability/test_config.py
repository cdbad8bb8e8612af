"""The metrics options: enable_metrics, listeners of type metrics, the metrics resource."""

from __future__ import annotations

import pytest

from homeserver.config import ConfigError, parse_config


def config(**raw: object) -> object:
    return parse_config({"server_name": "test.local", **raw}, environ={})


def test_enable_metrics_defaults_to_false() -> None:
    parsed = parse_config({"server_name": "test.local"}, environ={})
    assert parsed.enable_metrics is False
    assert parse_config(
        {"server_name": "test.local", "enable_metrics": True}, environ={}
    ).enable_metrics


def test_a_metrics_listener_in_synapses_shape() -> None:
    parsed = parse_config(
        {
            "server_name": "test.local",
            "enable_metrics": True,
            "listeners": [
                {"port": 8008, "resources": [{"names": ["client", "metrics"]}]},
                {"port": 9000, "type": "metrics", "bind_addresses": ["::1", "127.0.0.1"]},
            ],
        },
        environ={},
    )
    http, metrics = parsed.listeners
    assert http.type == "http" and http.serves("metrics")
    assert metrics.type == "metrics" and metrics.port == 9000
    assert metrics.bind_addresses == ("::1", "127.0.0.1")
    assert metrics.resources == ()
    assert not any("enable_metrics" in warning for warning in parsed.ignored_options)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"enable_metrics": "sometimes"}, "enable_metrics"),
        ({"listeners": [{"port": 9000, "type": "manhole"}]}, "listeners[0].type"),
        ({"listeners": [{"port": 9000}]}, "listeners[0].resources"),
        ({"listeners": [{"type": "metrics"}]}, "listeners[0].port"),
        (
            {"listeners": [{"port": 9000, "resources": [{"names": ["metrix"]}]}]},
            "listeners[0].resources[0].names",
        ),
    ],
)
def test_bad_metrics_options_name_their_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**raw)
    assert message in str(caught.value)
