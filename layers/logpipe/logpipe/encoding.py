"""Byte encodings shared by the edge (API Gateway's base64 bodies) and the sink (the Kafka event's base64 values)."""

import binascii


def strict_base64(encoded: str) -> bytes:
    """Strict base64: binascii checks the alphabet and padding in C, several times faster than b64decode's
    validate=True (a regular expression over the whole value). Raises ValueError (binascii.Error, or a str that
    is not ASCII)."""
    return binascii.a2b_base64(encoded, strict_mode=True)
