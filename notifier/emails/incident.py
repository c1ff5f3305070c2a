"""Incident and maintenance mails, built from a feed-change content dict (see notifier.render)."""

from __future__ import annotations

from datetime import datetime

from . import labels, text, times
from .message import PLACEHOLDERS, QA, Fact, Latest, Link, Message, Post
from .templates import Copy
from .timeline import LADDER, Limits, Selection, Update, mark_new, select

# Which questions a mail answers, by kind and phase; the wording lives in the copy templates.
FAQ = {
    ("incident", "ongoing"): ("what_happened", "affected", "todo", "next_update", "follow"),
    ("incident", "resolved"): ("what_happened", "fixed", "affected", "todo", "cause", "follow"),
    ("incident", "postmortem"): ("postmortem", "what_happened", "todo", "follow"),
    ("maintenance", "scheduled"): ("what_planned", "affected", "prepare", "next_update", "follow"),
    ("maintenance", "in_progress"): ("what_planned", "affected", "todo", "next_update", "follow"),
    ("maintenance", "completed"): ("what_planned", "fixed", "todo", "follow"),
    # Window changes (issue 11); "calendar" only when the mail has a window (and so the .ics).
    ("maintenance", "rescheduled"): (
        "what_changed", "affected", "todo", "calendar", "next_update", "follow",
    ),
    ("maintenance", "cancelled"): ("what_changed", "todo", "calendar", "next_update", "follow"),
    ("maintenance", "reminder"): (
        "what_planned", "affected", "prepare", "calendar", "next_update", "follow",
    ),
}  # fmt: skip
# Maintenance changes about the window, not a new post (content["change"], issue 11): the mail
# is about the window, its phase is the change, and no post in it is marked new.
WINDOW_CHANGES = ("rescheduled", "cancelled", "reminder")
_SCHEDULED = ("scheduled_start", "scheduled_end")
_PHASES = {
    "incident": {"resolved": "resolved", "completed": "resolved", "postmortem": "postmortem"},
    "maintenance": {
        "scheduled": "scheduled",
        "completed": "completed",
        "resolved": "completed",
        "postmortem": "completed",
    },
}
_DEFAULT_PHASE = {"incident": "ongoing", "maintenance": "in_progress"}
PRODUCTS_IN_SUBJECT = 60
SUBJECT_LIMIT = 200
SUBJECT_WITH_WINDOW = 120  # a maintenance subject takes its window only up to this length
TITLE_BESIDE_WINDOW = 24  # a window change shortens its title to this for the window, no less


def phase_of(kind: str, status: str) -> str:
    """incident: ongoing/resolved/postmortem; maintenance: scheduled/in_progress/completed."""
    return _PHASES[kind].get(status, _DEFAULT_PHASE[kind])


def mail_phase(kind: str, status: str, change) -> str:
    """phase_of, or the window change (rescheduled/cancelled/reminder) of a maintenance."""
    if kind == "maintenance" and change in WINDOW_CHANGES:
        return change
    return phase_of(kind, status)


def build(
    content: dict, lang: str, tz: str, limits: Limits = LADDER[0], *, mailed_before: bool = False
) -> Message:
    """The Message for an incident or maintenance content dict; `limits` bound the texts and
    the timeline (notifier.emails.timeline). `mailed_before`: the readers already got an email
    about this incident (the note on several new posts then says "since our last email").
    A maintenance whose `change` is one of WINDOW_CHANGES (issue 11) is a mail about its window
    (`previous_window`, `reminder.offset_minutes`; see notifier.render.incident_content): no post
    is marked new and it may have none. ValueError for other content without updates."""
    kind = content["kind"]
    incident = content.get("incident") or {}
    override = ((content.get("overrides") or {}).get(lang)) or {}
    words = labels.WORDS[lang]
    # Content built from a parsed feed says its feed texts are plain (see render.incident_content).
    plain = content.get("text_format") == "plain"
    updates = _updates(content.get("updates") or [], plain)
    change = content.get("change")
    window_change = kind == "maintenance" and change in WINDOW_CHANGES
    if window_change:
        # Nothing new was posted: the mail shows the posts, none of them as new.
        updates = [Update(u.status, u.at, u.text, False) for u in updates]
    elif not updates:
        # A feed change is always a new update; a mail without one would say nothing true.
        raise ValueError(f"{kind} content has no updates")
    else:
        updates = mark_new(updates, _count(content.get("new_updates")))
    shown = select(updates, limits) if updates else None
    status = str(content.get("status") or (updates[0].status if updates else "scheduled"))
    phase = mail_phase(kind, status, change)
    page_name = text.single_line(content.get("page_name")) or "Sinch"
    components = [text.single_line(c.get("name")) for c in incident.get("components") or []]
    components = [name for name in components if name]
    feed_title = (text.tidy_line if plain else text.single_line)(incident.get("title"))
    title = text.single_line(override.get("title")) or feed_title or page_name
    start, end, planned_end = _span(kind, phase, incident, updates)

    def when(at: datetime | None) -> str:
        return times.format_time(at, lang, tz) if at else ""

    values = {
        "status": status,
        "phase": phase,
        "status_label": labels.status_label(lang, status),
        "title": title,
        "products": labels.join_names(lang, components) or page_name,
        "product_list": ", ".join(components) or page_name,
        "components": components,
        "page_name": page_name,
        "page_url": _web_url(content.get("page_url")),
        "link": _web_url(incident.get("link")) or _web_url(content.get("page_url")),
        "impact": labels.impact_label(lang, incident.get("impact")),
        "impact_key": incident.get("impact"),
        "headline": labels.status_label(lang, status),
        "start": when(start),
        "end": when(end),
        "planned_end": when(planned_end),
        "window": _window(phase, start, end or planned_end, lang, tz),
        # In sentences: "completed on October 5, 2026, at 1:12 AM EDT", "between … and …".
        "end_on": times.format_on(end, lang, tz) if end else "",
        "span": times.format_between(start, end, lang, tz) if start and end else "",
        "mailed_before": mailed_before,
        "new_updates": sum(u.new for u in updates),
        "zone": tz,
        "has_posts": bool(updates),
        "window_change": window_change,
    }
    if window_change:
        values.update(_window_values(content, change, status, (start, planned_end), lang, tz))
    copy = Copy(lang, kind, values)
    summary = override.get("summary")
    return Message(
        lang=lang,
        subject=_zoned_subject(values, kind, phase, lang, tz, (start, end or planned_end)),
        preheader=text.single_line(summary) if summary else copy("preheader"),
        kicker=words["kicker"],
        heading=f"{values['product_list']}: {title}",
        subheading=" · ".join(v for v in (values["headline"], values["window"]) if v),
        greeting=words["greeting"],
        intro=text.plain_text(summary) if summary else copy("intro"),
        summary_heading=words["summary"],
        summary=_summary(kind, phase, values, words),
        latest=_latest(shown, content, override, values, copy, lang, tz) if shown else None,
        button=Link(words[f"link_{kind}"], values["link"]) if values["link"] else None,
        faq_heading=words["more"],
        q_prefix=words["q"],
        faq=_faq(copy, _questions(kind, phase, values), override.get("qa")),
        timeline_heading=words["timeline"],
        timeline_note=words["timeline_note"] if shown and shown.posts else "",
        timeline=_timeline(shown, values["link"], lang, tz) if shown else (),
        timeline_more=_omitted(shown, values["link"], words) if shown else None,
        new_label=words["new"],
        manage_label=words["manage"],
        manage_links=footer_links(lang),
        signoff=words["signoff"],
        footer=copy("footer"),
        footer_links=footer_links(lang),
    )


def _window_values(content: dict, change: str, status: str, span, lang: str, tz: str) -> dict:
    """The copy values of a window change: its headline (subject prefix and subheading), the
    previous window and which way a running maintenance's end moved (rescheduled), the offset
    (reminder), and whether the mail has a window, i.e. a calendar attachment (issue 11)."""
    words = labels.WORDS[lang]
    start, end = span
    incident = _mapping(content.get("incident"))
    previous = _mapping(content.get("previous_window"))
    old_start, old_end = (times.parse_time(previous.get(k)) for k in ("start", "end"))
    offset = _count_or_none(_mapping(content.get("reminder")).get("offset_minutes"))
    headline = words[f"change_{change}"]
    if change == "reminder":
        if offset is None:
            headline = words["reminder_soon"]
        else:
            headline = words["reminder_in"].format(offset=labels.offset_label(lang, offset))
    moved = ""
    if old_end and end and end != old_end:
        moved = "later" if end > old_end else "earlier"
    return {
        "headline": headline,
        "subject_label": words[f"change_{change}"],
        "running": status in ("in_progress", "verifying"),
        "old_window": _any_window(old_start, old_end, lang, tz),
        "old_end": times.format_time(old_end, lang, tz) if old_end else "",
        "end_moved": moved,
        "offset": labels.offset_label(lang, offset) if offset is not None else "",
        "start_on": times.format_on(start, lang, tz) if start else "",
        # The rule of the .ics attachment (notifier.render): the incident's scheduled window.
        "calendar": all(times.parse_time(incident.get(k)) for k in _SCHEDULED),
    }


def _any_window(start, end, lang: str, tz: str) -> str:
    """A window that may lack its start or end: `…–…`, just the start, `until …`, or ""."""
    if start:
        return times.format_window(start, end, lang, tz)
    if end:
        return labels.WORDS[lang]["until"].format(time=times.format_time(end, lang, tz))
    return ""


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _count_or_none(value) -> int | None:
    try:
        return max(0, int(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _questions(kind: str, phase: str, values: dict) -> tuple[str, ...]:
    """The FAQ keys; the calendar question only where the mail carries the .ics (a window)."""
    return tuple(k for k in FAQ[(kind, phase)] if k != "calendar" or values.get("calendar"))


def _updates(raw: list, plain: bool = False) -> list[Update]:
    cleaned = text.tidy_text if plain else text.plain_text
    updates = [
        Update(
            status=str(u.get("status") or "update"),
            at=times.parse_time(u.get("at")),
            text=cleaned(u.get("text")),
            new=u.get("new") is True,
        )
        for u in raw
        if isinstance(u, dict)
    ]
    # Newest first, as promised; a stable sort keeps same-minute posts in the feed's order.
    return sorted(updates, key=lambda u: u.at.timestamp() if u.at else 0, reverse=True)


def _count(value) -> int:
    """`new_updates` of content stored before the updates carried their own `new` marks."""
    try:
        return max(1, int(value or 1))
    except (TypeError, ValueError):
        return 1


def _span(kind, phase, incident, updates):
    """(start, end, planned end): when it began, when it ended (if it did), when it should end."""
    oldest = updates[-1].at if updates else None
    if kind == "incident":
        resolved = next((u.at for u in updates if u.status == "resolved"), None)
        return oldest, (resolved if phase != "ongoing" else None), None
    planned_start = times.parse_time(incident.get("scheduled_start"))
    planned_end = times.parse_time(incident.get("scheduled_end"))
    started = next((u.at for u in reversed(updates) if u.status == "in_progress"), None)
    finished = next((u.at for u in updates if u.status in ("completed", "resolved")), None)
    start = planned_start or started or oldest
    end = finished if phase == "completed" else None
    return start, end, planned_end


def _window(phase, start, end, lang, tz) -> str:
    if start is None:
        return ""
    if end is None and phase == "ongoing":
        return labels.WORDS[lang]["since"].format(time=times.format_time(start, lang, tz))
    if end is None:
        return labels.WORDS[lang]["from"].format(time=times.format_time(start, lang, tz))
    return times.format_window(start, end, lang, tz)


def _zoned_subject(values: dict, kind: str, phase: str, lang: str, tz: str, span) -> str:
    """The subject; a maintenance subject takes the window only if it fits, so its length (not
    just a time in it) depends on the zone: for a Symbolic zone it is one placeholder whole."""
    if kind != "maintenance" or phase == "completed" or not values["window"]:
        return _subject(values, kind, phase, lang)

    def subject_in(zone: str) -> str:
        window = _window(phase, *span, lang, zone)
        return _subject({**values, "window": window}, kind, phase, lang)

    return times.per_zone(tz, subject_in)


def _subject(values: dict, kind: str, phase: str, lang: str) -> str:
    products = _products_for_subject(values["components"], values["page_name"], lang)
    prefix = f"[{values.get('subject_label') or values['status_label']}] {products}: "
    title = values["title"]
    if kind == "maintenance" and phase != "completed" and values["window"]:
        window = f" ({values['window']})"
        room = SUBJECT_WITH_WINDOW - len(prefix) - len(window)
        if len(title) <= room:
            title += window
        elif phase in WINDOW_CHANGES and room >= TITLE_BESIDE_WINDOW:
            # The window is what changed (or what the reminder is about): the title gives way.
            title = text.truncate(title, room) + window
    return text.truncate(prefix + title, SUBJECT_LIMIT)


def _products_for_subject(components: list[str], page_name: str, lang: str) -> str:
    """Component names joined with ", "; past the limit the rest is counted: "A, B +3 more"."""
    if not components:
        return text.truncate(page_name, PRODUCTS_IN_SUBJECT)
    shown = [components[0]]
    for name in components[1:]:
        if len(", ".join([*shown, name])) > PRODUCTS_IN_SUBJECT:
            break
        shown.append(name)
    joined = text.truncate(", ".join(shown), PRODUCTS_IN_SUBJECT)
    hidden = len(components) - len(shown)
    more = labels.WORDS[lang]["more_count"].format(n=hidden)
    return f"{joined} {more}" if hidden else joined


def _summary(kind, phase, values, words) -> tuple[Fact, ...]:
    facts = [Fact(words["status"], values["status_label"])]
    if phase in ("rescheduled", "cancelled"):
        return _window_summary(phase, values, words)
    if values["start"]:
        planned = kind == "maintenance" and phase in ("scheduled", "reminder")
        facts.append(Fact(words["planned_start" if planned else "start"], values["start"]))
    if values["end"]:
        facts.append(Fact(words["end"], values["end"]))
    elif values["planned_end"]:
        facts.append(Fact(words["expected_end"], values["planned_end"]))
    elif kind == "incident" and phase == "ongoing":
        facts.append(Fact(words["end"], words["end_open"]))
    affected = values["product_list"] if values["components"] else None
    not_named = words["not_named"].format(page=values["page_name"])
    facts.append(Fact(words["affected"], affected or not_named))
    # "Impact: maintenance" on a maintenance mail says nothing.
    if values["impact"] and not (kind == "maintenance" and values["impact_key"] == "maintenance"):
        facts.append(Fact(words["impact"], values["impact"]))
    return tuple(facts)


def _window_summary(phase, values, words) -> tuple[Fact, ...]:
    """Rescheduled: the previous and the new window; cancelled: the window that was cancelled."""
    facts = [Fact(words["status"], values["status_label"])]
    if phase == "rescheduled":
        facts.append(Fact(words["previously"], values["old_window"] or "–"))
        facts.append(Fact(words["now"], values["window"] or "–"))
    elif values["window"]:
        facts.append(Fact(words["cancelled_window"], values["window"]))
    not_named = words["not_named"].format(page=values["page_name"])
    affected = values["product_list"] if values["components"] else not_named
    facts.append(Fact(words["affected"], affected))
    return tuple(facts)


def _latest(shown: Selection, content, override, values, copy, lang, tz) -> Latest:
    newest = shown.lead.update
    words = labels.WORDS[lang]
    meta = labels.status_label(lang, newest.status)
    if newest.at:
        meta = f"{meta} · {words['posted'].format(time=times.format_time(newest.at, lang, tz))}"
    several = content.get("change") == "new_update" and values["new_updates"] > 1
    return Latest(
        heading=words["latest"],
        meta=meta,
        note=copy("new_updates_note") if several else "",
        translation=text.plain_text(override.get("text")),
        quote_label=words["original"],
        quote=shown.lead.text,
        new=not values["window_change"],
        more=_more(shown.lead.cut, values["link"], words),
    )


def _faq(copy: Copy, keys: tuple[str, ...], extra) -> tuple[QA, ...]:
    """The default questions; ops' Q/A replace a default with the same question, else are added
    before the closing "where to follow" question."""
    faq = [QA(copy(f"q_{key}"), copy(f"a_{key}")) for key in keys]
    for item in extra or []:
        if not isinstance(item, dict):
            continue
        question, answer = text.single_line(item.get("q")), text.plain_text(item.get("a"))
        if not question or not answer:
            continue
        same = [i for i, qa in enumerate(faq) if _same_question(qa.question, question)]
        if same:
            faq[same[0]] = QA(question, answer)
        else:
            faq.insert(max(len(faq) - 1, 0), QA(question, answer))
    return tuple(faq)


def _same_question(a: str, b: str) -> bool:
    def norm(q: str) -> str:
        return " ".join(q.casefold().removeprefix("f:").removeprefix("q:").strip(" ?").split())

    return norm(a) == norm(b)


def _timeline(shown: Selection, link: str, lang: str, tz: str) -> tuple[Post, ...]:
    words = labels.WORDS[lang]
    return tuple(
        Post(
            when=times.format_time(p.update.at, lang, tz) if p.update.at else "",
            status=labels.status_label(lang, p.update.status),
            text=p.text,
            new=p.update.new,
            more=Link(words["post_more"], link) if p.cut and link else None,
        )
        for p in shown.posts
    )


def _more(cut: bool, link: str, words: dict) -> Link | None:
    """Where a shortened text is whole: the incident on the status page."""
    return Link(words["read_more"], link) if cut and link else None


def _omitted(shown: Selection, link: str, words: dict) -> Link | None:
    """The link that counts the earlier updates the mail left out; None when it left none."""
    if not shown.omitted:
        return None
    label = words["omitted_one"] if shown.omitted == 1 else words["omitted"]
    return Link(label.format(n=shown.omitted), link)


def footer_links(lang: str) -> tuple[Link, ...]:
    """Preferences and unsubscribe, as placeholders the sender fills in per recipient."""
    words = labels.WORDS[lang]
    return (
        Link(words["preferences"], PLACEHOLDERS["preferences_url"]),
        Link(words["unsubscribe"], PLACEHOLDERS["unsubscribe_url"]),
    )


def _web_url(value) -> str:
    """Only http(s) links become a button: a feed's link is not ours to trust."""
    url = str(value or "").strip()
    return url if url.lower().startswith(("https://", "http://")) else ""
