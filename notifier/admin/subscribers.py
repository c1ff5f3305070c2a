"""Subscribers: search by address, one subscriber with their consent records, export, erase,
suppress and unsuppress. Every change and every export is audit-logged by subscriber id, and
an address typed into a suppression reason is stored masked (notifier/privacy.py); erasing a
subscriber also masks any copy of their address left in other tables (GDPR art. 17).

Unsuppress puts the address back where it would be without the suppression: 'confirmed' when
it had opted in (and not unsubscribed since), 'unsubscribed' when it had left, else 'pending'
(never confirmed: it gets no mail until it signs up and confirms). SendGrid keeps a suppression
list of its own; an address that bounced there must be removed in SendGrid as well.
"""

from __future__ import annotations

import json

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import context, subscriptions
from ..privacy import mask_addresses
from . import bp
from .common import SUBSCRIBER_STATES, audit
from .params import int_arg

PAGE = 50
MAX_QUERY = 254
MAX_REASON = 200
RECENT_DELIVERIES = 20


def _subscriber(subscriber_id: int) -> dict:
    row = context.store().get_subscriber(subscriber_id)
    if row is None:
        abort(404)
    return row


@bp.route("/subscribers", methods=["GET", "POST"])
def subscribers():
    """Search by address is a POST: an address in a URL would end up in the access log."""
    form = request.form if request.method == "POST" else request.args
    query = request.form.get("q", "").strip()[:MAX_QUERY]
    state = form.get("state", "")
    state = state if state in SUBSCRIBER_STATES else ""
    offset = int_arg(form, "offset", 0)
    rows = context.store().search_subscribers(query, state, limit=PAGE + 1, offset=offset)
    return render_template(
        "admin/subscribers.html",
        subscribers=rows[:PAGE],
        more=len(rows) > PAGE,
        q=query,
        state=state,
        offset=offset,
        page=PAGE,
        states=SUBSCRIBER_STATES,
    )


@bp.get("/subscribers/<id:subscriber_id>")
def subscriber(subscriber_id: int):
    store = context.store()
    row = _subscriber(subscriber_id)
    names = {c["id"]: c["name"] for c in store.list_components()}
    deliveries = store.subscriber_deliveries(subscriber_id)
    return render_template(
        "admin/subscriber.html",
        s=row,
        components=[names.get(cid, cid) for cid in store.subscriber_component_ids(row["id"])],
        consents=store.list_consents(subscriber_id),
        deliveries=deliveries[-RECENT_DELIVERIES:][::-1],
        delivery_total=len(deliveries),
    )


@bp.post("/subscribers/<id:subscriber_id>/export")
def export_subscriber(subscriber_id: int):
    _subscriber(subscriber_id)
    data = subscriptions.export_data(context.store(), subscriber_id, context.now())
    audit("subscriber.export", f"subscriber:{subscriber_id}")
    body = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="subscriber-{subscriber_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/subscribers/<id:subscriber_id>/erase")
def erase_subscriber(subscriber_id: int):
    _subscriber(subscriber_id)
    if request.form.get("confirm") != "yes":
        flash(_("Tick the box to confirm that the data is erased for good."))
        return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)
    subscriptions.erase(context.store(), subscriber_id)
    audit("subscriber.erase", f"subscriber:{subscriber_id}")
    flash(_("Subscriber #%(id)s and all their data are erased.", id=subscriber_id))
    return redirect(url_for(".subscribers"), 303)


@bp.post("/subscribers/<id:subscriber_id>/suppress")
def suppress_subscriber(subscriber_id: int):
    row = _subscriber(subscriber_id)
    # Free text: any address typed into it is stored masked (notifier/privacy.py).
    reason = mask_addresses(" ".join((request.form.get("reason") or "").split())[:MAX_REASON])
    if not reason:
        flash(_("Give a reason for the suppression."))
        return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)
    if row["state"] == "suppressed":
        flash(_("This address is suppressed already."))
        return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)
    store, now = context.store(), context.now()
    cancelled = store.suppress_subscriber(subscriber_id, f"ops: {reason}", now)
    audit(
        "subscriber.suppress",
        f"subscriber:{subscriber_id}",
        reason=reason,
        previous_state=row["state"],
        cancelled_deliveries=cancelled,
    )
    flash(_("Suppressed. Waiting deliveries stopped: %(count)s.", count=cancelled))
    return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)


@bp.post("/subscribers/<id:subscriber_id>/unsuppress")
def unsuppress_subscriber(subscriber_id: int):
    _subscriber(subscriber_id)
    state = context.store().unsuppress_subscriber(subscriber_id, context.now())
    if state is None:
        flash(_("This address is not suppressed."))
    else:
        audit("subscriber.unsuppress", f"subscriber:{subscriber_id}", new_state=state)
        flash(
            _(
                "Suppression lifted; the subscriber is now: %(state)s.",
                state=SUBSCRIBER_STATES[state],
            )
        )
    return redirect(url_for(".subscriber", subscriber_id=subscriber_id), 303)
