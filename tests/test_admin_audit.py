"""The audit log page: newest first, paged, with links to what was changed."""

from __future__ import annotations

import re
from datetime import timedelta

from .test_admin_helpers import admin_client, admin_settings  # noqa: F401  (fixtures)


def test_the_audit_log_is_paged_newest_first(admin, db, clock):
    for i in range(60):
        clock.advance(seconds=1)
        db.audit("ops.anna", "subscriber.suppress", f"subscriber:{i}", {"reason": f"r{i}"}, clock())
    page = admin.get("/admin/audit").text
    targets = re.findall(r'href="/admin/subscribers/(\d+)"', page)
    assert targets == [str(i) for i in range(59, 9, -1)]  # 50 per page, newest first
    assert "Suppressed a subscriber" in page and "reason=r59" in page
    older = re.search(r'href="(/admin/audit\?before=\d+)">Older', page).group(1)
    rest = admin.get(older).text
    targets = re.findall(r'href="/admin/subscribers/(\d+)"', rest)
    assert targets == [str(i) for i in range(9, -1, -1)]
    assert ">Logged in<" in rest  # the admin fixture's own login, the oldest entry
    assert "Older</a>" not in rest and 'href="/admin/audit">Newest' in rest


def test_times_are_shown_in_the_readers_terms(admin, db, clock):
    db.audit("cli:root", "admin_user.add", "admin_user:ops.anna", None, clock() + timedelta(1))
    english = admin.get("/admin/audit").text
    german = admin.get("/admin/audit", headers={"Accept-Language": "de"}).text
    assert "2026-11-27 12:00:00 UTC" in english
    assert "2026-11-27 13:00:00 MEZ" in german and "Ops-Konto angelegt" in german
