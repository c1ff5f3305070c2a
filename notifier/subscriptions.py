"""Subscriptions: sign-up with double opt-in, confirm, preferences, unsubscribe, undo, export,
erase and the purge of unconfirmed sign-ups. Functions take the store, values and `now`.

What a sign-up request does, by the state the address is in. The web form answers every case
with the same redirect, and mail only ever leaves through the worker, so neither the response
nor its timing tells a visitor whether an address is known:

- new: a `pending` row with fresh nonces, an open consent record, a confirmation mail.
- pending: the newest request's preferences and consent data replace the old ones (the person
  confirms what they asked for last); another confirmation mail within the caps. The token
  nonce is kept, so the link in an earlier mail still works until it expires.
- confirmed: nothing at all. The address already opted in; a stranger must not be able to
  change its preferences or fill its inbox. The owner manages it from any mail's link.
- unsubscribed: a fresh opt-in, as for a new address: back to `pending` with new token and
  link nonces (old preference, unsubscribe and undo links die), new consent record, a mail.
- suppressed (bounced or complained, set by the webhook): nothing; such an address is never
  mailed again because someone typed it into a form.

Confirmation mails per address: at most one per CONFIRMATION_COOLDOWN and
CONFIRMATION_DAILY_CAP per 24 hours, counted in `confirmation_sends`; requests beyond that
change preferences as above but queue no mail. The per-IP limit is in notifier/ratelimit.py.

Unsubscribing a confirmed address cancels its pending deliveries in the same transaction and
queues a receipt with an undo link (a shared mailbox like noc@… may have clicked by mistake);
the undo restores it without a new opt-in for UNDO_WINDOW, because it was confirmed before and
the undo link only ever went to that mailbox. A pending sign-up that is unsubscribed is simply
called off: no receipt, as that address never opted in to any mail.

An undo link belongs to one unsubscribe (tokens.undo_nonce): it works once, and an old
receipt never undoes a later unsubscribe. The link nonce itself is not rotated by unsubscribe
or undo, so the unsubscribe and preferences links in mails the subscriber already has keep
working (mailbox providers use the RFC 8058 one-click URL of any earlier mail).

Groups. A subscriber chooses components and Statuspage component groups (the catalogue from
/api/v2/components.json, where members carry `group_id`). A ticked group is stored as the group,
by its Statuspage id, in subscriber_components beside chosen components; a member of a chosen
group is not stored on its own (forms.Catalogue.choices). Fan-out resolves groups to members
(store DeliveryQueries.choices_covering) from group_memberships: every (group, member) pair a
catalogue sync has ever seen. The rule is that a subscriber never silently loses a component:
- a component added to the group later is covered from the sync that first lists it;
- a component moved to another group is covered for the subscribers of both groups (someone
  who chose the old group for it keeps it; extra mail can be narrowed on the preferences page,
  a missing one cannot be noticed);
- a group gone from the page (or left without members) keeps covering its last known members;
  the preferences page offers it, ticked and marked as gone, until the subscriber unticks it;
- an incident whose components are unknown reaches every subscriber with any component or
  group of that page, as for components.
Choosing every member one by one stays a choice of those components: it does not widen.
Subscriptions stored before migration 0010 held members only; see that migration for which
of them became group choices and why.

Channels (issue 12). A Slack, Microsoft Teams or webhook subscription is a subscribers row
like an email one (same filters, consent, tokens and ledger) whose `email` is its owner's
address and `target_url` the incoming webhook it posts to. The owner opts in by mail as
above; the answer to a sign-up is the same whether the address or the target was known. A
sign-up of a target already stored never changes its owner: the confirmation (for a pending
one) goes to the stored owner, within the same caps, and the requester's choices replace the
stored ones only when the requester is that owner. A confirmed target gets nothing, as a
confirmed address does. Confirming queues the verification, the test message to the target
(kind `channel_verification`): fan-out includes the channel only once its target accepted it
(store CHANNEL_READY). A webhook gets its Standard Webhooks signing secret at confirmation,
shown to the owner once; the preferences page can replace it (shown once again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import tokens
from .delivery import senders, wake
from .notifications import queue_personal
from .settings import Settings

log = logging.getLogger(__name__)

CONFIRMATION_COOLDOWN = timedelta(minutes=15)
CONFIRMATION_DAILY_CAP = 3
UNCONFIRMED_TTL = timedelta(days=7)
UNDO_WINDOW = timedelta(days=7)

CHANNELS = ("email", "slack", "teams", "webhook")
# Everything queued for a subscription that unsubscribing or a new verification stops.
_ALL_QUEUED = ("incident", "maintenance", "announcement", "confirmation", "channel_verification")


class InvalidLink(Exception):
    """Forged, expired, reused or stale; every case gets the same generic page."""


@dataclass(frozen=True)
class Preferences:
    language: str
    timezone: str
    all_components: bool = True
    # The chosen Statuspage ids: components, and groups as groups (see "Groups" above).
    component_ids: tuple[str, ...] = ()
    notify_incidents: bool = True
    notify_maintenance: bool = True
    # Reminder mails before a maintenance window opens (notifier/reminders.py).
    maintenance_reminders: bool = True

    def columns(self) -> dict:
        return {
            "language": self.language,
            "timezone": self.timezone,
            "all_components": self.all_components,
            "notify_incidents": self.notify_incidents,
            "notify_maintenance": self.notify_maintenance,
            "maintenance_reminders": self.maintenance_reminders,
        }


@dataclass(frozen=True)
class Visitor:
    """Who made a request: kept in the consent record."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class SignupOutcome:
    previous_state: str | None  # None: the address was new
    mail_queued: bool
    subscriber_id: int | None = field(default=None, compare=False)


# --- sign-up -------------------------------------------------------------------------
def subscribe(
    store,
    settings: Settings,
    email: str,
    prefs: Preferences,
    visitor: Visitor,
    now: datetime,
    *,
    channel: str = "email",
    target_url: str | None = None,
) -> SignupOutcome:
    """Handle one sign-up request (email already validated and normalized). For a channel
    ('slack', 'teams', 'webhook'), `email` is the owner's address and `target_url` the target
    as safehttp.check_target normalized it (see "Channels" above)."""
    if channel not in CHANNELS or (channel == "email") != (target_url is None):
        raise ValueError(f"a {channel} subscription with target {target_url!r}")
    consent = {
        "version": settings.consent_version,
        "language": prefs.language,
        "ip": visitor.ip,
        "user_agent": visitor.user_agent,
        "now": now,
    }
    chosen = () if prefs.all_components else prefs.component_ids
    with store.write():
        if channel == "email":
            row = store.get_subscriber_by_email(email)
        else:
            row = store.get_channel_subscription(channel, target_url)
        previous = None if row is None else row["state"]
        if previous in ("confirmed", "suppressed"):
            return SignupOutcome(previous, False, row["id"])
        if row is not None and row["email"] != email:
            # Someone else's target: its owner stays, with their choices and consent; only
            # a pending one hears about the request (a new confirmation mail, capped).
            queued = previous == "pending" and _queue_confirmation(store, row["id"], now)
            log.info("sign-up for the target of subscriber %s by another address", row["id"])
            return SignupOutcome(previous, queued, row["id"])
        if row is None:
            subscriber_id = store.insert_subscriber(
                email,
                {
                    **prefs.columns(),
                    **(
                        {} if channel == "email" else {"channel": channel, "target_url": target_url}
                    ),
                    "state": "pending",
                    "token_nonce": tokens.new_nonce(),
                    "link_nonce": tokens.new_nonce(),
                },
                now,
            )
            # A new row has no choices and no consent to replace (erasing a subscriber
            # takes them along, even where SQLite hands its id out again): two statements
            # fewer on the busiest path.
            store.add_subscriber_components(subscriber_id, chosen)
            store.open_signup_consent(subscriber_id, **consent)
        else:
            subscriber_id = row["id"]
            fresh_opt_in = previous == "unsubscribed"
            store.update_subscriber(
                subscriber_id,
                **prefs.columns(),
                state="pending",
                updated_at=now,
                **(
                    {"token_nonce": tokens.new_nonce(), "link_nonce": tokens.new_nonce()}
                    if fresh_opt_in
                    else {}
                ),
            )
            store.set_subscriber_components(subscriber_id, chosen)
            store.record_signup_consent(subscriber_id, **consent)
        queued = _queue_confirmation(store, subscriber_id, now)
    log.info("sign-up for subscriber %s (was %s), mail queued: %s", subscriber_id, previous, queued)
    return SignupOutcome(previous, queued, subscriber_id)


def _queue_confirmation(store, subscriber_id: int, now: datetime) -> bool:
    """Queue a confirmation mail unless this address hit its cooldown or daily cap."""
    recent = store.confirmation_send_times(subscriber_id, now - timedelta(hours=24))
    if len(recent) >= CONFIRMATION_DAILY_CAP or (
        recent and now - recent[-1] < CONFIRMATION_COOLDOWN
    ):
        return False
    queue_personal(store, "confirmation", subscriber_id, now)
    store.record_confirmation_send(subscriber_id, now)
    return True


# --- links ---------------------------------------------------------------------------
def subscriber_for_link(store, settings: Settings, purpose: str, token: str, now: datetime) -> dict:
    """The subscriber a link is for, or InvalidLink; nothing is changed."""
    try:
        data = tokens.read_token(settings.verification_keys, purpose, token, now=now)
    except tokens.TokenError:
        raise InvalidLink from None
    row = store.get_subscriber(data.subscriber_id)
    if row is None:
        raise InvalidLink
    if purpose == tokens.CONFIRM:
        nonce = row["token_nonce"]
    elif purpose == tokens.UNDO:  # bound to this unsubscribe: an older receipt's link is dead
        nonce = tokens.undo_nonce(row["link_nonce"], row["unsubscribed_at"])
    else:
        nonce = row["link_nonce"]
    if not tokens.nonce_matches(nonce, data.nonce):
        raise InvalidLink
    if purpose == tokens.CONFIRM and row["state"] != "pending":
        raise InvalidLink
    if purpose == tokens.UNDO and not _undo_allowed(row, now):
        raise InvalidLink
    return row


def manage_token(settings: Settings, subscriber: dict, now: datetime) -> str:
    """A fresh preferences/unsubscribe token for a page we just showed the subscriber."""
    return tokens.make_token(
        settings.secret_key, tokens.MANAGE, subscriber["id"], subscriber["link_nonce"], now=now
    )


def _undo_allowed(row: dict, now: datetime) -> bool:
    return (
        row["state"] == "unsubscribed"
        and row["confirmed_at"] is not None
        and row["unsubscribed_at"] is not None
        and now - row["unsubscribed_at"] <= UNDO_WINDOW
    )


# --- confirm -------------------------------------------------------------------------
def confirm(store, settings: Settings, token: str, visitor: Visitor, now: datetime) -> dict:
    """Confirm a pending sign-up (single use: the token nonce is cleared); InvalidLink else.

    A channel subscription also gets its verification queued (and the dispatch woken); a
    webhook gets a new signing secret. The returned row holds that secret: the page shows it
    once, nothing else ever shows it again.
    """
    with store.write():
        row = subscriber_for_link(store, settings, tokens.CONFIRM, token, now)
        secret = senders.new_webhook_secret() if row["channel"] == "webhook" else None
        # A channel confirmed again (after an unsubscribe) starts over: its target must accept
        # the new test message (a webhook's new secret) before broadcasts go there, and an old
        # pause or failure streak does not carry over.
        fresh = (
            {
                "verified_at": None,
                "paused_at": None,
                "paused_reason": None,
                "failure_count": 0,
                "failing_since": None,
            }
            if row["channel"] != "email"
            else {}
        )
        store.update_subscriber(
            row["id"],
            state="confirmed",
            token_nonce=None,
            confirmed_at=now,
            updated_at=now,
            **({"webhook_secret": secret} if secret else {}),
            **fresh,
        )
        store.record_consent_confirmation(
            row["id"], ip=visitor.ip, user_agent=visitor.user_agent, now=now
        )
        # A second confirmation mail still queued would only carry a dead link now.
        store.cancel_pending_for_subscriber(row["id"], "confirmed", now)
        if row["channel"] != "email":
            store.queue_verification(row["id"], now)
    log.info("subscriber %s confirmed", row["id"])
    if row["channel"] != "email":
        wake.work_queued(store, now)
    return store.get_subscriber(row["id"])


def confirmed_before(store, settings: Settings, token: str, now: datetime) -> dict | None:
    """The channel subscription a used confirmation link was for, once it is confirmed (a
    reload of the page that showed a webhook's secret): the page says so, without the
    secret. None for anything else (the generic invalid-link page)."""
    try:
        data = tokens.read_token(settings.verification_keys, tokens.CONFIRM, token, now=now)
    except tokens.TokenError:
        return None
    row = store.get_subscriber(data.subscriber_id)
    if row is None or row["channel"] == "email" or row["confirmed_at"] is None:
        return None
    return row


# --- channels ------------------------------------------------------------------------
def resume_channel(store, subscriber_id: int, now: datetime) -> bool:
    """ "Send test message again" / "Resume": clear a pause and queue a new verification of a
    confirmed channel subscription; False (nothing changed) for anything else."""
    row = store.get_subscriber(subscriber_id)
    if row is None or row["channel"] == "email" or row["state"] != "confirmed":
        return False
    # A paused channel: lift the pause and verify again (store.resume_channel). Any other
    # (a test message that expired unanswered, or the owner wants to see one): a new one.
    if store.resume_channel(subscriber_id, now) is None:
        store.queue_verification(subscriber_id, now)
    log.info("channel subscriber %s resumed: verification queued", subscriber_id)
    wake.work_queued(store, now)
    return True


def new_signing_secret(store, subscriber_id: int, now: datetime) -> str | None:
    """A new Standard Webhooks signing secret for a confirmed webhook subscription (the old
    one stops working at once); None for anything else. Shown once by the caller."""
    row = store.get_subscriber(subscriber_id)
    if row is None or row["channel"] != "webhook" or row["state"] != "confirmed":
        return None
    secret = senders.new_webhook_secret()
    store.update_subscriber(subscriber_id, webhook_secret=secret, updated_at=now)
    log.info("webhook subscriber %s has a new signing secret", subscriber_id)
    return secret


# --- preferences ---------------------------------------------------------------------
def update_preferences(store, subscriber_id: int, prefs: Preferences, now: datetime) -> None:
    with store.write():
        store.update_subscriber(subscriber_id, **prefs.columns(), updated_at=now)
        store.set_subscriber_components(
            subscriber_id, () if prefs.all_components else prefs.component_ids
        )
    log.info("subscriber %s changed preferences", subscriber_id)


def current_preferences(store, subscriber: dict) -> Preferences:
    return Preferences(
        language=subscriber["language"],
        timezone=subscriber["timezone"],
        all_components=bool(subscriber["all_components"]),
        component_ids=tuple(store.subscriber_component_ids(subscriber["id"])),
        notify_incidents=bool(subscriber["notify_incidents"]),
        notify_maintenance=bool(subscriber["notify_maintenance"]),
        maintenance_reminders=bool(subscriber["maintenance_reminders"]),
    )


# --- unsubscribe and undo --------------------------------------------------------------
def unsubscribe(store, subscriber_id: int, now: datetime, source: str) -> bool:
    """Stop all mail at once; True when something changed (a repeat click changes nothing)."""
    with store.write():
        row = store.get_subscriber(subscriber_id)
        if row is None or row["state"] not in ("pending", "confirmed"):
            return False
        was_confirmed = row["state"] == "confirmed"
        store.update_subscriber(
            subscriber_id,
            state="unsubscribed",
            token_nonce=None,
            unsubscribed_at=now,
            updated_at=now,
        )
        cancelled = store.cancel_pending_for_subscriber(
            subscriber_id, f"unsubscribed ({source})", now, _ALL_QUEUED
        )
        if was_confirmed:
            store.set_consent_withdrawn(subscriber_id, now)
            queue_personal(store, "receipt", subscriber_id, now)
    log.info(
        "subscriber %s unsubscribed via %s, %s pending deliveries cancelled",
        subscriber_id,
        source,
        cancelled,
    )
    return True


def undo_unsubscribe(store, settings: Settings, token: str, now: datetime) -> dict:
    """Re-activate from the receipt's undo link (no new opt-in); InvalidLink otherwise."""
    with store.write():
        row = subscriber_for_link(store, settings, tokens.UNDO, token, now)
        store.update_subscriber(row["id"], state="confirmed", unsubscribed_at=None, updated_at=now)
        store.set_consent_withdrawn(row["id"], None)
        # A receipt still queued would now say the opposite of the truth.
        store.cancel_pending_for_subscriber(row["id"], "unsubscribe undone", now, ("receipt",))
        # A channel whose test message the unsubscribe cancelled gets it again.
        verify = row["channel"] != "email" and row["verified_at"] is None
        if verify:
            store.queue_verification(row["id"], now)
    log.info("subscriber %s undid the unsubscribe", row["id"])
    if verify:
        wake.work_queued(store, now)
    return store.get_subscriber(row["id"])


# --- personal data -------------------------------------------------------------------
def _jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def export_data(store, subscriber_id: int, now: datetime) -> dict:
    """Everything stored about the subscriber, as JSON-ready values.

    The two nonces are left out: they are random link keys, not data about the person, and a
    copy of them in a downloaded file would only help someone forge links with a leaked secret.
    For the same reason a channel's target is masked (an incoming-webhook URL is itself a
    credential, senders.mask_target) and a webhook's signing secret is never in it.
    """
    row = store.get_subscriber(subscriber_id)
    chosen = store.subscriber_component_ids(subscriber_id)
    names = {r["group_id"]: r["group_name"] for r in store.remembered_group_members(chosen)}
    names.update({c["id"]: c["name"] for c in store.list_components()})
    hidden = ("id", "token_nonce", "link_nonce", "target_url", "webhook_secret")
    subscriber = {k: v for k, v in row.items() if k not in hidden}
    target = row["target_url"]
    subscriber["target"] = senders.mask_target(target) if target else None
    for flag in (
        "all_components",
        "notify_incidents",
        "notify_maintenance",
        "maintenance_reminders",
    ):
        subscriber[flag] = bool(subscriber[flag])
    return {
        "exported_at": now.isoformat(),
        "subscriber": _jsonable(subscriber),
        "components": [{"id": cid, "name": names.get(cid)} for cid in chosen],
        "consents": [
            _jsonable({k: v for k, v in c.items() if k not in ("id", "subscriber_id")})
            for c in store.list_consents(subscriber_id)
        ],
        "confirmation_mails_sent_at": [
            t.isoformat() for t in store.confirmation_send_times(subscriber_id)
        ],
        "deliveries": [_jsonable(d) for d in store.subscriber_deliveries(subscriber_id)],
    }


def erase(store, subscriber_id: int) -> None:
    """Delete the subscriber and everything hanging off it; old links die with the row."""
    store.delete_subscriber(subscriber_id)
    log.info("subscriber %s erased on request", subscriber_id)


# --- housekeeping (scheduled by the worker) ------------------------------------------
def purge_unconfirmed(store, now: datetime) -> int:
    """Delete sign-ups nobody confirmed within UNCONFIRMED_TTL of their last request."""
    return store.delete_pending_subscribers(now - UNCONFIRMED_TTL)


def housekeeping(store, now: datetime) -> dict[str, int]:
    """The subscription side of the worker's housekeeping job."""
    result = {
        "unconfirmed_purged": purge_unconfirmed(store, now),
        "rate_limits_purged": store.purge_expired_rate_limits(now),
    }
    log.info(
        "housekeeping: %s unconfirmed sign-ups and %s expired rate-limit windows purged",
        result["unconfirmed_purged"],
        result["rate_limits_purged"],
    )
    return result
