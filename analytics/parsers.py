"""The ingest endpoint's parser: the fast path first (:mod:`analytics.ingest.decode`), plain JSON otherwise."""

from __future__ import annotations

from typing import Any

from analytics.ingest.decode import decode_batch
from modelhub.api.parsers import BoundedJSONParser


class IngestJSONParser(BoundedJSONParser):
    """``POST /analytics/events``: the same bounds and errors as every JSON body. A body whose events all
    pass the typed decode becomes a :class:`~analytics.ingest.decode.DecodedBatch`; any other is parsed as
    JSON and checked event by event (which reports each problem by index)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        raw = self.read(stream)
        return decode_batch(raw) or self.loads(raw)
