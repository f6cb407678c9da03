"""What a batch's refused items were, told in one line: the answer text of the protocols that report refusals as a
message (OTLP's partial success and Status, Loki's 400)."""

from logpipe.models import BatchAccepted

_REASONS_SHOWN = 5


def rejection_summary(answer: BatchAccepted, unit: str = "record", units: str = "records") -> str:
    """How many records (or entries) were refused and the first reasons, with their indexes in the request."""
    refused_items = [item for item in answer.items if item["error"] is not None]
    reasons = "; ".join(f"{unit} {item['index']}: {item['error'].message}" for item in refused_items[:_REASONS_SHOWN])
    more = len(refused_items) - _REASONS_SHOWN
    return f"{len(refused_items)} of {len(answer.items)} {units} refused: {reasons}" + (
        f"; and {more} more" if more > 0 else ""
    )
