"""Protocol decoders: one module per intake (native batch, OTLP, Loki push, Elasticsearch _bulk), each a function from
a request body to the common list of items, knowing nothing of Kafka or HTTP answers."""
