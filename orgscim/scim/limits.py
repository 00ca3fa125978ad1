"""The limits orgscim publishes and enforces (RFC 7644 §4: ``filter.maxResults``, ``bulk.maxOperations``,
``bulk.maxPayloadSize``), and the internal budgets that keep one request's cost bounded."""

from __future__ import annotations

DEFAULT_COUNT = 100
MAX_COUNT = 1000
MAX_BULK_OPERATIONS = 1000
MAX_BULK_PAYLOAD = 1_048_576
MAX_LISTED_MEMBERS = 10_000  # member rows per list page of groups; the page is cut short (itemsPerPage) past it
MAX_BULK_REFERENCES = 1000  # bulkId references per operation (a group may list every user of the request)
PATCH_RETRIES = 5
