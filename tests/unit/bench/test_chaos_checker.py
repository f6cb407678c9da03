"""The chaos checker (bench/chaos/checker.py): the verdicts and per-fault figures it draws from a ledger."""

import sys
from collections import Counter

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench" / "chaos"))

from checker import FaultRun, check, fault_figures
from lag import Sample
from ledger import Attempt, Ledger, Settled


def ledger_of(acknowledged: list[str], refused: list[str], sent_at: float = 100.0) -> Ledger:
    ledger = Ledger()
    ledger.settle(Settled("single_keyed", sent_at), acknowledged, refused)
    return ledger


def test_every_acknowledged_event_missing_doubled_or_refused_but_stored_is_named() -> None:
    ledger = ledger_of(["kept", "doubled", "lost"], ["refused"])
    stored = Counter({"kept": 1, "doubled": 2, "refused": 1, "retried-without-key": 1})
    letters = [{"x-dlq-reason": "unstorable"}, {"x-dlq-attempts": "3"}]

    verdicts = check(ledger, stored, letters, [])

    assert verdicts["lost"] == {"count": 1, "ids": ["lost"]}
    assert verdicts["duplicated"] == {"count": 1, "ids": ["doubled"]}
    assert verdicts["refused_but_stored"] == {"count": 1, "ids": ["refused"]}
    assert verdicts["dead_letters_without_reason"] == {"count": 1, "of": 2}


def test_a_clean_run_passes_every_check() -> None:
    ledger = ledger_of(["a", "b"], ["r"])
    ledger.attempt(Attempt("single_keyed", 100.0, 0.01, 202, False))
    ledger.attempt(Attempt("single_keyed", 101.0, 0.01, 503, True))

    verdicts = check(ledger, Counter({"a": 1, "b": 1}), [{"x-dlq-reason": "expired"}], [])

    assert all(found["count"] == 0 for found in verdicts.values())


def test_every_answer_500_fails_the_run_named_by_time_kind_and_fault() -> None:
    runs = [
        FaultRun("kafka_kill", injected_at=100.0, restored_at=110.0, slot_end=130.0),
        FaultRun("runner_kill", injected_at=130.0, restored_at=135.0, slot_end=150.0),
    ]
    ledger = ledger_of(["a"], [])
    for attempt in (
        Attempt("otlp_json", 131.0, 0.01, 500, False),
        Attempt("single_plain", 50.0, 0.01, 500, False),  # during the warm-up, before any fault
        Attempt("single_keyed", 102.0, 0.01, 503, True),
        Attempt("loki_json", 111.5, 0.02, 500, False),
        Attempt("single_keyed", 112.0, 0.01, 202, False),
    ):
        ledger.attempt(attempt)

    verdicts = check(ledger, Counter({"a": 1}), [], runs)

    assert verdicts["answers_500"] == {
        "count": 3,
        "attempts": [
            {"at": "1970-01-01T00:00:50.000+00:00", "kind": "single_plain", "fault": "warm-up"},
            {"at": "1970-01-01T00:01:51.500+00:00", "kind": "loki_json", "fault": "kafka_kill"},
            {"at": "1970-01-01T00:02:11.000+00:00", "kind": "otlp_json", "fault": "runner_kill"},
        ],
    }


def test_a_faults_window_runs_from_its_first_to_its_last_failed_answer() -> None:
    run = FaultRun("kafka_kill", injected_at=100.0, restored_at=110.0, slot_end=130.0)
    attempts = [
        Attempt("single_keyed", 99.0, 0.01, 202, False),  # before the fault: not counted
        Attempt("single_keyed", 101.0, 0.01, 503, True),
        Attempt("single_plain", 102.0, 0.10, 500, False),
        Attempt("otlp_json", 104.0, 0.02, 202, False),
        Attempt("single_plain", 105.0, 10.0, 0, False),  # unanswered until 115
        Attempt("single_keyed", 111.0, 0.2, 202, False),
    ]
    samples = [Sample(109.0, None, False), Sample(111.0, 5, False), Sample(113.0, 0, True)]
    ledger = ledger_of(["acked", "lost"], [], sent_at=101.0)

    figures = fault_figures(run, attempts, samples, ledger, Counter({"acked": 1}))

    assert figures["unavailable_s"] == 14.0  # 101 -> 115
    assert figures["unavailable_from_injection_s"] == 1.0
    assert figures["answers_during"] == {"0": 1, "202": 2, "500": 1, "503": 1}
    assert figures["answers_500"] == 1
    assert figures["slowest_503_ms"] == 10.0 and figures["503_without_retry_after"] == 0
    assert figures["first_2xx_after_return_s"] == 1.2
    assert figures["lag_caught_up_after_return_s"] == 3.0
    assert (figures["events_acknowledged"], figures["lost"], figures["duplicated"]) == (2, 1, 0)
