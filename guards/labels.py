"""Labels every stored record carries (28CFR23.20(g)-(h)) and the predicate recorded on it."""
from __future__ import annotations

from datetime import datetime, timedelta

from pipeline.models import Labels, RecordedPredicate, Tasking
from pipeline.settings import Settings

FIVE_YEARS = timedelta(days=5 * 365)


def retention(tasking: Tasking, settings: Settings) -> timedelta:
    days = settings.retention_days_criminal if tasking.kind == "criminal_predicate" else settings.retention_days_noncriminal
    return min(timedelta(days=days), FIVE_YEARS)


def labels_for(tasking: Tasking, collected_at: datetime, settings: Settings) -> Labels:
    # Automated collection is never criminal intelligence by itself: that takes an analyst's review
    # under an approved criminal predicate. Open sources are of unknown reliability until evaluated.
    due = (collected_at + retention(tasking, settings)).date()
    return Labels(
        sensitivity="law_enforcement_sensitive",
        source_reliability="unknown",
        content_validity="cannot_be_judged",
        submitting_agency=settings.submitting_agency,
        control_official=settings.control_official,
        criminal_intelligence=False,
        review_status="unreviewed",
        review_by=due,
        purge_by=due,
    )


def recorded_predicate(tasking: Tasking) -> RecordedPredicate:
    if not (tasking.approved_by and tasking.approved_at):  # not an assert: `python -O` would drop it
        raise ValueError(f"tasking {tasking.id} is not approved: only approved taskings reach labelling")
    return RecordedPredicate(
        tasking_id=tasking.id, kind=tasking.kind, case_number=tasking.case_number, predicate=tasking.predicate,
        criminal_activity=tasking.criminal_activity, approved_by=tasking.approved_by, approved_at=tasking.approved_at)
