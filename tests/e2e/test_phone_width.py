"""Every page fits a 390 px phone (issue 13 item 5): no sideways scrolling of the whole page.

The walk covers every GET route of the URL map (tests/e2e/conftest.py `site`), seeded with
long feed URLs, titles, addresses and many rows, logged in, in German and English. Wide
tables may scroll inside their own focusable region; the page itself must not.
"""

from __future__ import annotations

import pytest

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
SHOWN = {"admin.dashboard", "admin.notification(sent)", "public.preferences"}

# The widest element that sticks out, for the failure message.
WIDEST = """() => {
  const limit = document.documentElement.clientWidth;
  let worst = null, right = limit;
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.right > right + 0.5 && !e.closest('.table-scroll')) {
      right = r.right;
      worst = e.outerHTML.slice(0, 120);
    }
  }
  return worst ? worst + ' reaches ' + Math.round(right) + ' px' : '';
}"""


@pytest.mark.parametrize("locale", ["de-DE", "en-US"])
def test_every_page_fits_a_390px_phone(site, open_page, locale):
    w = open_page(locale, viewport=PHONE)
    page = w.page
    too_wide = {}
    logged_in = False
    for name, path, needs_login in sorted(site.pages, key=lambda p: p[2]):
        if needs_login and not logged_in:
            log_in(page, site.base_url)
            logged_in = True
        page.goto(site.base_url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        print(f"{locale} {width:4d} px  {name}  {path[:60]}")
        if name in SHOWN:
            w.shot(name)  # for a person to look at: does it wrap sensibly, not just fit?
        if width > PHONE["width"]:
            too_wide[name] = f"{width} px: {page.evaluate(WIDEST)}"
            w.shot(f"wide-{name}")
    assert too_wide == {}, "\n".join(f"{k}: {v}" for k, v in too_wide.items())
