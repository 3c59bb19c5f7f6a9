"""One job per partitions definition, so a run request names a job and partition keys only."""

import dagster as dg

INGEST_JOB = "ingest_job"
DAILY_JOB = "daily_aggregates_job"
MONTHLY_JOB = "monthly_aggregates_job"


def build_jobs() -> dict:
    return {
        INGEST_JOB: dg.define_asset_job(
            INGEST_JOB,
            selection=dg.AssetSelection.assets("raw_events", "event_data", "rejected_events"),
            description="Parse pull hours into raw_events, event_data and rejected_events.",
        ),
        DAILY_JOB: dg.define_asset_job(
            DAILY_JOB,
            selection=dg.AssetSelection.assets("dau", "event_activity"),
            description="Recount dau and event_activity for event days.",
        ),
        MONTHLY_JOB: dg.define_asset_job(
            MONTHLY_JOB,
            selection=dg.AssetSelection.assets("mau"),
            description="Recount mau for event months.",
        ),
    }
