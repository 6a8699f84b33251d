"""The HTTP side of ``advisering serve``: the ingest, source keys, the OpenAPI document."""
