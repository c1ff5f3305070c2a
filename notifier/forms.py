"""The sign-up and preferences forms: fields, limits, validation, and the catalogue they offer.

Every field is length-capped and rejects control characters; choices are checked against
fixed lists (languages, IANA zones) or the cached Statuspage catalogue. Messages go through
gettext. CSRF is not checked here: CSRFProtect guards every POST of the app (security.py).
"""

from __future__ import annotations

import functools
import unicodedata
import weakref
import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeSerializer
from markupsafe import Markup, escape
from wtforms import (
    BooleanField,
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import StopValidation, ValidationError

from .delivery.mailheaders import UnsafeHeader, plain_address
from .delivery.safehttp import UnsafeTarget, check_target
from .i18n import DEFAULT_TIMEZONES, LANGUAGES
from .notifications import page_name
from .subscriptions import Preferences

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
MAX_CHOICE_LENGTH = 64  # component ids, zone names, flags
MAX_COMPONENTS = 500
MAX_TARGET_LENGTH = 2048  # incoming-webhook URLs carry long tokens (Teams workflows ~400)
MAX_RENDERED = 32  # cached renderings per catalogue (Catalogue.remember)
# Language names are written in their own language on purpose (autonyms), in every UI language.
LANGUAGE_CHOICES = [("de", "Deutsch"), ("en", "English")]
ZONE_AREAS = {
    "Africa": _l("Africa"),
    "America": _l("America"),
    "Antarctica": _l("Antarctica"),
    "Asia": _l("Asia"),
    "Atlantic": _l("Atlantic"),
    "Australia": _l("Australia"),
    "Europe": _l("Europe"),
    "Indian": _l("Indian Ocean"),
    "Pacific": _l("Pacific"),
}


# --- time zones ----------------------------------------------------------------------
@functools.cache
def zone_names() -> frozenset[str]:
    """Canonical Area/City zones plus UTC; no legacy aliases (US/Eastern) or Etc/GMT+5."""
    zones = {z for z in zoneinfo.available_timezones() if z.split("/")[0] in ZONE_AREAS}
    return frozenset(zones | {"UTC"})


@functools.cache
def _zones_by_area() -> tuple[tuple[str, tuple[str, ...]], ...]:
    areas: dict[str, list[str]] = {}
    for zone in sorted(zone_names() - {"UTC"}):
        areas.setdefault(zone.split("/")[0], []).append(zone)
    return tuple((area, tuple(zones)) for area, zones in sorted(areas.items()))


def zone_options(selected: str | None, language: str) -> Markup:
    """The time zone <option>s, `selected` marked; the markup is built once per language."""
    html = _zone_options_html(language)
    if selected:
        needle = f'<option value="{escape(selected)}">'
        html = html.replace(needle, needle[:-1] + " selected>", 1)
    return Markup(html)


@functools.cache
def _zone_options_html(language: str) -> str:
    # ~430 options on the busiest page: rendering them through Jinja on every request cost
    # more than everything else in GET / together. They were also most of its 47 KB, so each
    # is short: the label drops the area its <optgroup> already names ("Berlin" under
    # "Europe"; screen readers announce the group), and the end tag, which HTML lets an
    # option omit (WHATWG HTML, "Optional tags": the next <option> or </optgroup> closes it).
    groups = [("UTC", ["UTC"])] + [(str(ZONE_AREAS[a]), zones) for a, zones in _zones_by_area()]
    return "".join(
        f'<optgroup label="{escape(label)}">'
        + "".join(f'<option value="{z}">{escape(_zone_label(z))}' for z in zones)
        + "</optgroup>"
        for label, zones in groups
    )


def _zone_label(zone: str) -> str:
    """'America/Argentina/Buenos_Aires' -> 'Argentina/Buenos Aires'; 'UTC' stays."""
    return zone.partition("/")[2].replace("_", " ") or zone


# --- the component catalogue ---------------------------------------------------------
@dataclass(frozen=True)
class Component:
    id: str
    name: str


@dataclass(frozen=True)
class Group:
    """A Statuspage component group; a top-level component on its own has id None."""

    id: str | None
    name: str | None
    members: tuple[Component, ...]


@dataclass(frozen=True)
class Section:
    """One status page; the name is shown only when several pages are configured."""

    name: str
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Catalogue:
    sections: tuple[Section, ...]
    # Groups a subscriber chose that are gone from the page, with their last known members
    # (offered on that subscriber's preferences page only, see kept_groups).
    kept: tuple[Group, ...] = ()
    # The product boxes as HTML with none ticked, per (language, aria attributes): built by
    # component_list once per catalogue, so a sync that changes it starts afresh.
    rendered: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def remember(self, key, value) -> None:
        """Keep a rendering in `rendered`, up to MAX_RENDERED of them: keys come from the
        request (language, address), and a proxy that passes SCRIPT_NAME through could
        otherwise make one for every prefix a client sends."""
        if len(self.rendered) < MAX_RENDERED:
            self.rendered[key] = value

    @functools.cached_property
    def members(self) -> dict[str, tuple[str, ...]]:
        """Each selectable id (component or group) -> the component ids it stands for."""
        out = {}
        for group in (*(g for s in self.sections for g in s.groups), *self.kept):
            for c in group.members:
                out.setdefault(c.id, (c.id,))
            if group.id is not None:
                out[group.id] = tuple(c.id for c in group.members)
        return out

    @functools.cached_property
    def group_ids(self) -> frozenset[str]:
        return frozenset(
            g.id for g in (*(g for s in self.sections for g in s.groups), *self.kept) if g.id
        )

    def expand(self, ids) -> tuple[str, ...]:
        return tuple(sorted({cid for i in ids for cid in self.members.get(i, ())}))

    def choices(self, ids) -> tuple[str, ...]:
        """What to store for the ticked boxes: each ticked group as the group (its members
        are resolved at fan-out, so later members count), and each ticked component that no
        ticked group covers as that component. Sorted ids."""
        chosen = set(ids)
        groups = chosen & self.group_ids
        covered = {cid for g in groups for cid in self.members[g]}
        return tuple(sorted(groups | {i for i in chosen - groups if i not in covered}))

    def with_kept(self, groups) -> Catalogue:
        return replace(self, kept=tuple(groups))


def kept_groups(store, catalogue: Catalogue, chosen) -> tuple[Group, ...]:
    """The chosen groups the page no longer offers (gone, or left without members), each with
    the members it was last seen with; name order. Ids that were never a group are skipped."""
    missing = sorted(set(chosen) - set(catalogue.members))
    if not missing:
        return ()
    found: dict[str, tuple[str, list[Component]]] = {}
    for row in store.remembered_group_members(missing):
        _, members = found.setdefault(row["group_id"], (row["group_name"], []))
        members.append(Component(row["component_id"], row["component_name"]))
    groups = [Group(gid, name, tuple(members)) for gid, (name, members) in found.items()]
    return tuple(sorted(groups, key=lambda g: (g.name or "", g.id or "")))


_catalogues: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def load_catalogue(store) -> Catalogue:
    """The catalogue for the forms; rebuilt only after the poller synced components again."""
    stamp = store.catalogue_stamp()
    cached = _catalogues.get(store)
    if cached is None or cached[0] != stamp:
        cached = (stamp, build_catalogue(store))
        _catalogues[store] = cached
    return cached[1]


def build_catalogue(store) -> Catalogue:
    """Groups with their members, in status-page order, per configured page."""
    feeds = {f["id"]: page_name(f) for f in store.list_feeds()}
    rows = store.list_components()
    by_feed: dict[int, list[dict]] = {}
    for row in rows:
        by_feed.setdefault(row["feed_id"], []).append(row)
    sections = []
    for feed_id, components in by_feed.items():
        members: dict[str, list[Component]] = {}
        for c in components:
            if c["group_id"] and not c["is_group"]:
                members.setdefault(c["group_id"], []).append(Component(c["id"], c["name"]))
        groups = []
        for c in components:  # already ordered by position
            if c["is_group"]:
                if members.get(c["id"]):
                    groups.append(Group(c["id"], c["name"], tuple(members[c["id"]])))
            elif not c["group_id"]:
                groups.append(Group(None, None, (Component(c["id"], c["name"]),)))
        if groups:
            sections.append(Section(feeds.get(feed_id, "Sinch"), tuple(groups)))
    return Catalogue(tuple(sections))


def component_list(form: PreferencesForm, attrs: str, language: str) -> Markup:
    """The product boxes of `form` (templates/_components.html); `attrs` are the aria
    attributes every box carries, `language` the page language.

    ~90 boxes cost more to render than the rest of GET / together, so the untouched list (no
    box ticked, no gone groups: nothing of the visitor's in it) is rendered once per catalogue
    and language and reused; a ticked or kept box renders afresh.
    """
    chosen = form.components.data or []
    catalogue = form.catalogue
    key = None if chosen or catalogue.kept else (language, str(attrs))
    html = catalogue.rendered.get(key) if key else None
    if html is None:
        template = current_app.jinja_env.get_template("_components.html")
        html = Markup(template.render(catalogue=catalogue, chosen=chosen, attrs=attrs))
        if key:
            catalogue.remember(key, html)
    return html


# --- validators ----------------------------------------------------------------------
def _has_control_characters(value: str) -> bool:
    # Cc: C0/C1 controls incl. CR/LF/NUL; Cf: invisible format marks (bidi overrides, ZWSP);
    # Zl/Zp: line and paragraph separators. None belong in any field of these forms.
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def _strip_spaces(value):
    # Spaces only: a pasted address often has them; CR/LF/tabs are rejected, not cleaned.
    return value.strip(" ") if isinstance(value, str) else value


def no_control_characters(form, field) -> None:
    values = field.data if isinstance(field.data, list) else [field.data]
    if any(isinstance(v, str) and _has_control_characters(v) for v in values):
        raise StopValidation(_l("Please remove line breaks and other invisible characters."))


def capped(limit: int):
    def check(form, field) -> None:
        values = field.data if isinstance(field.data, list) else [field.data]
        if any(isinstance(v, str) and len(v) > limit for v in values):
            raise StopValidation(_l("This is longer than %(limit)s characters.", limit=limit))

    return check


def required(form, field) -> None:
    if not field.data:
        raise StopValidation(_l("Please fill in this field."))


def one_of(allowed, message):
    def check(form, field) -> None:
        if field.data not in allowed():
            raise StopValidation(message)

    return check


def normalize_email(raw: str) -> str:
    """The address as we store it, or ValueError (UnsafeHeader for one that email-validator
    takes but that is no plain addr-spec, e.g. an RFC 2047 encoded word, which a mail writer
    could decode into other recipients). No DNS lookups inside a request."""
    try:
        info = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        raise ValueError(raw) from None
    # Case-insensitive in practice; one row per mailbox keeps the per-address mail caps whole.
    return plain_address(info.ascii_email.lower())


def valid_email(form, field) -> None:
    try:
        field.data = normalize_email(field.data)
    except UnsafeHeader:
        raise ValidationError(
            _l(
                "We cannot send mail to an address written like this. Please enter a plain "
                "address, like name@example.com, without quotes or =?…?= parts."
            )
        ) from None
    except ValueError:
        raise ValidationError(
            _l("Please enter a valid email address, like name@example.com.")
        ) from None


# --- forms ---------------------------------------------------------------------------
class PreferencesForm(FlaskForm):
    class Meta:
        csrf = False  # CSRFProtect checks every POST before the view runs

    # Choices live in the class attributes below and the template renders them; the fields
    # only validate (wtforms' own choice handling would bring its untranslated messages).
    language_choices = LANGUAGE_CHOICES
    scope_choices = (("all", _l("All products")), ("selected", _l("Only the products I choose")))

    language = RadioField(
        _l("Language of the emails"),
        validate_choice=False,
        validators=[
            capped(MAX_CHOICE_LENGTH),
            no_control_characters,
            one_of(lambda: LANGUAGES, _l("Please choose German or English.")),
        ],
    )
    timezone = SelectField(
        _l("Time zone for times in the emails"),
        validate_choice=False,
        validators=[
            capped(MAX_CHOICE_LENGTH),
            no_control_characters,
            one_of(zone_names, _l("Please choose a time zone from the list.")),
        ],
    )
    scope = RadioField(
        _l("Products"),
        default="all",
        validate_choice=False,
        validators=[
            capped(MAX_CHOICE_LENGTH),
            no_control_characters,
            one_of(lambda: ("all", "selected"), _l("Please choose all or some products.")),
        ],
    )
    components = SelectMultipleField(
        _l("Products and components"),
        validate_choice=False,
        validators=[capped(MAX_CHOICE_LENGTH), no_control_characters],
    )
    notify_incidents = BooleanField(_l("Incidents"), default=True)
    notify_maintenance = BooleanField(_l("Scheduled maintenance"), default=True)
    maintenance_reminders = BooleanField(_l("Remind me before maintenance starts"), default=True)

    catalogue: Catalogue = Catalogue(())
    # The order fields appear on the page, for the error summary above the form.
    page_order = ("language", "notify_maintenance", "scope", "components", "timezone")

    def failed_fields(self) -> list:
        """Fields with errors, in page order (for the summary above the form)."""
        return [self[name] for name in self.page_order if self[name].errors]

    @classmethod
    def for_request(cls, catalogue: Catalogue, page_language: str, **data):
        """The form bound to the request, with defaults that suit the page language."""
        data.setdefault("language", page_language)
        data.setdefault("timezone", DEFAULT_TIMEZONES[data["language"]])
        form = cls(data=data)
        form.catalogue = catalogue
        return form

    def validate_components(self, field) -> None:
        chosen = field.data or []
        if len(chosen) > MAX_COMPONENTS:
            raise ValidationError(_l("Please choose fewer products."))
        if any(c not in self.catalogue.members for c in chosen):
            raise ValidationError(_l("The product list has changed; please choose again."))
        if self.scope.data == "selected" and not self.catalogue.expand(chosen):
            raise ValidationError(_l("Please choose at least one product, or all products."))

    def validate_notify_maintenance(self, field) -> None:
        if not (field.data or self.notify_incidents.data):
            raise ValidationError(_l("Please choose incidents, maintenance or both."))

    def preferences(self) -> Preferences:
        everything = self.scope.data == "all"
        reminders = self.maintenance_reminders  # None on the sign-up form: on
        return Preferences(
            language=self.language.data,
            timezone=self.timezone.data,
            all_components=everything,
            component_ids=() if everything else self.catalogue.choices(self.components.data),
            notify_incidents=bool(self.notify_incidents.data),
            notify_maintenance=bool(self.notify_maintenance.data),
            maintenance_reminders=reminders is None or bool(reminders.data),
        )


# Where a sign-up sends notifications (issue 12); names of products stay as their makers
# write them.
CHANNEL_CHOICES = (
    ("email", _l("Email")),
    ("slack", "Slack"),
    ("teams", "Microsoft Teams"),
    ("webhook", _l("Webhook")),
)


def target_error(channel: str, code: str):
    """The field error for an UnsafeTarget code (safehttp.check_target), per channel."""
    if code == "scheme":
        return _l("The address must start with https://.")
    if code == "host" and channel == "slack":
        return _l(
            "This is no Slack incoming webhook. Its address starts with "
            "https://hooks.slack.com/services/."
        )
    if code == "host" and channel == "teams":
        return _l(
            "This is no Microsoft Teams workflow webhook. Copy the address your Teams "
            "workflow “Post to a channel when a webhook request is received” shows."
        )
    if code == "address":
        return _l(
            "This address leads to a local or private network. We only send to public "
            "addresses on the internet."
        )
    if code == "unresolvable":
        return _l("We could not find this host. Please check the address.")
    return _l(
        "Please enter a complete web address without a user name, like "
        "https://example.com/hooks/status."
    )


class SubscribeForm(PreferencesForm):
    channel = RadioField(
        _l("Where should we send the notifications?"),
        default="email",
        validate_choice=False,
        validators=[
            capped(MAX_CHOICE_LENGTH),
            no_control_characters,
            one_of(
                lambda: [c for c, _ in CHANNEL_CHOICES],
                _l("Please choose email, Slack, Microsoft Teams or webhook."),
            ),
        ],
    )
    target_url = StringField(
        _l("Webhook address (URL)"),
        filters=[_strip_spaces],
        validators=[capped(MAX_TARGET_LENGTH), no_control_characters],
    )
    email = StringField(
        _l("Email address"),
        filters=[_strip_spaces],
        validators=[
            required,
            capped(MAX_EMAIL_LENGTH),
            no_control_characters,
            valid_email,
        ],
    )
    # Honeypot: hidden from people (CSS, aria-hidden, no tab stop), irresistible to bots.
    website = StringField(_l("Leave this field empty"))
    started = HiddenField()
    # Kept short: reminders are on for every new sign-up; the preferences page (linked in
    # every mail) turns them off.
    maintenance_reminders = None

    channel_choices = CHANNEL_CHOICES
    page_order = ("email", "channel", "target_url", *PreferencesForm.page_order)

    def validate_target_url(self, field) -> None:
        if self.channel.data == "email" or self.channel.errors:
            field.data = None  # only channels have a target; a leftover entry is ignored
            return
        if not field.data:
            raise ValidationError(_l("Please enter the webhook address for this channel."))

    def check_target(self, settings) -> bool:
        """After validate(): vet a channel's target with the address guard (it resolves the
        host, so it runs only for an otherwise valid form); the normalized URL replaces the
        entry. False with a field error when the target is refused."""
        if self.channel.data == "email":
            return True
        try:
            self.target_url.data = check_target(
                self.channel.data, self.target_url.data, settings, resolve=True
            )
        except UnsafeTarget as exc:
            self.target_url.errors = [target_error(self.channel.data, exc.code)]
            return False
        return True

    def looks_automated(self, secret_key: str, now: datetime, min_seconds: int) -> bool:
        """A filled honeypot, or sent faster than a person can (or without our timestamp)."""
        if self.website.data:
            return True
        age = seconds_since(secret_key, self.started.data, now)
        return age is None or age < min_seconds

    def stamp_expired(self, secret_key: str, now: datetime) -> bool:
        """Our stamp, but older than STARTED_MAX_AGE: the form must be loaded again."""
        age = seconds_since(secret_key, self.started.data, now, max_age=None)
        return age is not None and age > STARTED_MAX_AGE_SECONDS


# --- fill-in time ----------------------------------------------------------------------
@functools.cache
def _started_serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt="status-notifier/form-started")


# A stamp serves one hour of sign-ups: without a limit, one stamp fetched once would let a bot
# post for ever without loading the form again.
STARTED_MAX_AGE_SECONDS = 3600


def started_token(secret_key: str, now: datetime) -> str:
    """A signed 'form shown at' stamp; bots that post without loading the form lack it."""
    return _signed_second(secret_key, int(now.timestamp()))


@functools.lru_cache(maxsize=4)
def _signed_second(secret_key: str, second: int) -> str:
    # The stamp has whole seconds and no nonce: every page shown in one second gets the same
    # one, so it is signed once per second, not once per page.
    return _started_serializer(secret_key).dumps(second)


def seconds_since(
    secret_key: str,
    token: str | None,
    now: datetime,
    max_age: int | None = STARTED_MAX_AGE_SECONDS,
) -> float | None:
    """Seconds since the stamp was made; None when it is missing, forged, malformed or older
    than `max_age` seconds (None: any age)."""
    if not token or len(token) > 200:
        return None
    shown_at = _stamp_second(secret_key, token)
    if shown_at is None:
        return None
    age = now.timestamp() - shown_at
    if max_age is not None and age > max_age:
        return None
    return age


@functools.lru_cache(maxsize=64)
def _stamp_second(secret_key: str, token: str) -> int | None:
    """The second a stamp of ours was made; None for a forged or malformed one. A sign-up
    asks up to three times (expired? too fast? the page again), the signature is checked
    once."""
    try:
        shown_at = _started_serializer(secret_key).loads(token)
    except BadSignature:
        return None
    if not isinstance(shown_at, int) or isinstance(shown_at, bool):
        return None
    return shown_at
