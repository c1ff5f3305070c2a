"""The Jinja environment for emails: copy modules per kind and language, and the two layouts.

Copy (`templates/email/<lang>/<kind>.jinja`) is plain text written as Jinja macros, one per
sentence group (`intro`, `q_fixed`/`a_fixed`, …); code picks which ones a mail needs, so both
languages always ask the same questions. The layouts (`layout.txt`, `layout.html`) draw a
Message and know no language. Compiled templates are cached by the environment.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from . import text
from .message import Message

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
    wrap=text.wrap,
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


def render_text(message: Message) -> str:
    body = env.get_template("layout.txt").render(m=message)
    body = "\n".join(line.rstrip() for line in body.splitlines())
    return re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"


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
