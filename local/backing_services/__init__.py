"""logpipe's backing services run natively (no Docker): Kafka, PostgreSQL, Redis; see local/services.py."""
