"""Every Prometheus metric advisering exposes, declared once.

Names follow ``advisering_<what>_<unit>``; counters end in ``_total``. Label
values are bounded: rule ids (operators' finite set), reasons and outcomes,
never a citizen, case or event id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

EVENTS_PROCESSED = Counter(
    "advisering_events_processed_total",
    "Case events taken off advisering.case-events, by outcome (accepted, dead_lettered).",
    ["outcome"],
)
DEAD_LETTERS = Counter(
    "advisering_dead_letters_total",
    "Events sent to advisering.dead-letters, by machine-readable reason.",
    ["reason"],
)
COMMIT_HOLES_REFILLED = Counter(
    "advisering_worker_commit_holes_refilled_total",
    "Partitions read again from their committed offset because Faust's offset books held "
    "a hole no record in flight could fill (docs/operators.md, Delivery guarantees).",
)
OFFSET_JUMPS = Counter(
    "advisering_worker_offset_jumps_total",
    "Jumps in the offsets a worker read from an input partition: read_again (sought back "
    "to the record after the last one read) or gap_accepted (the same jump again: the "
    "records in between are absent, e.g. a transaction marker).",
    ["action"],
)
RULE_MATCHES = Counter(
    "advisering_rule_matches_total",
    "Events that met a rule's when-conditions, per rule.",
    ["rule"],
)
NOTIFICATIONS_EMITTED = Counter(
    "advisering_notifications_emitted_total",
    "Notifications sent to advisering.notifications, per rule.",
    ["rule"],
)
NOTIFICATIONS_THROTTLED = Counter(
    "advisering_notifications_throttled_total",
    "Notifications held back by a rule's throttle window, per rule.",
    ["rule"],
)
NOTIFICATIONS_SUPPRESSED = Counter(
    "advisering_notifications_suppressed_total",
    "Rule matches suppressed because the trigger case is foelsomme, per rule.",
    ["rule"],
)
REPEATS_SKIPPED = Counter(
    "advisering_repeats_skipped_total",
    "Work not done twice: each citizen event whose (source, id) was already processed, "
    "and each notification of a new event whose id was already sent.",
)
STALE_EVENTS = Counter(
    "advisering_stale_events_total",
    "Events older than the overview's news of their case (the case was left as it was).",
)
CITIZEN_STATE_LIMITS = Counter(
    "advisering_citizen_state_limit_total",
    "Citizen events refused (dead-lettered) because the citizen's state would pass a limit, "
    "by limit (max_open_cases, max_seen_events, max_tombstones, max_state_bytes).",
    ["limit"],
)
CITIZEN_STATE_TRIMMED = Counter(
    "advisering_citizen_state_trimmed_total",
    "Oldest sent notification ids and throttle windows forgotten to keep a citizen's "
    "state within its limits.",
)
PROCESSING_SECONDS = Histogram(
    "advisering_processing_seconds",
    "Time to process one citizen event in the engine, in seconds.",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)
NOTIFICATION_LATENCY_SECONDS = Histogram(
    "advisering_notification_latency_seconds",
    "From a case event's publication (its record's timestamp on advisering.case-events) to "
    "Kafka's acknowledgement of a notification it caused, for events processed where they "
    "were read (one hop), in seconds.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
SEND_BATCHES = Counter(
    "advisering_worker_send_batches_total",
    "Record batches the worker handed to Kafka (one per topic-partition per batch of events).",
)
BATCH_EVENTS = Histogram(
    "advisering_worker_batch_events",
    "Events per batch the worker's agent took from its stream.",
    ["agent"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
CITIZEN_EVENTS_ROUTED = Counter(
    "advisering_worker_citizen_events_total",
    "Citizen copies of valid case events, by route: processed where they were read (direct) "
    "or sent through the repartition topic (repartitioned).",
    ["route"],
)
# The gauges are one process's (the worker's). multiprocess_mode="max": where
# several processes count into one directory (several serve processes), each
# still shows as one series, not one per pid; elsewhere the mode is ignored.
RULESET_RULES = Gauge(
    "advisering_ruleset_rules",
    "Number of enabled rules in the rule set the worker applies.",
    multiprocess_mode="max",
)
RULESET_VERSION = Info(
    "advisering_ruleset",
    "The version of the rule set the worker applies (local = ADVISERING_RULES_DIR).",
)
RULESETS_REJECTED = Counter(
    "advisering_rulesets_rejected_total",
    "Rule sets seen on advisering.rules and not applied, by reason: incomplete, invalid, "
    "signature (unsigned, unknown key or a signature or rule that does not verify), stale "
    "(older than the applied set), error.",
    ["reason"],
)
#: The bounded reasons of RULESETS_REJECTED, each shown (as 0) before it first happens.
RULESET_REJECT_REASONS = ("incomplete", "invalid", "signature", "stale", "error")
for _reason in RULESET_REJECT_REASONS:
    RULESETS_REJECTED.labels(_reason)
RULESET_RECORDS_INVALID = Counter(
    "advisering_ruleset_records_invalid_total",
    "Records on advisering.rules that were not a valid rule, tombstone or manifest and were "
    "skipped, by reason (not_json, not_object, schema, key, too_large, too_deep).",
    ["reason"],
)
RULES_WATCHER_UP = Gauge(
    "advisering_rules_watcher_up",
    "1 while the worker's rules watcher thread follows advisering.rules, 0 once it ended.",
    multiprocess_mode="max",
)
WORKER_INPUT_LAG = Gauge(
    "advisering_worker_input_lag_records",
    "Records of the worker's input partitions not yet committed (the partitions' end as last "
    "fetched minus the committed offset), by input (case_events, citizen_events); read at scrape.",
    ["input"],
    multiprocess_mode="max",
)
WORKER_CRASHED = Gauge(
    "advisering_worker_crashed",
    "1 once the worker's Faust app crashed (the process is exiting), else 0.",
    multiprocess_mode="max",
)
PUBLISHED_EVENTS = Counter(
    "advisering_published_events_total",
    "Events offered to the publisher, by outcome (accepted, rejected).",
    ["outcome"],
)
INGEST_REQUESTS = Counter(
    "advisering_ingest_requests_total",
    "HTTP ingest requests, by response status.",
    ["status"],
)
INGEST_EVENTS = Counter(
    "advisering_ingest_events_total",
    "Events offered over HTTP ingest, by outcome (accepted, rejected) and reason.",
    ["outcome", "reason"],
)
INGEST_PRODUCE_SECONDS = Histogram(
    "advisering_ingest_produce_seconds",
    "Time from producing a request's events until Kafka confirmed all of them, in seconds.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INBOX_STORED = Counter(
    "advisering_inbox_notifications_stored_total",
    "Notifications stored in the inbox for the first time (repeats are not counted).",
)
INBOX_UNREADABLE = Counter(
    "advisering_inbox_unreadable_total",
    "Records on advisering.notifications the inbox could not read.",
)
FEEDBACK = Counter(
    "advisering_feedback_total",
    "Caseworkers' feedback on notifications, per rule and verdict (useful, not_useful).",
    ["rule", "verdict"],
)
WEBHOOK_DELIVERIES = Counter(
    "advisering_webhook_deliveries_total",
    "Webhook outcomes: delivered and failed (given up, dead-lettered) once per notification, "
    "retried once per failed try that is tried again.",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "advisering_webhook_seconds",
    "Duration of one webhook HTTP attempt (answered, timed out or refused), in seconds.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EMAIL_DIGESTS = Counter(
    "advisering_email_digests_total",
    "E-mail digests (one per recipient and interval), by outcome: sent, retried (kept for "
    "the next interval), failed (given up or unaddressable, dead-lettered).",
    ["outcome"],
)
DELIVERY_UNROUTED = Counter(
    "advisering_delivery_unrouted_total",
    "Notifications whose recipient matches no delivery channel (they reach the inbox only).",
)
DELIVERY_REDISPATCHED = Counter(
    "advisering_delivery_redispatched_total",
    "Channel deliveries still pending at start-up (the service stopped before they settled) "
    "and sent again; a webhook receiver may see these twice, with the same Idempotency-Key.",
)
SOURCES_RELOADS = Counter(
    "advisering_sources_reloads_total",
    "Changes of the sources file (ADVISERING_SOURCES_FILE) seen by serve or the worker: "
    "reloaded, or invalid (the last good file stays in force).",
    ["outcome"],
)
INBOX_TOKENS_REFUSED = Counter(
    "advisering_inbox_tokens_refused_total",
    "Caseworker tokens the inbox answered 401, by reason (advisering.inbox.tokens.REASONS).",
    ["reason"],
)
TOKEN_REVOCATION_RELOADS = Counter(
    "advisering_token_revocation_reloads_total",
    "Reads of the token revocation file after it changed: loaded, or rejected (too large, "
    "too many entries or malformed; the last good list is kept).",
    ["outcome"],
)
SSE_STREAMS = Gauge(
    "advisering_sse_streams",
    "Live streams (Server-Sent Events) open now (the inbox is one process).",
    multiprocess_mode="max",
)
SSE_CLOSED = Counter(
    "advisering_sse_closed_total",
    "Live streams closed, by reason: client, overflow, write_timeout, expired, revoked, "
    "replaced (more streams than one token may hold) or shutdown.",
    ["reason"],
)
AUDIT_STORED = Counter(
    "advisering_audit_records_stored_total",
    "Audit records stored in the audit store for the first time (repeats are not counted).",
)
AUDIT_DEAD_LETTERS = Counter(
    "advisering_audit_dead_letters_total",
    "Records on advisering.audit that were no audit record, sent to the dead letters, by "
    "reason (not_json, not_an_object, invalid_field, too_large, cpr_detected).",
    ["reason"],
)
AUDIT_PRUNED = Counter(
    "advisering_audit_pruned_total",
    "Rows deleted from the audit store past ADVISERING_AUDIT_RETENTION_DAYS, by kind "
    "(disclosure, lookup).",
    ["kind"],
)
INSIGHT_LOOKUPS = Counter(
    "advisering_insight_lookups_total",
    "Citizens' insight lookups, by how they were asked (cli, api) and outcome (answered, "
    "refused: bad request, wrong role or no token).",
    ["via", "outcome"],
)
