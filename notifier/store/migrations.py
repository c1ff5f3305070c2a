"""Ordered schema migrations, one lineage for both backends.

Never edit a migration that has shipped: add a new one at the end. Each is a name and a list of
portable DDL statements. Timestamps are declared TEXT (SQLite keeps the fixed-width UTC text of
base.TS_FORMAT, which sorts correctly) and their columns end in `_at`; PostgreSQL gets
TIMESTAMPTZ for them. Booleans are INTEGER 0/1 and structured values JSON text on both. A
migration that cannot be written portably gives a dict {"sqlite": [...], "postgres": [...]}.
"""

from __future__ import annotations

import re

import sqlite_utils
from sqlite_utils import Migrations

# Issue 15: an alert row is one episode (notifier/alerts.py): `episode_key` names what it is
# about ("feed_stale:3", "backlog", "expired:42"); created_at is its start, resolved_at its
# end. At most one open episode per key, enforced here, so two workers (or a restart) never
# open, and so never mail, the same one twice.
_ALERT_EPISODES = [
    "ALTER TABLE alerts ADD COLUMN episode_key TEXT",
    "ALTER TABLE alerts ADD COLUMN subject TEXT",
    "ALTER TABLE alerts ADD COLUMN acknowledged_at TEXT",
    "ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT",
    # The mails: the start mail, the recovery mail, and when ops were last mailed (start or
    # reminder). Each is set in the transaction that queues that mail.
    "ALTER TABLE alerts ADD COLUMN notification_id INTEGER "
    "REFERENCES notifications(id) ON DELETE SET NULL",
    "ALTER TABLE alerts ADD COLUMN end_notification_id INTEGER "
    "REFERENCES notifications(id) ON DELETE SET NULL",
    "ALTER TABLE alerts ADD COLUMN mailed_at TEXT",
    # Before this, raise_alert kept one open alert per kind (a race could open two): keep the
    # oldest open one per kind, and key each by its kind.
    "UPDATE alerts SET resolved_at = created_at WHERE resolved_at IS NULL AND id NOT IN "
    "(SELECT MIN(id) FROM alerts WHERE resolved_at IS NULL GROUP BY kind)",
    "UPDATE alerts SET episode_key = kind",
    "CREATE UNIQUE INDEX alerts_open_episode ON alerts (episode_key) WHERE resolved_at IS NULL",
    "CREATE INDEX alerts_resolved ON alerts (resolved_at)",
    # The alerts job looks for newly expired deliveries every minute (store expired_deliveries):
    # only the expired rows, not every failed row ever kept.
    "CREATE INDEX deliveries_expired ON deliveries (updated_at) "
    "WHERE state = 'failed' AND reason = 'expired'",
]

# Issue 12 (migration 0019): uniqueness per kind of subscription, and the channel of a delivery.
_CHANNEL_INDEXES = [
    "CREATE UNIQUE INDEX subscribers_email ON subscribers (email) WHERE channel = 'email'",
    "CREATE UNIQUE INDEX subscribers_target ON subscribers (channel, target_url) "
    "WHERE channel <> 'email'",
    "CREATE INDEX subscribers_owner ON subscribers (email, channel)",
]
_CHANNEL_DELIVERIES = [
    "ALTER TABLE deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT 'email' "
    "CHECK (channel IN ('email', 'slack', 'teams', 'webhook'))",
    "DROP INDEX deliveries_pending",
    "CREATE INDEX deliveries_pending ON deliveries "
    "(priority, notification_id, language, timezone, id) "
    "WHERE state = 'pending' AND channel = 'email'",
    "CREATE INDEX deliveries_channel_pending ON deliveries (priority, next_attempt_at, id) "
    "WHERE state = 'pending' AND channel <> 'email'",
]

SCHEMA: list[tuple[str, list[str] | dict[str, list[str]]]] = [
    (
        "0001_feeds",
        [
            """CREATE TABLE meta (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE feeds (
                id INTEGER PRIMARY KEY,
                url TEXT NOT NULL UNIQUE,
                title TEXT,
                page_url TEXT,
                etag TEXT,
                last_modified TEXT,
                body_hash TEXT,
                baseline_at TEXT,
                last_poll_at TEXT,
                last_success_at TEXT,
                last_error TEXT,
                last_error_at TEXT,
                consecutive_failures INTEGER NOT NULL DEFAULT 0,
                components_synced_at TEXT,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE incidents (
                id INTEGER PRIMARY KEY,
                feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('incident', 'maintenance')),
                title TEXT NOT NULL,
                link TEXT NOT NULL,
                components TEXT,
                impact TEXT,
                scheduled_start_at TEXT,
                scheduled_end_at TEXT,
                content_hash TEXT,
                first_seen_at TEXT NOT NULL,
                last_changed_at TEXT NOT NULL,
                edited_at TEXT,
                enriched_at TEXT,
                UNIQUE (feed_id, key)
            )""",
            """CREATE TABLE updates (
                id INTEGER PRIMARY KEY,
                incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
                posted_at TEXT NOT NULL,
                status TEXT NOT NULL,
                seq INTEGER NOT NULL,
                text TEXT NOT NULL,
                first_seen_at TEXT NOT NULL,
                edited_at TEXT,
                UNIQUE (incident_id, posted_at, status, seq)
            )""",
            """CREATE TABLE changes (
                id INTEGER PRIMARY KEY,
                feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
                incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
                update_id INTEGER NOT NULL UNIQUE REFERENCES updates(id) ON DELETE CASCADE,
                type TEXT NOT NULL CHECK (type IN ('new_incident', 'new_update')),
                status TEXT NOT NULL,
                posted_at TEXT NOT NULL,
                count INTEGER NOT NULL,
                detected_at TEXT NOT NULL,
                processed_at TEXT
            )""",
            "CREATE INDEX changes_unprocessed ON changes (processed_at, id)",
            """CREATE TABLE components (
                id TEXT PRIMARY KEY,
                feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                description TEXT,
                group_id TEXT,
                is_group INTEGER NOT NULL DEFAULT 0,
                position INTEGER NOT NULL DEFAULT 0,
                status TEXT,
                only_show_if_degraded INTEGER NOT NULL DEFAULT 0,
                showcase INTEGER NOT NULL DEFAULT 1,
                synced_at TEXT NOT NULL
            )""",
            "CREATE INDEX components_feed ON components (feed_id, position)",
        ],
    ),
    (
        "0002_subscribers",
        [
            """CREATE TABLE subscribers (
                id INTEGER PRIMARY KEY,
                email TEXT NOT NULL UNIQUE,
                language TEXT NOT NULL CHECK (language IN ('de', 'en')),
                timezone TEXT NOT NULL,
                all_components INTEGER NOT NULL DEFAULT 1,
                notify_incidents INTEGER NOT NULL DEFAULT 1,
                notify_maintenance INTEGER NOT NULL DEFAULT 1,
                state TEXT NOT NULL
                    CHECK (state IN ('pending', 'confirmed', 'unsubscribed', 'suppressed')),
                token_nonce TEXT,
                link_nonce TEXT NOT NULL,
                suppressed_reason TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                confirmed_at TEXT,
                unsubscribed_at TEXT,
                suppressed_at TEXT
            )""",
            "CREATE INDEX subscribers_state ON subscribers (state, language)",
            """CREATE TABLE subscriber_components (
                subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
                component_id TEXT NOT NULL,
                PRIMARY KEY (subscriber_id, component_id)
            )""",
            "CREATE INDEX subscriber_components_component ON subscriber_components (component_id)",
            """CREATE TABLE consents (
                id INTEGER PRIMARY KEY,
                subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
                consent_version TEXT NOT NULL,
                language TEXT NOT NULL,
                signup_at TEXT NOT NULL,
                signup_ip TEXT,
                signup_user_agent TEXT,
                confirmed_at TEXT,
                confirm_ip TEXT,
                confirm_user_agent TEXT,
                withdrawn_at TEXT
            )""",
            "CREATE INDEX consents_subscriber ON consents (subscriber_id)",
            """CREATE TABLE confirmation_sends (
                id INTEGER PRIMARY KEY,
                subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
                sent_at TEXT NOT NULL
            )""",
            "CREATE INDEX confirmation_sends_subscriber "
            "ON confirmation_sends (subscriber_id, sent_at)",
            """CREATE TABLE rate_limits (
                key TEXT PRIMARY KEY,
                count INTEGER NOT NULL,
                expires_at TEXT NOT NULL
            )""",
        ],
    ),
    (
        "0003_notifications",
        [
            """CREATE TABLE notifications (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN
                    ('incident', 'maintenance', 'announcement', 'confirmation', 'receipt')),
                feed_id INTEGER REFERENCES feeds(id) ON DELETE SET NULL,
                incident_id INTEGER REFERENCES incidents(id) ON DELETE SET NULL,
                change_id INTEGER UNIQUE REFERENCES changes(id) ON DELETE SET NULL,
                announcement_id INTEGER,
                resend_of INTEGER REFERENCES notifications(id) ON DELETE SET NULL,
                content TEXT NOT NULL,
                audience TEXT,
                review_state TEXT NOT NULL DEFAULT 'none'
                    CHECK (review_state IN
                        ('none', 'pending', 'approved', 'discarded', 'timed_out')),
                review_deadline_at TEXT,
                reviewed_by TEXT,
                created_at TEXT NOT NULL,
                expires_at TEXT NOT NULL,
                fanned_out_at TEXT
            )""",
            "CREATE INDEX notifications_incident ON notifications (incident_id, id)",
            "CREATE INDEX notifications_review ON notifications (review_state, review_deadline_at)",
            """CREATE TABLE deliveries (
                id INTEGER PRIMARY KEY,
                notification_id INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
                -- NULL only for a test send to an address that is not a subscriber.
                subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE CASCADE,
                email TEXT NOT NULL,
                language TEXT NOT NULL,
                timezone TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN
                    ('pending', 'sending', 'sent', 'failed', 'cancelled', 'suppressed')),
                reason TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TEXT NOT NULL,
                lease_owner TEXT,
                lease_expires_at TEXT,
                message_id TEXT,
                possible_duplicate INTEGER NOT NULL DEFAULT 0,
                provider_event TEXT,
                provider_event_at TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                sent_at TEXT,
                UNIQUE (notification_id, subscriber_id)
            )""",
            "CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at)",
            # The claim query walks pending rows in group order (notification, language, zone).
            "CREATE INDEX deliveries_claim ON deliveries "
            "(state, notification_id, language, timezone, id)",
            "CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id, state)",
            "CREATE INDEX deliveries_message ON deliveries (message_id)",
            """CREATE TABLE delivery_attempts (
                id INTEGER PRIMARY KEY,
                delivery_id INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
                attempted_at TEXT NOT NULL,
                outcome TEXT NOT NULL,
                status_code INTEGER,
                error TEXT,
                message_id TEXT
            )""",
            "CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id)",
            """CREATE TABLE webhook_events (
                sg_event_id TEXT PRIMARY KEY,
                event TEXT NOT NULL,
                delivery_id INTEGER,
                received_at TEXT NOT NULL
            )""",
        ],
    ),
    (
        "0004_ops",
        [
            """CREATE TABLE admin_users (
                id INTEGER PRIMARY KEY,
                username TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                created_at TEXT NOT NULL,
                last_login_at TEXT
            )""",
            """CREATE TABLE announcements (
                id INTEGER PRIMARY KEY,
                state TEXT NOT NULL CHECK (state IN ('draft', 'sent', 'discarded')),
                content TEXT NOT NULL,
                audience TEXT NOT NULL,
                incident_id INTEGER REFERENCES incidents(id) ON DELETE SET NULL,
                notification_id INTEGER REFERENCES notifications(id) ON DELETE SET NULL,
                created_by TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                sent_at TEXT
            )""",
            """CREATE TABLE alerts (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL,
                message TEXT NOT NULL,
                created_at TEXT NOT NULL,
                resolved_at TEXT
            )""",
            """CREATE TABLE audit_log (
                id INTEGER PRIMARY KEY,
                created_at TEXT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT,
                detail TEXT
            )""",
            "CREATE INDEX audit_log_time ON audit_log (created_at)",
        ],
    ),
    (
        "0005_leases",
        [
            # Named leases: which worker is the poller (only one polls at a time; a dead one's
            # lease expires and another worker takes over).
            """CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                expires_at TEXT NOT NULL,
                last_run_at TEXT
            )""",
        ],
    ),
    (
        "0006_delivery_provider_reason",
        [
            # SendGrid's reason or response with its latest event on a delivery ("Spam Content"
            # with a message-level drop, the SMTP reply with a bounce); NULL on existing rows.
            "ALTER TABLE deliveries ADD COLUMN provider_reason TEXT",
        ],
    ),
    (
        "0007_unsuppress_message_drops",
        [
            # Before 0006 every SendGrid 'dropped' event suppressed its address, also for
            # reasons about the message (notifier/hooks.py DROP_REASON_IS_ADDRESS): one flagged
            # incident mail could silence the whole list. Lift every drop suppression the
            # webhook would not make today (all but the four address reasons; a bare or unknown
            # reason included, as the webhook no longer suppresses for those either), as
            # ops' "unsuppress" would for an address that had opted in; updated_at is left as
            # it was (no portable "now" in the stored format), suppressed_at/reason are cleared.
            """UPDATE subscribers SET state = CASE WHEN unsubscribed_at IS NULL
                   OR unsubscribed_at < confirmed_at THEN 'confirmed' ELSE 'unsubscribed' END,
                   suppressed_at = NULL, suppressed_reason = NULL
               WHERE state = 'suppressed' AND confirmed_at IS NOT NULL
               AND (lower(suppressed_reason) = 'dropped'
                    OR lower(suppressed_reason) LIKE 'dropped: %')
               AND lower(suppressed_reason) NOT IN ('dropped: bounced address',
                   'dropped: spam reporting address', 'dropped: unsubscribed address',
                   'dropped: invalid')""",
        ],
    ),
    (
        "0008_time_doubt",
        [
            # Times the feed parser read with doubt (notifier.stamps), as a JSON list of lines;
            # NULL when it was sure. The ops review page marks such incidents.
            "ALTER TABLE incidents ADD COLUMN time_doubt TEXT",
        ],
    ),
    (
        "0009_update_gone_at",
        [
            # When a stored post went missing from its entry (NULL: still shown). Only a post
            # that vanishes in the same poll as another appears may be taken for that post
            # re-timed (notifier/changes.py); existing rows start as shown.
            "ALTER TABLE updates ADD COLUMN gone_at TEXT",
        ],
    ),
    (
        "0010_group_subscriptions",
        [
            # Every (group, member) pair a catalogue sync has seen, kept after the page drops or
            # moves it: a group choice covers all of them (notifier/subscriptions.py, "Groups").
            """CREATE TABLE group_memberships (
                group_id TEXT NOT NULL,
                component_id TEXT NOT NULL,
                feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
                group_name TEXT NOT NULL,
                component_name TEXT NOT NULL,
                first_seen_at TEXT NOT NULL,
                last_seen_at TEXT NOT NULL,
                PRIMARY KEY (group_id, component_id)
            )""",
            "CREATE INDEX group_memberships_component ON group_memberships (component_id)",
            """INSERT INTO group_memberships (group_id, component_id, feed_id, group_name,
                   component_name, first_seen_at, last_seen_at)
               SELECT g.id, m.id, m.feed_id, g.name, m.name, m.synced_at, m.synced_at
               FROM components m JOIN components g ON g.id = m.group_id
               WHERE g.is_group = 1 AND m.is_group = 0""",
            # Until now a group choice was stored as its members. A set holding every member of
            # a group of two or more is exactly what the old preferences page showed as that
            # group ticked (and what the group box produced): it becomes the group, so the
            # page's new promise "including ones added later" holds for what the subscriber
            # saw. Nothing else is converted: part of a group is a choice of components, a
            # group of one cannot be told from its component, and a set that lost the whole
            # group when the page grew it cannot be told from a deliberate pick. Converting
            # only ever widens what a subscriber hears about, never narrows it.
            """INSERT INTO subscriber_components (subscriber_id, component_id)
               SELECT s.id, g.id FROM subscribers s JOIN components g ON g.is_group = 1
               WHERE (SELECT COUNT(*) FROM components m
                      WHERE m.group_id = g.id AND m.is_group = 0) >= 2
               AND NOT EXISTS (SELECT 1 FROM components m
                   WHERE m.group_id = g.id AND m.is_group = 0 AND NOT EXISTS (
                       SELECT 1 FROM subscriber_components sc
                       WHERE sc.subscriber_id = s.id AND sc.component_id = m.id))
               AND NOT EXISTS (SELECT 1 FROM subscriber_components sc
                   WHERE sc.subscriber_id = s.id AND sc.component_id = g.id)""",
            """DELETE FROM subscriber_components WHERE EXISTS (
                   SELECT 1 FROM components m JOIN subscriber_components chosen
                   ON chosen.component_id = m.group_id
                   WHERE m.id = subscriber_components.component_id AND m.is_group = 0
                   AND chosen.subscriber_id = subscriber_components.subscriber_id)""",
        ],
    ),
    (
        "0011_delivery_priority",
        [
            # Issue 14: incident mail is claimed before personal mail. 0 = broadcast
            # (incident, maintenance, announcement, ops test sends: the default), 1 = personal
            # (confirmation, receipt); set once at insert (notifier/store/deliveries.py).
            "ALTER TABLE deliveries ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
            """UPDATE deliveries SET priority = 1 WHERE notification_id IN
                   (SELECT id FROM notifications WHERE kind IN ('confirmation', 'receipt'))""",
            # The claim walks only the pending rows, in claim order (priority, then group order
            # oldest notification first). Partial: sent rows, the bulk of the table, stay out.
            "CREATE INDEX deliveries_pending ON deliveries "
            "(priority, notification_id, language, timezone, id) WHERE state = 'pending'",
            # Personal mail shares one notification per (kind, minute) so it is batched like
            # any other mail; each row keeps its own lifetime (NULL: the notification's).
            "ALTER TABLE deliveries ADD COLUMN expires_at TEXT",
            "ALTER TABLE notifications ADD COLUMN batch_key TEXT",
            "CREATE UNIQUE INDEX notifications_batch ON notifications (batch_key)",
        ],
    ),
    (
        "0012_maintenance_windows",
        [
            # Issue 11: a maintenance window that moves or is cancelled is news. The count of
            # such changes is the iCalendar SEQUENCE of the maintenance (RFC 5545 3.8.7.4:
            # incremented on each revision the organizer sends); cancelled_at is set once the
            # JSON API reports it cancelled or stops listing it while it was upcoming.
            "ALTER TABLE incidents ADD COLUMN window_sequence INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE incidents ADD COLUMN cancelled_at TEXT",
        ],
    ),
    (
        "0013_window_changes",
        {
            # Issue 11: a moved or cancelled maintenance window is a change of its own, with no
            # update behind it (notifier/changes.py, notifier/enrich.py). update_id becomes
            # optional (required exactly for the two update types), the window and the window
            # before it are kept on the row, and window_sequence numbers the window changes of
            # an incident: UNIQUE, so two pollers can never record the same move twice.
            # incidents.api_listed_at: the last time the JSON API listed the maintenance; only
            # one the API has listed before counts as cancelled when it stops listing it.
            # SQLite cannot drop a NOT NULL or change a CHECK in place: the table is rebuilt.
            # Dropping the old table sets notifications.change_id to NULL (ON DELETE SET NULL,
            # foreign keys are on and cannot be turned off inside the migration's transaction),
            # so the links are kept aside and written back once the new table has the name.
            "sqlite": [
                """CREATE TABLE changes_0013 (
                    id INTEGER PRIMARY KEY,
                    feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
                    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
                    update_id INTEGER UNIQUE REFERENCES updates(id) ON DELETE CASCADE,
                    type TEXT NOT NULL CHECK (type IN
                        ('new_incident', 'new_update', 'rescheduled', 'cancelled')),
                    status TEXT NOT NULL,
                    posted_at TEXT NOT NULL,
                    count INTEGER NOT NULL,
                    detected_at TEXT NOT NULL,
                    processed_at TEXT,
                    window_start_at TEXT,
                    window_end_at TEXT,
                    previous_start_at TEXT,
                    previous_end_at TEXT,
                    window_sequence INTEGER,
                    CHECK ((update_id IS NOT NULL) = (type IN ('new_incident', 'new_update')))
                )""",
                "INSERT INTO changes_0013 (id, feed_id, incident_id, update_id, type, status, "
                "posted_at, count, detected_at, processed_at) SELECT id, feed_id, incident_id, "
                "update_id, type, status, posted_at, count, detected_at, processed_at FROM changes",
                "CREATE TABLE notification_changes_0013 AS "
                "SELECT id, change_id FROM notifications WHERE change_id IS NOT NULL",
                "DROP TABLE changes",
                "ALTER TABLE changes_0013 RENAME TO changes",
                "UPDATE notifications SET change_id = (SELECT m.change_id FROM "
                "notification_changes_0013 m WHERE m.id = notifications.id) "
                "WHERE id IN (SELECT id FROM notification_changes_0013)",
                "DROP TABLE notification_changes_0013",
                "CREATE INDEX changes_unprocessed ON changes (processed_at, id)",
                "CREATE UNIQUE INDEX changes_window ON changes (incident_id, window_sequence)",
                "ALTER TABLE incidents ADD COLUMN api_listed_at TEXT",
            ],
            "postgres": [
                "ALTER TABLE changes ALTER COLUMN update_id DROP NOT NULL",
                "ALTER TABLE changes DROP CONSTRAINT changes_type_check",
                "ALTER TABLE changes ADD CONSTRAINT changes_type_check CHECK (type IN "
                "('new_incident', 'new_update', 'rescheduled', 'cancelled'))",
                "ALTER TABLE changes ADD CONSTRAINT changes_update_check CHECK "
                "((update_id IS NOT NULL) = (type IN ('new_incident', 'new_update')))",
                "ALTER TABLE changes ADD COLUMN window_start_at TIMESTAMPTZ",
                "ALTER TABLE changes ADD COLUMN window_end_at TIMESTAMPTZ",
                "ALTER TABLE changes ADD COLUMN previous_start_at TIMESTAMPTZ",
                "ALTER TABLE changes ADD COLUMN previous_end_at TIMESTAMPTZ",
                "ALTER TABLE changes ADD COLUMN window_sequence BIGINT",
                "CREATE UNIQUE INDEX changes_window ON changes (incident_id, window_sequence)",
                "ALTER TABLE incidents ADD COLUMN api_listed_at TIMESTAMPTZ",
            ],
        },
    ),
    (
        "0014_maintenance_reminders",
        [
            # Issue 11: reminders before a maintenance window opens (notifier/reminders.py).
            # Each subscriber can turn them off; on for everyone until they do.
            "ALTER TABLE subscribers ADD COLUMN maintenance_reminders INTEGER NOT NULL DEFAULT 1",
            # The ledger of reminders queued: one row per (maintenance, offset, window start),
            # written in the transaction that queues the reminder, so no reminder goes twice
            # across restarts and workers; a moved window has a new start and its own rows.
            """CREATE TABLE maintenance_reminders (
                id INTEGER PRIMARY KEY,
                incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
                offset_minutes INTEGER NOT NULL,
                window_start_at TEXT NOT NULL,
                notification_id INTEGER REFERENCES notifications(id) ON DELETE SET NULL,
                created_at TEXT NOT NULL,
                UNIQUE (incident_id, offset_minutes, window_start_at)
            )""",
        ],
    ),
    (
        "0015_alert_episodes",
        {
            # Issue 15: alert mails are notifications of kind 'ops_alert' (notifier/alerts.py).
            # SQLite cannot ALTER a CHECK, and rebuilding notifications would cascade-delete
            # every delivery (foreign keys are on and cannot be switched off inside the
            # migration's transaction). Adding a value to the IN list only widens the CHECK, so
            # the table's text is edited in place: the procedure sqlite.org documents for
            # relaxing CHECK constraints (lang_altertable.html, "Making Other Kinds Of Table
            # Schema Changes"). The ALTER TABLEs that follow bump schema_version, so every other
            # connection re-reads the schema.
            "sqlite": [
                "PRAGMA writable_schema = ON",
                "UPDATE sqlite_master SET sql = replace(sql, "
                "'''confirmation'', ''receipt'')', "
                "'''confirmation'', ''receipt'', ''ops_alert'')') "
                "WHERE type = 'table' AND name = 'notifications'",
                "PRAGMA writable_schema = OFF",
                *_ALERT_EPISODES,
            ],
            "postgres": [
                "ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check",
                "ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN "
                "('incident', 'maintenance', 'announcement', 'confirmation', 'receipt', "
                "'ops_alert'))",
                *(
                    s.replace("acknowledged_at TEXT", "acknowledged_at TIMESTAMPTZ")
                    .replace("mailed_at TEXT", "mailed_at TIMESTAMPTZ")
                    .replace("INTEGER", "BIGINT")
                    for s in _ALERT_EPISODES
                ),
            ],
        },
    ),
    (
        "0016_metric_counters",
        [
            # Issue 15: the worker's Prometheus counters (notifier/metrics.py), one row per
            # (metric, label set): kept in the database so they survive restarts and every
            # worker adds to the same total. `labels` is the label set as sorted JSON.
            """CREATE TABLE metric_counters (
                name TEXT NOT NULL,
                labels TEXT NOT NULL,
                value DOUBLE PRECISION NOT NULL DEFAULT 0,
                PRIMARY KEY (name, labels)
            )""",
        ],
    ),
    (
        "0017_subscriber_import",
        [
            # Issue 15: subscribers imported from another list (notifier/importer.py). Their
            # consent was given elsewhere: `source` says where (the operator's words, addresses
            # masked; NULL for a sign-up on our own form), `imported_at` when it came in.
            "ALTER TABLE consents ADD COLUMN source TEXT",
            "ALTER TABLE consents ADD COLUMN imported_at TEXT",
        ],
    ),
    (
        "0018_poll_log",
        [
            # Issue 15 (dashboard charts): the feeds row keeps only the latest poll, a chart of
            # poll outcomes per feed needs each one. Written with the feed's state
            # (notifier/store/feeds.py); rows older than POLL_LOG_KEEP are deleted as new ones
            # come, so the table stays at about two days of polls per feed.
            """CREATE TABLE poll_log (
                id INTEGER PRIMARY KEY,
                feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
                polled_at TEXT NOT NULL,
                outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'warning', 'error'))
            )""",
            "CREATE INDEX poll_log_feed ON poll_log (feed_id, polled_at)",
            "CREATE INDEX poll_log_time ON poll_log (polled_at, feed_id, outcome)",
            # Deliveries per hour by outcome (dashboard): a range of updated_at, read from the
            # index alone instead of every row of a big ledger.
            "CREATE INDEX deliveries_outcome_time ON deliveries (updated_at, state, reason)",
        ],
    ),
    (
        "0019_channels",
        {
            # Issue 12: Slack, Microsoft Teams and webhook subscriptions. A channel subscription
            # is a subscribers row like an email one (same filters, tokens, consent, ledger);
            # `email` is its owner's address (opt-in, links, failure notices) and `target_url`
            # where messages go. An owner may have an email subscription and any number of
            # channels, so `email` is unique among email subscriptions only, and a target among
            # channel ones. `webhook_secret`: the Standard Webhooks signing secret ("whsec_...",
            # webhooks only). `verified_at`: the target accepted the test message; only then
            # does fan-out include it. `paused_at`/`paused_reason`: stopped after repeated
            # permanent failures; `failure_count` failures in a row since `failing_since`.
            # deliveries.channel: which sender a row is for, copied from the subscriber at
            # fan-out (a failure notice to the owner is an 'email' row of that subscriber).
            # The email claim and the channel claim each walk their own partial index.
            # SQLite cannot drop the inline UNIQUE: the table is rebuilt by the documented
            # procedure, with foreign keys off on the upgrading connection
            # (SQLiteStore.upgrade, foreign_key_check before COMMIT); the children keep their
            # rows and their REFERENCES subscribers(id) resolve to the new table.
            "sqlite": [
                """CREATE TABLE subscribers_0019 (
                    id INTEGER PRIMARY KEY,
                    email TEXT NOT NULL,
                    language TEXT NOT NULL CHECK (language IN ('de', 'en')),
                    timezone TEXT NOT NULL,
                    all_components INTEGER NOT NULL DEFAULT 1,
                    notify_incidents INTEGER NOT NULL DEFAULT 1,
                    notify_maintenance INTEGER NOT NULL DEFAULT 1,
                    state TEXT NOT NULL
                        CHECK (state IN ('pending', 'confirmed', 'unsubscribed', 'suppressed')),
                    token_nonce TEXT,
                    link_nonce TEXT NOT NULL,
                    suppressed_reason TEXT,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    confirmed_at TEXT,
                    unsubscribed_at TEXT,
                    suppressed_at TEXT,
                    maintenance_reminders INTEGER NOT NULL DEFAULT 1,
                    channel TEXT NOT NULL DEFAULT 'email'
                        CHECK (channel IN ('email', 'slack', 'teams', 'webhook')),
                    target_url TEXT,
                    webhook_secret TEXT,
                    verified_at TEXT,
                    paused_at TEXT,
                    paused_reason TEXT,
                    failure_count INTEGER NOT NULL DEFAULT 0,
                    failing_since TEXT,
                    CHECK ((channel = 'email') = (target_url IS NULL))
                )""",
                "INSERT INTO subscribers_0019 (id, email, language, timezone, all_components, "
                "notify_incidents, notify_maintenance, state, token_nonce, link_nonce, "
                "suppressed_reason, created_at, updated_at, confirmed_at, unsubscribed_at, "
                "suppressed_at, maintenance_reminders) SELECT id, email, language, timezone, "
                "all_components, notify_incidents, notify_maintenance, state, token_nonce, "
                "link_nonce, suppressed_reason, created_at, updated_at, confirmed_at, "
                "unsubscribed_at, suppressed_at, maintenance_reminders FROM subscribers",
                "DROP TABLE subscribers",
                "ALTER TABLE subscribers_0019 RENAME TO subscribers",
                "CREATE INDEX subscribers_state ON subscribers (state, language)",
                *_CHANNEL_INDEXES,
                "PRAGMA writable_schema = ON",
                "UPDATE sqlite_master SET sql = replace(sql, "
                "'''receipt'', ''ops_alert'')', "
                "'''receipt'', ''ops_alert'', ''channel_verification'', ''channel_notice'')') "
                "WHERE type = 'table' AND name = 'notifications'",
                "PRAGMA writable_schema = OFF",
                *_CHANNEL_DELIVERIES,
            ],
            "postgres": [
                "ALTER TABLE subscribers DROP CONSTRAINT subscribers_email_key",
                "ALTER TABLE subscribers ADD COLUMN channel TEXT NOT NULL DEFAULT 'email' "
                "CHECK (channel IN ('email', 'slack', 'teams', 'webhook'))",
                "ALTER TABLE subscribers ADD COLUMN target_url TEXT",
                "ALTER TABLE subscribers ADD COLUMN webhook_secret TEXT",
                "ALTER TABLE subscribers ADD COLUMN verified_at TIMESTAMPTZ",
                "ALTER TABLE subscribers ADD COLUMN paused_at TIMESTAMPTZ",
                "ALTER TABLE subscribers ADD COLUMN paused_reason TEXT",
                "ALTER TABLE subscribers ADD COLUMN failure_count BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE subscribers ADD COLUMN failing_since TIMESTAMPTZ",
                "ALTER TABLE subscribers ADD CONSTRAINT subscribers_target_check "
                "CHECK ((channel = 'email') = (target_url IS NULL))",
                *_CHANNEL_INDEXES,
                "ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check",
                "ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN "
                "('incident', 'maintenance', 'announcement', 'confirmation', 'receipt', "
                "'ops_alert', 'channel_verification', 'channel_notice'))",
                *_CHANNEL_DELIVERIES,
            ],
        },
    ),
]


def statements(migration: list[str] | dict[str, list[str]], dialect: str) -> list[str]:
    """The statements of one migration for a dialect ('sqlite' or 'postgres')."""
    if isinstance(migration, dict):
        return migration[dialect]
    return migration if dialect == "sqlite" else [to_postgres(s) for s in migration]


_TIME_COLUMN = re.compile(r"\b(\w+_at) TEXT\b")


def to_postgres(statement: str) -> str:
    """Portable SQLite DDL -> PostgreSQL DDL (identity keys, BIGINT, TIMESTAMPTZ for *_at)."""
    statement = statement.replace(
        "INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    statement = re.sub(r"\bINTEGER\b", "BIGINT", statement)
    return _TIME_COLUMN.sub(r"\1 TIMESTAMPTZ", statement)


def _sqlite_migrations() -> Migrations:
    migrations = Migrations("notifier")
    for name, migration in SCHEMA:
        migrations(name=name)(_applier(statements(migration, "sqlite")))
    return migrations


def _applier(sql: list[str]):
    def apply(db: sqlite_utils.Database) -> None:
        # db.executescript would COMMIT the surrounding transaction; run one by one.
        for statement in sql:
            if (
                statement.startswith("DROP TABLE subscribers")
                and db.execute("PRAGMA foreign_keys").fetchone()[0]
            ):
                # With foreign keys on, the DROP would delete every child row (deliveries,
                # consents, ...) by ON DELETE CASCADE: refuse instead (SQLiteStore.upgrade
                # turns them off on its connection).
                raise RuntimeError(
                    "migration 0019 rebuilds subscribers and must run with foreign keys off "
                    "(use SQLiteStore.upgrade / flask db upgrade)"
                )
            db.execute(statement)

    return apply


MIGRATIONS = _sqlite_migrations()
