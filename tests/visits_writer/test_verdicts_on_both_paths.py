"""Both connectors of the visits writer give every record the shared rule's verdict (issue 22, point 6).

The edge records (:mod:`visits_writer.edge_records`) go through the writer on each connector inside
``test_stream.py``'s exactly-once test, which shares its writer processes with them: each record must land in
the table, with the dead-letter reason and detail, that
:func:`streamwatch_common.visit_record.classify_values` (the observer's rule too) gives it, and a visit must
hold the fields that rule reads from it (:func:`visits_writer.verdicts.assert_edge_records_landed`). This
module checks that the records cover every verdict.
"""

from __future__ import annotations

from visits_writer.edge_records import EDGE_RECORDS
from visits_writer.verdicts import shared_verdicts

from streamwatch_visits_writer.schema import REASON_EMPTY, REASON_MISSING, REASON_UNPARSEABLE


def test_the_edge_records_cover_every_verdict() -> None:
    reasons = {reason for reason, _detail, _visit in shared_verdicts()}
    assert reasons == {None, REASON_EMPTY, REASON_UNPARSEABLE, REASON_MISSING}
    assert len({case for case, _value in EDGE_RECORDS}) == len(EDGE_RECORDS)
