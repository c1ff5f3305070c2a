"""Text hygiene for untrusted strings (feed text, ops-written copy) in both email parts.

Every text field is treated as untrusted and possibly marked up: it is first reduced to plain
text (scripts and styles dropped with their content, other tags dropped, links kept as
`label (url)` when they are http(s)), so the text part never shows markup either. The HTML part
then escapes that plain text and links only http(s) URLs and our own placeholders; the result
goes through nh3 once more with a tiny allowlist, so a bug in here cannot open a hole.

Text known to be plain already (a feed's titles and update texts, which the parser has reduced
to text: see `tidy_text`) skips the reduction, so its own '<' and '>' ("Errors on <POST /x>")
are shown as written and escaped in the HTML part, never taken for tags.
"""

from __future__ import annotations

import html
import re
import textwrap

import nh3
from markupsafe import Markup, escape

_ALLOWED_TAGS = {"a", "p", "br", "strong", "em", "ul", "li"}
_ALLOWED_ATTRIBUTES = {"a": {"href"}}
_URL_SCHEMES = {"http", "https", "mailto"}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u2028\u2029\u0085]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\u0085]")
_SPACES = re.compile(r"[ \t\f\v\xa0]+")
_BREAK_TAGS = re.compile(r"<br\s*/?>", re.I)
_PARA_TAGS = re.compile(r"</p\s*>|</li\s*>|</div\s*>|<p\b[^>]*>", re.I)
_LINK_TAG = re.compile(r"<a\b[^>]*?href\s*=\s*([\"'])(.*?)\1[^>]*>(.*?)</a\s*>", re.I | re.S)
_ANY_TAG = re.compile(r"<[^>]*>")
# Links in prose: http(s) URLs, and the per-recipient placeholders the sender substitutes.
_LINKABLE = re.compile(r"https?://[^\s<>\"'`]+|-(?:preferences|unsubscribe|confirm|undo)_url-")
_GLUE = re.compile(r"(\b\d{1,2}\.|\b[A-Z][a-z]{2,8}) (?=[A-Z][a-zä]{2,8} \d{4}|\d{1,2}, \d{4})")
_MERIDIEM = re.compile(r"(?<=\d) (?=[AP]M\b)")
_TRAILING = ".,;:!?…»«“”„'\""


def single_line(value: object) -> str:
    """One line of plain text: any line break, tab or control character becomes one space."""
    text = plain_text(str(value or ""))
    return " ".join(text.split())


def tidy_line(value: object) -> str:
    """Text that is plain already, as one line: line breaks, tabs and controls become spaces."""
    return " ".join(tidy_text(value).split())


def tidy_text(value: object) -> str:
    """Text that is plain already: control characters dropped, spaces and blank lines folded,
    nothing else touched ('<', '>' and '&' are the text's own; escaping is the HTML part's job)."""
    text = _CONTROL.sub("", _LINE_BREAKS.sub("\n", str(value or "")))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-–") + "…"


def plain_text(value: object) -> str:
    """Untrusted, possibly marked-up text -> plain text; paragraphs keep their blank lines."""
    text = _LINE_BREAKS.sub("\n", str(value or ""))
    # Text without a tag is plain already ("AT&T" stays). Marked-up text is reduced with nh3
    # (no tags allowed: tags go, script/style go with their content) and unescaped; a second
    # round catches markup that was escaped twice, so `&lt;script&gt;` cannot come back to life.
    for _ in range(3):
        if not _ANY_TAG.search(text):
            break
        text = _LINK_TAG.sub(_link_as_text, text)
        text = _PARA_TAGS.sub("\n\n", _BREAK_TAGS.sub("\n", text))
        text = html.unescape(nh3.clean(text, tags=set()))
    return tidy_text(text)


def _link_as_text(match: re.Match) -> str:
    url = html.unescape(match.group(2)).strip()
    label = _ANY_TAG.sub("", match.group(3)).strip()
    if not url.lower().startswith(("http://", "https://", "mailto:")):
        return label
    return label if not label or url in label else f"{label} ({url})"


def reflow(value: str) -> str:
    """Template copy -> paragraphs: lines joined with spaces, blank lines kept as breaks."""
    paragraphs = re.split(r"\n\s*\n", value.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs of plain text."""
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def html_paragraphs(text: str, *, tag: str = "p") -> Markup:
    """Plain text -> escaped `<p>` paragraphs, single line breaks as `<br>`, URLs linked."""
    blocks = []
    for para in paragraphs(text):
        lines = [_linkify(line) for line in para.split("\n")]
        blocks.append(f"<{tag}>" + "<br>".join(lines) + f"</{tag}>")
    return sanitize("".join(blocks))


def html_lines(text: str) -> Markup:
    """Plain text -> escaped lines with URLs linked, paragraphs parted by a blank line (`<br>`
    twice), no block tags: a long timeline then carries no per-paragraph style attributes."""
    blocks = ["<br>".join(_linkify(line) for line in para.split("\n")) for para in paragraphs(text)]
    return sanitize("<br><br>".join(blocks))


def html_inline(text: str) -> Markup:
    """One escaped line of plain text with URLs linked (no paragraph)."""
    return sanitize(" ".join(_linkify(line) for line in text.split("\n")))


def sanitize(fragment: str) -> Markup:
    """The last gate for generated markup: only the tiny allowlist survives."""
    cleaned = nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
    )
    return Markup(cleaned)


def _linkify(line: str) -> str:
    out, last = [], 0
    for match in _LINKABLE.finditer(line):
        url = match.group(0)
        trimmed = url.rstrip(_TRAILING)
        if trimmed.endswith(")") and trimmed.count("(") < trimmed.count(")"):
            trimmed = trimmed[:-1]
        start, end = match.start(), match.start() + len(trimmed)
        out.append(str(escape(line[last:start])))
        out.append(f'<a href="{escape(trimmed)}">{escape(trimmed)}</a>')
        last = end
    out.append(str(escape(line[last:])))
    return "".join(out)


def wrap(text: str, width: int = 76, prefix: str = "", first: str | None = None) -> str:
    """Plain-text paragraphs wrapped for the text part; URLs and long words are never split."""
    out = []
    initial = prefix if first is None else first
    # Dates stay on one line where it matters ("4." / "Juli", "June" / "27,") and a line never
    # starts with the dash of a time range: glue those spaces while wrapping.
    text = _GLUE.sub("\\1\xa0", text.replace(" – ", "\xa0– "))
    text = _MERIDIEM.sub("\xa0", text)  # "2:05" / "PM" (12-hour clocks) stay together too
    for index, para in enumerate(paragraphs(text)):
        if index:
            out.append(prefix.rstrip())
        for line in para.split("\n"):
            out.extend(
                textwrap.wrap(
                    line,
                    width=width,
                    initial_indent=initial,
                    subsequent_indent=prefix,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                or [initial.rstrip()]
            )
            initial = prefix
    return "\n".join(out).replace("\xa0", " ")
