"""Shipper protocol decoders (OTLP, Loki push, Elasticsearch _bulk): request bytes to the common list of items."""
