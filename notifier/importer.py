"""Subscriber import from another list, and the CSV export (issue 15, parts 4 and 5).

Import. A CSV file (RFC 4180; UTF-8, a BOM allowed; comma, semicolon or tab separated, found
from the header line) with a header row. Columns are matched by name, in any order, case and
`_`/`-`/space insensitive (COLUMNS): email (required), language, time zone, components (ids or
names from the catalogue, separated by `;`, `|` or `,`; empty: all components), consent source
and consent date. Statuspage's own subscriber CSV export is read as is: its columns carry the
field names of the Statuspage subscriber object (REST API v1 `subscribers`: mode, email,
components, created_at, quarantined_at) or the words of its import template (Type, Email
address, Components); README "Import and export" lists the mapping. Rows of another type
(sms, webhook, slack) and rows Statuspage quarantined (its mail to them bounced) are skipped.

Policy, always chosen explicitly by the operator (Policy):
- consent: the people agreed elsewhere; imported as confirmed, with a consent record that says
  where (`source`) and when (the row's consent date, else the policy's `consented_at`).
- reconfirm: imported as pending, each new address gets a confirmation mail through the same
  path as a sign-up (notifications.queue_personal: batched per minute), at most
  RECONFIRM_PER_MINUTE per minute (later ones are queued for later minutes), so a big list does
  not arrive at the mailbox providers as one burst from a sender they do not know yet.
  Unconfirmed ones are purged after subscriptions.UNCONFIRMED_TTL like any sign-up.

Per row the outcome is one of: new; unchanged; updated (language, time zone or components
differ from what is stored, or a pending address is now confirmed by the consent policy);
skipped, with a reason (unsubscribed or suppressed here: an import never resubscribes those;
not an email subscriber; quarantined by Statuspage); or an error with its line number
(ISSUES lists the kinds). An import never creates a second row for an address: addresses are
normalized as the sign-up form does (forms.normalize_email: lower case), a repeat in the file
is an error, and running the same file twice leaves everything unchanged.

The dry run and the real run are one function (run_import): the plan is computed the same
way, and the real run computes it inside the write transaction it then applies it in. Every
real run is audited with its counts; addresses never reach the audit or the app log.

The export (notifier/exporter.py) writes the import's own columns, so an export imports back
unchanged. It prefixes cells a spreadsheet would run as a formula with `'` (OWASP "CSV
Injection"); unescape_cell here removes that prefix again.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from . import tokens
from .forms import build_catalogue, normalize_email, zone_names
from .i18n import DEFAULT_TIMEZONES, LANGUAGES
from .notifications import queue_personal
from .privacy import mask_addresses

log = logging.getLogger(__name__)

MAX_ROWS = 100_000
MAX_SOURCE = 200  # characters of consent source kept
RECONFIRM_PER_MINUTE = 500
IMPORTED_CONSENT_VERSION = "import"
# Canonical column -> header names it is read from, in order of preference (normalized:
# lower case, runs of space, "_" and "-" as one space).
COLUMNS = {
    "email": ("email", "email address", "e mail", "e mail address", "recipient"),
    "type": ("type", "mode", "subscriber type", "subscription type", "method"),
    "language": ("language", "lang", "locale"),
    "timezone": ("time zone", "timezone", "tz"),
    "components": ("components", "component", "component ids", "component names"),
    "consent_source": ("consent source", "source"),
    "consented_at": (
        "consented at",
        "consent date",
        "consent at",
        "confirmed at",
        "created at",
        "subscribed at",
    ),
    "quarantined_at": ("quarantined at", "quarantined"),
}
ISSUES = {
    # errors
    "bad_address": "not a valid email address",
    "missing_address": "no email address",
    "unknown_component": "unknown component",
    "ambiguous_component": "component name used more than once in the catalogue; use its id",
    "unknown_zone": "unknown time zone",
    "unknown_language": "unknown language (de or en)",
    "bad_date": "not a date (YYYY-MM-DD) or a date in the future",
    "duplicate_in_file": "the same address as an earlier line",
    # skipped
    "unsubscribed": "unsubscribed here; an import never resubscribes",
    "suppressed": "suppressed here (bounced or complained); an import never resubscribes",
    "not_email": "not an email subscriber",
    "quarantined": "quarantined by Statuspage (mail to it bounced there)",
}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_SEPARATORS = re.compile(r"[;|\n]")
_LANGUAGE_WORDS = {"german": "de", "deutsch": "de", "english": "en", "englisch": "en"}


FILE_PROBLEMS = {
    "not_utf8": "the file is not UTF-8 text (save it as CSV UTF-8)",
    "empty": "the file is empty",
    "no_email_column": "no email column in the header row",
    "bad_csv": "line {line}: not valid CSV ({detail})",
    "too_many_rows": "more than {limit} rows; split the file",
}


class ImportFileError(ValueError):
    """The file as a whole cannot be imported: `code` is a key of FILE_PROBLEMS, `params`
    fill in its text (str(exc) is the English line the CLI prints)."""

    def __init__(self, code: str, **params):
        self.code, self.params = code, params
        super().__init__(FILE_PROBLEMS[code].format(**params))


@dataclass(frozen=True)
class Policy:
    """How imported addresses come in: 'consent' (confirmed, with source and date) or
    'reconfirm' (pending, confirmation mail). Build it with consent() or reconfirm()."""

    mode: str
    source: str = ""
    consented_at: datetime | None = None
    default_language: str = "en"

    @classmethod
    def consent(cls, source: str, consented_at: datetime, default_language: str = "en"):
        source = mask_addresses(" ".join(source.split()))[:MAX_SOURCE]
        if not source:
            raise ValueError("the consent source is empty")
        return cls("consent", source, consented_at, default_language)

    @classmethod
    def reconfirm(cls, source: str = "", default_language: str = "en"):
        """`source`, optional, is noted in the consent records as where the list came from."""
        return cls("reconfirm", mask_addresses(" ".join(source.split()))[:MAX_SOURCE], None,
                   default_language)  # fmt: skip


@dataclass(frozen=True)
class Issue:
    line: int
    code: str
    value: str = ""  # the offending component, zone, language or date; never an address

    def text(self) -> str:
        value = f"line {self.value}" if self.code == "duplicate_in_file" else self.value
        detail = f": {value}" if value else ""
        return f"line {self.line}: {ISSUES[self.code]}{detail}"


@dataclass(frozen=True)
class ImportReport:
    """What an import did, or (dry run) would do. Equal for a dry run and the real run that
    follows it on the same data (`dry_run` is left out of the comparison)."""

    rows: int = 0
    new: int = 0
    unchanged: int = 0
    updated: int = 0
    skipped: tuple[Issue, ...] = ()
    errors: tuple[Issue, ...] = ()
    confirmations: int = 0  # confirmation mails queued (reconfirm policy)
    ignored_columns: tuple[str, ...] = ()
    dry_run: bool = field(default=False, compare=False)

    def counts(self) -> dict:
        """The numbers alone: for the audit log."""
        return {
            "rows": self.rows,
            "new": self.new,
            "unchanged": self.unchanged,
            "updated": self.updated,
            "skipped": len(self.skipped),
            "errors": len(self.errors),
            "confirmations": self.confirmations,
        }

    def lines(self) -> list[str]:
        """The report as the CLI prints it (line numbers, never addresses)."""
        c = self.counts()
        head = "dry run, nothing was saved" if self.dry_run else "imported"
        out = [
            f"{head}: {c['rows']} rows: {c['new']} new, {c['unchanged']} unchanged, "
            f"{c['updated']} updated, {c['skipped']} skipped, {c['errors']} errors; "
            f"{c['confirmations']} confirmation mails "
            + ("would be queued" if self.dry_run else "queued")
        ]
        if self.ignored_columns:
            out.append("ignored columns: " + ", ".join(self.ignored_columns))
        out += [f"skipped {i.text()}" for i in self.skipped]
        out += [f"error {i.text()}" for i in self.errors]
        return out


@dataclass(frozen=True)
class Row:
    """One parsed row. None: the file has no such column or the cell is empty (keep what is
    stored; defaults for a new address). components () means all components."""

    line: int
    email: str
    language: str | None
    timezone: str | None
    components: tuple[str, ...] | None
    source: str | None
    consented_at: datetime | None


# --- reading the file ----------------------------------------------------------------
def decode(data: bytes) -> str:
    """UTF-8 text of an uploaded file (a BOM from Excel is dropped); ImportFileError else."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError("not_utf8") from None


def _header_key(name: str) -> str:
    return " ".join(re.split(r"[\s_\-]+", name.strip().lower())).strip()


def _columns(header: list[str]) -> tuple[dict[str, int], tuple[str, ...]]:
    keys = [_header_key(h) for h in header]
    found = {}
    for column, aliases in COLUMNS.items():
        for alias in aliases:
            if alias in keys:
                found[column] = keys.index(alias)
                break
    if "email" not in found:
        raise ImportFileError("no_email_column")
    used = set(found.values())
    ignored = tuple(h for i, h in enumerate(header) if i not in used and h.strip())
    return found, ignored


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each record after the header; blank lines skipped."""
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    line = 1
    try:
        for cells in reader:
            yield line, cells
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError("bad_csv", line=reader.line_num, detail=str(exc)) from None


def _cell(cells: list[str], columns: dict[str, int], name: str) -> str | None:
    index = columns.get(name)
    if index is None or index >= len(cells):
        return None
    value = unescape_cell(cells[index].strip())
    return value or None


def unescape_cell(value: str) -> str:
    """Undo the export's formula guard: "'=x" -> "=x" (see escape_cell)."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_PREFIXES:
        return value[1:]
    return value


def parse_date(value: str, now: datetime) -> datetime:
    """A consent date: YYYY-MM-DD (midnight UTC) or an ISO 8601 time (Statuspage writes
    "2019-02-20T12:00:19.418-06:00"); naive times are UTC. ValueError when unreadable or
    later than `now`."""
    text = value.strip().removesuffix(" UTC").replace(" ", "T", 1)
    try:
        if len(text) == 10:
            parsed = datetime.combine(datetime.fromisoformat(text).date(), time(), UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # a time at the edge of year 1 or 9999 moved past it by its offset
        raise ValueError(value) from None
    if parsed > now:
        raise ValueError(value)
    return parsed


class _Catalogue:
    """Component ids and names -> the choices to store (forms.Catalogue.choices: a chosen
    group is stored as the group, its members not on their own)."""

    def __init__(self, store):
        self.forms = build_catalogue(store)
        self.ids: set[str] = set()
        self.names: dict[str, set[str]] = {}
        for c in store.list_components():
            self.ids.add(c["id"])
            self.names.setdefault(c["name"].strip().casefold(), set()).add(c["id"])

    def resolve(self, value: str) -> tuple[str, ...] | Issue:
        """Ids for a components cell; an Issue (with line 0) for the first unknown part."""
        whole = self._one(value)
        if not isinstance(whole, Issue):
            return self.forms.choices(whole)
        parts = [p.strip() for p in _SEPARATORS.split(value) if p.strip()]
        if len(parts) == 1 and "," in value:
            parts = [p.strip() for p in value.split(",") if p.strip()]
        ids: list[str] = []
        for part in parts:
            found = self._one(part)
            if isinstance(found, Issue):
                return found
            ids.extend(found)
        return self.forms.choices(ids)

    def _one(self, value: str) -> tuple[str, ...] | Issue:
        if value in self.ids:
            return (value,)
        named = self.names.get(value.casefold(), set())
        if len(named) == 1:
            return tuple(named)
        return Issue(0, "ambiguous_component" if named else "unknown_component", value[:80])


_DOT_ATOM = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


@functools.lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    """The normalized domain as forms.normalize_email writes it, None when it refuses it."""
    try:
        return normalize_email("a@" + domain).partition("@")[2]
    except ValueError:
        return None


def normalize_address(raw: str) -> str:
    """forms.normalize_email, the same result or ValueError, faster for a list: a plain ASCII
    local part (RFC 5322 dot-atom) is checked here and the domain once per domain (a list has
    many addresses per domain; email-validator's domain checks were 2/3 of a 10,000-row
    import). Anything else goes through normalize_email whole."""
    local, at, domain = raw.lower().rpartition("@")
    if at and len(local) <= 64 and len(raw) <= 254 and _DOT_ATOM.match(local):
        normalized = _domain(domain)
        if normalized is None:
            raise ValueError(raw)
        return f"{local}@{normalized}"
    return normalize_email(raw)


def _language(value: str) -> str | None:
    key = value.strip().lower()
    key = _LANGUAGE_WORDS.get(key, re.split(r"[-_]", key)[0])
    return key if key in LANGUAGES else None


def _timezone(value: str) -> str | None:
    if value.upper() in ("UTC", "ETC/UTC", "GMT", "Z"):
        return "UTC"
    return value if value in zone_names() else None


def parse_rows(text: str, store, now: datetime):
    """The file's rows: (rows, skipped, errors, ignored columns, row count)."""
    records = _records(text.removeprefix("\ufeff"))
    try:
        _, header = next(records)
    except StopIteration:
        raise ImportFileError("empty") from None
    columns, ignored = _columns(header)
    catalogue = _Catalogue(store)
    rows: list[Row] = []
    skipped: list[Issue] = []
    errors: list[Issue] = []
    first_line: dict[str, int] = {}
    count = 0
    for line, cells in records:
        if not any(c.strip() for c in cells):
            continue
        count += 1
        if count > MAX_ROWS:
            raise ImportFileError("too_many_rows", limit=MAX_ROWS)
        kind = (_cell(cells, columns, "type") or "email").lower()
        if kind != "email":
            skipped.append(Issue(line, "not_email", kind[:20]))
            continue
        if _cell(cells, columns, "quarantined_at"):
            skipped.append(Issue(line, "quarantined"))
            continue
        parsed = _parse_row(line, cells, columns, catalogue, now)
        if isinstance(parsed, Issue):
            errors.append(parsed)
        elif parsed.email in first_line:
            errors.append(Issue(line, "duplicate_in_file", str(first_line[parsed.email])))
        else:
            first_line[parsed.email] = line
            rows.append(parsed)
    return rows, skipped, errors, ignored, count


def _parse_row(line, cells, columns, catalogue: _Catalogue, now) -> Row | Issue:
    raw = _cell(cells, columns, "email")
    if raw is None:
        return Issue(line, "missing_address")
    try:
        email = normalize_address(raw)
    except ValueError:
        return Issue(line, "bad_address")
    language = _cell(cells, columns, "language")
    if language is not None and (language := _language(language)) is None:
        return Issue(line, "unknown_language", _cell(cells, columns, "language")[:20])
    zone = _cell(cells, columns, "timezone")
    if zone is not None and _timezone(zone) is None:
        return Issue(line, "unknown_zone", zone[:64])
    components = None
    if "components" in columns:
        value = _cell(cells, columns, "components")
        components = () if value is None else catalogue.resolve(value)
        if isinstance(components, Issue):
            return Issue(line, components.code, components.value)
    consented = _cell(cells, columns, "consented_at")
    if consented is not None:
        try:
            consented = parse_date(consented, now)
        except ValueError:
            return Issue(line, "bad_date", consented[:40])
    source = _cell(cells, columns, "consent_source")
    source = mask_addresses(" ".join(source.split()))[:MAX_SOURCE] if source else None
    return Row(line, email, language, zone and _timezone(zone), components, source, consented)


# --- planning and applying -------------------------------------------------------------
@dataclass
class _Plan:
    inserts: list[Row] = field(default_factory=list)
    updates: list[tuple[Row, dict]] = field(default_factory=list)  # (row, stored)
    unchanged: int = 0
    skipped: list[Issue] = field(default_factory=list)


def _changes(row: Row, stored: dict, policy: Policy) -> dict:
    """Columns of a stored subscriber the row changes (empty: unchanged)."""
    out = {}
    if row.language is not None and row.language != stored["language"]:
        out["language"] = row.language
    if row.timezone is not None and row.timezone != stored["timezone"]:
        out["timezone"] = row.timezone
    if row.components is not None:
        wanted_all = not row.components
        if wanted_all != bool(stored["all_components"]) or (
            not wanted_all and list(row.components) != stored["components"]
        ):
            out["all_components"] = wanted_all
            out["components"] = row.components
    if policy.mode == "consent" and stored["state"] == "pending":
        out["state"] = "confirmed"
    return out


def _plan(store, rows: list[Row], policy: Policy) -> _Plan:
    plan = _Plan()
    stored = store.subscribers_by_email(r.email for r in rows)
    for row in rows:
        current = stored.get(row.email)
        if current is None:
            plan.inserts.append(row)
        elif current["state"] in ("unsubscribed", "suppressed"):
            plan.skipped.append(Issue(row.line, current["state"]))
        elif _changes(row, current, policy):
            plan.updates.append((row, current))
        else:
            plan.unchanged += 1
    return plan


def run_import(
    store, settings, text: str, policy: Policy, now: datetime, *, dry_run: bool, actor: str
) -> ImportReport:
    """Import the CSV `text` under `policy`, or (dry_run) compute what that would do and
    write nothing. Raises ImportFileError for a file that cannot be read at all; row problems
    are in the report. The real run is audited as "subscribers.import" with the counts."""
    rows, skipped, errors, ignored, count = parse_rows(text, store, now)

    def plan_report() -> tuple[_Plan, ImportReport]:
        plan = _plan(store, rows, policy)
        report = ImportReport(
            rows=count,
            new=len(plan.inserts),
            unchanged=plan.unchanged,
            updated=len(plan.updates),
            skipped=tuple(sorted([*skipped, *plan.skipped], key=lambda i: i.line)),
            errors=tuple(errors),
            confirmations=len(plan.inserts) if policy.mode == "reconfirm" else 0,
            ignored_columns=ignored,
            dry_run=dry_run,
        )
        return plan, report

    if dry_run:
        return plan_report()[1]
    with store.write():
        plan, report = plan_report()
        _apply(store, settings, plan, policy, now)
        store.audit(
            actor, "subscribers.import", None, {"policy": policy.mode, **report.counts()}, now
        )
    log.info("subscriber import by %s (%s): %s", actor, policy.mode, report.counts())
    if report.confirmations:
        from .delivery.wake import work_queued

        work_queued(store, now)
    return report


def _apply(store, settings, plan: _Plan, policy: Policy, now: datetime) -> None:
    confirmed = policy.mode == "consent"
    news = []
    for row in plan.inserts:
        language = row.language or policy.default_language
        news.append(
            {
                "email": row.email,
                "language": language,
                "timezone": row.timezone or DEFAULT_TIMEZONES[language],
                "all_components": not row.components,
                "state": "confirmed" if confirmed else "pending",
                "token_nonce": None if confirmed else tokens.new_nonce(),
                "link_nonce": tokens.new_nonce(),
                "confirmed_at": now if confirmed else None,
            }
        )
    ids = store.insert_imported_subscribers(news, now)
    store.add_components_many(
        (ids[row.email], cid) for row in plan.inserts for cid in row.components or ()
    )
    consents = [_consent(ids[row.email], row, new["language"], policy, settings, now)
                for row, new in zip(plan.inserts, news, strict=True)]  # fmt: skip
    for row, current in plan.updates:
        changes = _changes(row, current, policy)
        components = changes.pop("components", None)
        if changes.get("state") == "confirmed":
            changes.update(token_nonce=None, confirmed_at=now)
            language = changes.get("language", current["language"])
            consents.append(_consent(current["id"], row, language, policy, settings, now))
            store.cancel_pending_for_subscriber(current["id"], "confirmed", now)
        store.update_subscriber(current["id"], **changes, updated_at=now)
        if components is not None:
            store.set_subscriber_components(current["id"], components)
    store.insert_imported_consents(consents)
    if not confirmed:
        _queue_confirmations(store, [ids[row.email] for row in plan.inserts], now)


def _consent(subscriber_id, row: Row, language, policy: Policy, settings, now) -> dict:
    if policy.mode == "consent":
        when = row.consented_at or policy.consented_at
        version, confirmed_at = IMPORTED_CONSENT_VERSION, when
    else:  # they confirm our consent text by the link in the mail, as after a sign-up
        when, version, confirmed_at = now, settings.consent_version, None
    return {
        "subscriber_id": subscriber_id,
        "consent_version": version,
        "language": language,
        "signup_at": when,
        "confirmed_at": confirmed_at,
        "source": row.source or policy.source or "import",
        "imported_at": now,
    }


def _queue_confirmations(store, subscriber_ids: list[int], now: datetime) -> None:
    """Confirmation mails, RECONFIRM_PER_MINUTE per minute: the k-th batch is queued as of
    minute k, so dispatch claims it no earlier (its due time) and it expires PERSONAL_TTL
    after that; each minute's batch is one shared notification (queue_personal)."""
    for index, subscriber_id in enumerate(subscriber_ids):
        at = now + timedelta(minutes=index // RECONFIRM_PER_MINUTE)
        queue_personal(store, "confirmation", subscriber_id, at)
        store.record_confirmation_send(subscriber_id, at)
