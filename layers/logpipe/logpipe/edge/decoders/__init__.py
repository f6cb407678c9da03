"""Protocol decoders: one module per intake, each from a request body to the common list of items."""
