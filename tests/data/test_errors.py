"""ErrorReport: counts by reason that survive a checkpoint and summarise for logs."""

from __future__ import annotations

import json

import pytest

from taskmix.data.report import ErrorReport
from taskmix.errors import RecordError


def filled_report() -> ErrorReport:
    report = ErrorReport()
    report.skip(RecordError("malformed JSON", where="f.jsonl:3"))
    report.skip(RecordError("malformed JSON", where="f.jsonl:9"))
    report.drop("keep_short returned None", where="f.jsonl:4")
    report.truncated["inputs"] += 5
    return report


def test_summary_and_as_dict_name_every_count():
    report = filled_report()
    assert report.summary() == {"skipped": 2, "truncated": 5, "dropped": 1}
    assert report.as_dict() == {
        "skipped": {"malformed JSON": 2},
        "truncated": {"inputs": 5},
        "dropped": {"keep_short returned None": 1},
        "examples": [
            "f.jsonl:3: malformed JSON",
            "f.jsonl:9: malformed JSON",
            "f.jsonl:4: dropped: keep_short returned None",
        ],
    }
    assert ErrorReport().summary() == {"skipped": 0, "truncated": 0, "dropped": 0}


def test_state_round_trips_through_json_in_place():
    state = json.loads(json.dumps(filled_report().state_dict()))
    restored = ErrorReport()
    skipped = restored.skipped  # references held elsewhere see the restored counts
    restored.load_state_dict(state)
    assert restored.skipped is skipped and restored.as_dict() == filled_report().as_dict()
    restored.skip(RecordError("empty", where="f.jsonl:10"))
    assert restored.skipped == {"malformed JSON": 2, "empty": 1}


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"skipped": {}, "truncated": {}},  # no 'dropped'
        {"skipped": {"x": -1}, "truncated": {}, "dropped": {}},
        {"skipped": {"x": 1.5}, "truncated": {}, "dropped": {}},
        {"skipped": {}, "truncated": {}, "dropped": {}, "examples": "not a list"},
    ],
)
def test_a_malformed_state_is_a_clear_error_and_changes_nothing(bad):
    report = filled_report()
    with pytest.raises(ValueError, match="error report state"):
        report.load_state_dict(bad)
    assert report.as_dict() == filled_report().as_dict()


def test_only_the_first_messages_are_kept_but_every_record_is_counted():
    report = ErrorReport()
    for i in range(ErrorReport.MAX_EXAMPLES + 5):
        report.skip(RecordError("bad", where=f"f:{i}"))
    assert report.total_skipped() == ErrorReport.MAX_EXAMPLES + 5
    assert len(report.examples) == ErrorReport.MAX_EXAMPLES
