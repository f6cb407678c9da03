import json
import uuid

from logpipe.ingest.idempotency import CompressedAnswer
from logpipe.models import BatchAccepted


def keyed_batch_answer(items: int) -> BatchAccepted:
    prefix = str(uuid.uuid4())[:-8]  # a batch's derived ids share all but their last 8 hex digits
    return BatchAccepted.model_validate(
        {
            "status": "success",
            "accepted": items,
            "rejected": 0,
            "items": [
                {"index": i, "status": "accepted", "id": f"{prefix}{i:08x}", "error": None} for i in range(items)
            ],
        }
    )


def test_a_kept_answer_comes_back_equal_and_costs_a_few_bytes_per_item() -> None:
    answer = keyed_batch_answer(1000)
    serializer = CompressedAnswer.instantiate(BatchAccepted)

    kept = serializer.to_dict(answer)

    assert serializer.from_dict(json.loads(json.dumps(kept))) == answer
    assert len(json.dumps(kept)) < 12 * 1000 < len(answer.model_dump_json()) / 7


def test_an_answer_kept_before_compression_is_read_as_it_is() -> None:
    answer = keyed_batch_answer(3)
    assert CompressedAnswer.instantiate(BatchAccepted).from_dict(answer.model_dump(mode="json")) == answer
