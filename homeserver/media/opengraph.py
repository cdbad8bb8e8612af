"""A page's OpenGraph properties (``og:*`` meta tags), for URL previews."""

from __future__ import annotations

from html.parser import HTMLParser

_OG_KEYS = ("og:title", "og:description", "og:image", "og:type", "og:url", "og:site_name")


class _OpenGraphParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.title: str | None = None
        self.description: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.title is None:
            self._in_title = True
        if tag != "meta":
            return
        values = dict(attrs)
        key = values.get("property") or values.get("name") or ""
        content = values.get("content")
        if content is None:
            return
        if key in _OG_KEYS and key not in self.og:
            self.og[key] = content.strip()
        elif key == "description" and self.description is None:
            self.description = content.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data


def parse_open_graph(html: str) -> dict[str, str]:
    """The page's OpenGraph properties, falling back to <title> and meta description."""
    parser = _OpenGraphParser()
    parser.feed(html)
    parser.close()
    og = dict(parser.og)
    if "og:title" not in og and parser.title and parser.title.strip():
        og["og:title"] = parser.title.strip()
    if "og:description" not in og and parser.description:
        og["og:description"] = parser.description
    return og
