"""Answers in a shipper protocol's own shapes: its success, partial success and error bodies (the native routes
answer in logpipe.edge.answers' format)."""
