"""osprof-api: the trace store over HTTP, for Grafana and the like."""
