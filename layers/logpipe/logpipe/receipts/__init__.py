"""Receipts: what the write path records about each accepted event id, so the read side can say where it is.

The ingest path records the ids Kafka acknowledged (`accepted`, in Redis) and the sink removes them once settled;
the sink records the ids it dead-lettered (`outcomes`, in PostgreSQL beside the stored ids). The status route reads
both.
"""
