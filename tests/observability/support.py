"""Helpers of the observability tests: scraping and reading Prometheus metrics."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Scrape:
    """One scrape, parsed with prometheus-client's own parser."""

    text: str
    samples: list[Sample]
    types: dict[str, str]  # family name -> type

    @staticmethod
    def parse(text: str) -> Scrape:
        samples: list[Sample] = []
        types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            samples.extend(family.samples)
        return Scrape(text, samples, types)

    def value(self, metric: str, /, **labels: str) -> float:
        """The sum of the samples called ``metric`` whose labels include ``labels``
        (0 when there is none)."""
        return sum(s.value for s in self.matching(metric, labels))

    def matching(self, name: str, labels: Mapping[str, str] | None = None) -> list[Sample]:
        wanted = labels or {}
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in wanted.items())
        ]

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


async def scrape(url: str) -> tuple[int, str, str]:
    """GET ``url``: status, Content-Type and body."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()
