"""The worker process: start-up, the rule watcher, the watchdog and the exit code.

Separate from :mod:`advisering.worker.app` (the Faust app and its agents),
which tests build without a broker; this module is what ``advisering
worker`` runs against a real cluster.
"""

from __future__ import annotations

from advisering.engine.matcher import Matcher
from advisering.engine.rules import RuleSet
from advisering.events import Vocabulary
from advisering.kafka import apply as topic_apply
from advisering.kafka.clients import configure_client_logging
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import citizen_topic_spec
from advisering.log import get_logger
from advisering.rulebook.signing import load_verify_keys
from advisering.rulebook.watch import RulesWatcher, initial_ruleset
from advisering.settings import Settings
from advisering.worker import faust_door
from advisering.worker.app import create_app
from advisering.worker.lifecycle import EXIT_FAILED, EXIT_OK, Watchdog

log = get_logger(__name__)


def replication_factor(settings: Settings, brokers: int) -> int:
    """The configured factor for internal topics, or 3 capped at the cluster's brokers."""
    return settings.worker_replication_factor or min(3, max(brokers, 1))


def ensure_citizen_topic(settings: Settings, kafka: KafkaConnection) -> int:
    """Create the repartition topic (as ``topics/`` declares it) before Faust assigns partitions.

    Faust creates an ``internal`` topic only when it first sends to it, after
    the first assignment; the correlate agent would then own no partition
    until the next rebalance.
    """
    admin = topic_apply.admin_client(kafka)
    replicas = replication_factor(settings, len(admin.list_topics(timeout=30).brokers))
    spec = citizen_topic_spec(settings.topics_dir, settings).effective(None, replicas)
    topic_apply.create_missing(admin, [spec])
    log.info("citizen_topic_ready", topic=spec.name, replicas=replicas)
    return replicas


def run_worker(settings: Settings, local: RuleSet, vocabulary: Vocabulary) -> int:
    """Run the worker until it is stopped (SIGTERM or Ctrl-C) or crashes; the exit code.

    It applies the rule set deployed on ``advisering.rules`` (or, when none is,
    the local rules directory) and follows the topic for new sets. Exit codes
    (docs/operators.md "Failures, shutdown and health"): 0 after a clean stop, 70 after
    a crash, 128 + signal when a stop outlived ``worker_shutdown_grace``, 1
    when the worker could not start. Without verify keys
    (``ADVISERING_RULES_VERIFY_KEYS_FILE``) it does not start at all
    (SigningKeyError, a user error: exit 2).
    """
    keys = load_verify_keys(settings.rules_verify_keys_file)
    configure_client_logging(settings.kafka_log_interval)
    # One connection for every client of the process (admin, rules reader and
    # watcher, Faust); a wrong security setting stops the worker here.
    kafka = KafkaConnection.from_settings(settings)
    replicas = ensure_citizen_topic(settings, kafka)
    ruleset, state, end = initial_ruleset(kafka, vocabulary, local, keys,
                                          settings.rules_record_max_bytes)
    worker_app = create_app(settings, Matcher(ruleset), vocabulary, replicas)
    watcher = RulesWatcher(kafka, vocabulary, worker_app.holder, state, end, keys)
    worker_app.status.watcher_alive = lambda: watcher.alive
    watchdog = Watchdog(worker_app.app, settings, watcher.stop)
    watcher.start()
    watchdog.start()
    log.info("worker_starting", rules=len(ruleset.rules), ruleset=ruleset.version,
             verify_keys=sorted(keys.keys),
             app_id=settings.worker_app_id, **kafka.describe(),
             store=settings.worker_store, shutdown_grace=settings.worker_shutdown_grace)
    worker_class = faust_door.worker_class(watchdog.on_signal)
    worker = worker_class(worker_app.app, loglevel=settings.log_level.lower(),
                          redirect_stdouts=False, override_logging=False)
    started = EXIT_OK
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:  # mode ends with sys.exit: 1 when it failed or crashed
        started = EXIT_FAILED if exc.code not in (None, 0) else EXIT_OK
    code = watchdog.finish()
    return code if code != EXIT_OK else started
