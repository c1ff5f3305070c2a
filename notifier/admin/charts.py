"""Dashboard charts drawn on the server as inline SVG, each with its numbers as a table.

Three charts (issue 15, part 3): deliveries per UTC hour by outcome over 7 days (168 stacked
bars), poll outcomes per feed per hour over 24 hours (24 stacked bars per feed), and confirmed
subscribers per UTC day over 90 days (90 bars). No script and no third-party file: the page's
Content-Security-Policy (notifier/security.py, style-src 'self') stays as it is, so the SVG has
no style attributes; colours come from classes in static/admin.css and fill="url(#pattern)"
presentation attributes, which CSP does not govern.

Accessibility (WAI-ARIA Graphics, WCAG 1.1.1 and 1.4.1): each <svg> is role="img" named by its
<title> and described by a <desc> summary; every series has a pattern besides its colour and a
direct label with its total in the legend; the exact numbers are in a table (caption, th scope)
behind a <details> disclosure. The SVG scales with its box (viewBox, width 100%) for phones.

Hours and days are UTC buckets (the store groups by them); hour labels are shown in the
reader's language and zone (admin/common.py UI_ZONES), days as UTC dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from babel.dates import format_datetime, format_skeleton
from babel.numbers import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from ..emails import times
from ..store.charts import DELIVERY_OUTCOMES, POLL_OUTCOMES
from .common import DELIVERY_STATES

HOURS_DELIVERIES = 7 * 24
HOURS_POLLS = 24
DAYS_SUBSCRIBERS = 90

POLL_LABELS = {"ok": _l("Succeeded"), "warning": _l("With warnings"), "error": _l("Failed")}
# Columns that count what is there at a moment, not what happened in the bucket.
LEVELS = frozenset({"confirmed"})
SUBSCRIBER_LABELS = {
    "confirmed": _l("Confirmed"),
    "signups": _l("Sign-ups"),
    "unsubscribes": _l("Unsubscribes"),
}
# Drawn, bottom to top; the rest of a chart's columns are only in its table.
_PATTERNS = {
    "solid": "",
    "hatch": '<path d="M-1,1 l2,-2 M0,6 l6,-6 M5,7 l2,-2" class="mark"/>',
    "dots": '<circle cx="3" cy="3" r="1.2" class="mark"/>',
    "cross": '<path d="M0,0 l6,6 M6,0 l-6,6" class="mark"/>',
    "lines": '<path d="M0,3 h6" class="mark"/>',
}
_SERIES_PATTERN = {
    "sent": "solid",
    "failed": "hatch",
    "expired": "dots",
    "suppressed": "cross",
    "cancelled": "lines",
    "ok": "solid",
    "warning": "dots",
    "error": "hatch",
    "confirmed": "solid",
}

# Geometry in viewBox units: the plot sits inside the margins, y labels left, x labels below.
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 60, 8, 14, 34


@dataclass(frozen=True)
class Row:
    label: str  # the bucket in full, for the table and the bar's tooltip
    tick: str | None  # a short axis label, or None for no tick at this bar
    values: tuple[int, ...]  # one per Chart.columns


@dataclass(frozen=True)
class Chart:
    """One chart: its accessible name and summary, its table, and which columns are drawn."""

    id: str  # unique on the page: element ids are derived from it
    title: str
    summary: str
    head: str  # the table's first column header (Hour, Day)
    columns: tuple[tuple[str, str], ...]  # (series key, translated label)
    drawn: int  # the first `drawn` columns are stacked in the bars
    rows: tuple[Row, ...]

    def totals(self) -> tuple[int, ...]:
        """Per column: the sum over the rows, or the last row's value for a level (a count
        at a moment, like confirmed subscribers) where a sum would mean nothing."""
        return tuple(
            self.rows[-1].values[i]
            if key in LEVELS and self.rows
            else sum(r.values[i] for r in self.rows)
            for i, (key, _label) in enumerate(self.columns)
        )

    @property
    def svg(self) -> Markup:
        return Markup(stacked_bars_svg(self))

    @property
    def legend(self) -> list[tuple[str, str, int]]:
        """(series key, label, total) for each drawn series, for the direct labels."""
        return self.labelled_totals()[: self.drawn]

    def labelled_totals(self) -> list[tuple[str, str, int]]:
        """(series key, label, total) for every column; a level's label says it is the latest."""
        return [
            (key, _("%(name)s now", name=label) if key in LEVELS else label, total)
            for (key, label), total in zip(self.columns, self.totals(), strict=True)
        ]


# --- time buckets ----------------------------------------------------------------


def hours_ending(now: datetime, count: int) -> list[datetime]:
    """The `count` UTC hour starts up to and including the hour of `now`, oldest first."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=count - 1 - i) for i in range(count)]


def days_ending(now: datetime, count: int) -> list[date]:
    """The `count` UTC days up to and including today, oldest first."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- the three charts ------------------------------------------------------------


def deliveries_chart(store, now: datetime, lang: str, zone: str) -> Chart:
    """Deliveries per hour by outcome (sent, failed, expired, suppressed, cancelled), 7 days."""
    hours = hours_ending(now, HOURS_DELIVERIES)
    counts = store.deliveries_by_hour(hours[0], hours[-1] + timedelta(hours=1))
    columns = tuple((k, str(DELIVERY_STATES[k])) for k in DELIVERY_OUTCOMES)
    rows = _hour_rows(
        hours, lang, zone, lambda h: [counts.get((h, k), 0) for k in DELIVERY_OUTCOMES]
    )
    chart_id = "chart-deliveries"
    title = _("Deliveries per hour, last 7 days")
    return _chart(chart_id, title, _("Hour"), columns, len(columns), rows, lang)


def poll_charts(store, feeds: list, now: datetime, lang: str, zone: str) -> list[Chart]:
    """Poll outcomes per hour for each configured feed (FeedHealth list), last 24 hours."""
    hours = hours_ending(now, HOURS_POLLS)
    counts = store.polls_by_hour(hours[0], hours[-1] + timedelta(hours=1))
    ids = {f["url"]: f["id"] for f in store.list_feeds()}
    columns = tuple((k, str(POLL_LABELS[k])) for k in POLL_OUTCOMES)
    charts = []
    for number, feed in enumerate(feeds, start=1):
        feed_id = ids.get(feed.url)
        rows = _hour_rows(
            hours,
            lang,
            zone,
            lambda h, feed_id=feed_id: [counts.get((feed_id, h, k), 0) for k in POLL_OUTCOMES],
        )
        title = _("Polls per hour, last 24 hours: %(feed)s", feed=feed.title or feed.url)
        charts.append(
            _chart(f"chart-polls-{number}", title, _("Hour"), columns, len(columns), rows, lang)
        )
    return charts


def subscribers_chart(store, now: datetime, lang: str) -> Chart:
    """Confirmed subscribers at the end of each UTC day (today: now), with sign-ups and
    unsubscribes per day, last 90 days."""
    days = days_ending(now, DAYS_SUBSCRIBERS)
    moves = store.subscribers_by_day(_day_start(days[0]), _day_start(days[-1]) + timedelta(days=1))
    confirmed = moves["confirmed_at_start"]
    rows = []
    for day in days:
        confirmed += moves["confirmed"].get(day, 0) - moves["left"].get(day, 0)
        values = (confirmed, moves["signups"].get(day, 0), moves["unsubscribes"].get(day, 0))
        tick = format_skeleton("MMMd", day, locale=lang) if day.day in (1, 15) else None
        rows.append(Row(day.isoformat(), tick, values))
    columns = tuple((k, str(label)) for k, label in SUBSCRIBER_LABELS.items())
    title = _("Confirmed subscribers per day (UTC), last 90 days")
    return _chart("chart-subscribers", title, _("Day"), columns, 1, tuple(rows), lang)


def _hour_rows(hours: list[datetime], lang: str, zone: str, values) -> tuple[Row, ...]:
    tz = times.zone(zone)
    every = 6 if len(hours) <= 24 else 24
    rows = []
    for hour in hours:
        local = hour.astimezone(tz)
        label = format_datetime(local, "yyyy-MM-dd HH:mm", locale=lang)
        label = f"{label} {times.zone_abbreviation(local, lang)}"
        tick = None
        if local.hour % every == 0 and local.minute == 0:
            pattern = "HH:mm" if every == 6 else "EEE d"
            tick = format_datetime(local, pattern, locale=lang)
        rows.append(Row(label, tick, tuple(values(hour))))
    return tuple(rows)


def _chart(chart_id, title, head, columns, drawn, rows, lang) -> Chart:
    chart = Chart(chart_id, title, "", head, columns, drawn, rows)
    return Chart(chart_id, title, _summary(chart, lang), head, columns, drawn, rows)


def _summary(chart: Chart, lang: str) -> str:
    """The <desc>: the range, each drawn series' total and the highest bar, in words."""
    if not chart.rows:
        return _("No data.")
    totals = ", ".join(
        f"{label} {format_decimal(total, locale=lang)}"
        for _k, label, total in chart.labelled_totals()
    )
    heights = [sum(r.values[: chart.drawn]) for r in chart.rows]
    peak = max(range(len(heights)), key=lambda i: heights[i])
    return _(
        "From %(first)s to %(last)s. Totals: %(totals)s. Highest: %(peak)s (%(at)s).",
        first=chart.rows[0].label,
        last=chart.rows[-1].label,
        totals=totals,
        peak=format_decimal(heights[peak], locale=lang),
        at=chart.rows[peak].label,
    )


# --- drawing ---------------------------------------------------------------------


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_bars_svg(chart: Chart) -> str:
    """The chart as an <svg> element: one <g class="bar"> per row, segments bottom to top."""
    cid = chart.id
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    heights = [sum(r.values[: chart.drawn]) for r in chart.rows]
    top = nice_ceiling(max(heights, default=0))
    slot = plot_w / max(len(chart.rows), 1)
    width = max(slot * 0.8, 1.0) if slot >= 2 else slot
    parts = [
        f'<svg class="chart" id="{cid}" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" aria-labelledby="{cid}-title {cid}-desc" focusable="false" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{cid}-title">{escape(chart.title)}</title>',
        f'<desc id="{cid}-desc">{escape(chart.summary)}</desc>',
        _defs(chart),
    ]
    for i in range(5):  # gridlines and y labels at 0, 1/4, … of the top
        value = top * i // 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>'
        )
    for index, row in enumerate(chart.rows):
        x = LEFT + slot * index + (slot - width) / 2
        parts.append(_bar(chart, row, x, width, plot_h, top))
        if row.tick:
            parts.append(_tick(row.tick, x, TOP + plot_h))
    parts.append("</svg>")
    return "".join(parts)


def _tick(text: str, x: float, base: int) -> str:
    """A tick under the bar at x, labelled unless the label would run out of the box (a
    phone's larger axis text needs about 70 units)."""
    line = f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}"/>'
    if x > WIDTH - RIGHT - 70:
        return line
    return f'{line}<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}">{escape(text)}</text>'


def _bar(chart: Chart, row: Row, x: float, width: float, plot_h: int, top: int) -> str:
    shown = ", ".join(
        f"{label} {value}" for (_key, label), value in zip(chart.columns, row.values, strict=True)
    )
    parts = [f'<g class="bar"><title>{escape(f"{row.label}: {shown}")}</title>']
    base = TOP + plot_h
    for (key, _label), value in zip(chart.columns[: chart.drawn], row.values, strict=False):
        if value <= 0:
            continue
        height = plot_h * value / top
        base -= height
        parts.append(
            f'<rect class="seg s-{key}" x="{x:.2f}" y="{base:.2f}" width="{width:.2f}" '
            f'height="{height:.2f}" fill={quoteattr(f"url(#{chart.id}-{key})")}/>'
        )
    parts.append("</g>")
    return "".join(parts)


def _defs(chart: Chart) -> str:
    """One pattern per drawn series: its colour (class s-KEY) and marks, so colour is not the
    only difference between series (WCAG 1.4.1)."""
    patterns = []
    for key, _label in chart.columns[: chart.drawn]:
        marks = _PATTERNS[_SERIES_PATTERN.get(key, "solid")]
        patterns.append(
            f'<pattern id="{chart.id}-{key}" width="6" height="6" patternUnits="userSpaceOnUse">'
            f'<rect class="s-{key}" width="6" height="6"/>{marks}</pattern>'
        )
    return f"<defs>{''.join(patterns)}</defs>"
