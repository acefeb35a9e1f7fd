"""The HTTP API: thin FastAPI routers over the ingest and query services."""
