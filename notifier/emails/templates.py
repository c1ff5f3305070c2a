"""The Jinja environment for emails: copy modules per kind and language, and the two layouts.

Copy (`templates/email/<lang>/<kind>.jinja`) is plain text written as Jinja macros, one per
sentence group (`intro`, `q_fixed`/`a_fixed`, …); code picks which ones a mail needs, so both
languages always ask the same questions. The layouts (`layout.txt`, `layout.html`) draw a
Message and know no language. Compiled templates are cached by the environment.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from . import text
from .message import ZONE_KEY, Message

# While a shared rendering's text part is drawn (render_text(..., blocks=…)), the paragraphs
# that hold a zone placeholder: how they wrap depends on the zone's text, so each becomes one
# placeholder whose value is the paragraph wrapped per zone (key -> (text, wrap options)).
_blocks: ContextVar[dict | None] = ContextVar("email_blocks", default=None)


def _wrap(value: str, width: int = 76, prefix: str = "", first: str | None = None) -> str:
    """The `wrap` filter: text.wrap, or a block placeholder (see `_blocks`)."""
    blocks = _blocks.get()
    if blocks is None or not ZONE_KEY.search(value):
        return text.wrap(value, width, prefix, first)
    options = (width, prefix, first)
    for key, block in blocks.items():
        if block == (value, options):
            return key
    key = f"-zw{len(blocks)}-"
    blocks[key] = (value, options)
    return key


def wrap_block(value: str, options: tuple) -> str:
    """A block's text for one zone (its placeholders filled in), as render_text draws it."""
    return tidy_lines(text.wrap(value, *options))


def tidy_lines(body: str) -> str:
    return "\n".join(line.rstrip() for line in body.splitlines())


TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "email"

env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    # Templates ship with the code; checking mtimes on every render buys nothing.
    auto_reload=False,
)
env.filters.update(
    wrap=_wrap,
    paras=text.html_paragraphs,
    inline=text.html_inline,
    lines=text.html_lines,
)

# Inline every rule into style attributes (clients that drop <style> still get the look) but
# keep @media rules in a <style> block: inline styles cannot express "on narrow screens".
_inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


class Copy:
    """The macros of one copy template, bound to one mail's values."""

    def __init__(self, lang: str, kind: str, values: dict):
        context = {"lang": lang, "kind": kind, **values}
        self._modules = [
            env.get_template(f"{lang}/{kind}.jinja").make_module(context),
            env.get_template(f"{lang}/common.jinja").make_module(context),
        ]

    def has(self, name: str) -> bool:
        return any(hasattr(module, name) for module in self._modules)

    def __call__(self, name: str) -> str:
        """The macro's text, reflowed: source line breaks are layout, blank lines are paragraphs."""
        for module in self._modules:
            macro = getattr(module, name, None)
            if macro is not None:
                return text.reflow(str(macro()))
        raise LookupError(f"no copy {name!r}")


def render_text(message: Message, *, blocks: dict | None = None) -> str:
    """The text part. With `blocks` (a dict to fill), every wrapped paragraph that holds a zone
    placeholder is drawn as one `-zw<n>-` placeholder, recorded in `blocks` (see `_blocks`)."""
    token = _blocks.set(blocks)
    try:
        body = env.get_template("layout.txt").render(m=message)
    finally:
        _blocks.reset(token)
    return re.sub(r"\n{3,}", "\n\n", tidy_lines(body)).strip() + "\n"


def render_html(message: Message) -> str:
    """The HTML document: email.css inlined, timeline.css kept once in <head>."""
    document = env.get_template("layout.html").render(m=message, css=_stylesheet("email.css"))
    inlined = _inliner.inline(document)
    if not (message.latest or message.timeline):  # incident mails only
        return inlined
    kept = f"<style>\n{_kept_rules()}</style>\n</head>"
    return inlined.replace("</head>", kept, 1)


@lru_cache(maxsize=2)
def _stylesheet(name: str) -> str:
    return (TEMPLATE_DIR / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _kept_rules() -> str:
    """timeline.css without its comments: they are for us, not for every mail's bytes."""
    return re.sub(r"/\*.*?\*/\s*", "", _stylesheet("timeline.css"), flags=re.S)
