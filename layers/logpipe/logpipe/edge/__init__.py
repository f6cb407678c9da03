"""The HTTP edge: what turns a request into the common list of items, before the shared batch path."""
