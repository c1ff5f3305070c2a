"""Accessibility measured in the real browser (issue 13 item 8).

axe-core (axe-playwright-python) runs on every page of the URL map (tests/e2e/conftest.py
`site`: seeded with long rows, logged in) in German and English, at 1280 px and at 390 px:
no critical and no serious violation (and, since issue 13, none at all). The count per page
is printed (pytest -s) and written to artifacts/a11y-<locale>.txt. A keyboard-only walk of
sign-up and preferences checks tab order, visible focus, labels and errors tied to fields.
"""

from __future__ import annotations

import itertools

import pytest
from axe_playwright_python.sync_playwright import Axe

from .conftest import log_in
from .server import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (1280, 390)
BLOCKING = ("critical", "serious")
RUN_AXE = "axe.run(document, {resultTypes: ['violations']})"  # as Axe.run, minus the injection


def _summary(violations: list[dict]) -> str:
    return (
        "; ".join(
            f"{v['id']} ({v['impact']}) at {' '.join(str(n['target']) for n in v['nodes'][:3])}"
            for v in violations
        )
        or "-"
    )


@pytest.mark.parametrize("locale", ["de-DE", "en-US"])
def test_axe_finds_no_serious_violation_on_any_page(site, open_page, locale):
    axe = Axe()
    w = open_page(locale, viewport={"width": WIDTHS[0], "height": 900})
    page = w.page
    lines, blocking = [], {}
    logged_in = False
    for name, path, needs_login in sorted(site.pages, key=lambda p: p[2]):
        if needs_login and not logged_in:
            log_in(page, site.base_url)
            logged_in = True
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        page.goto(site.base_url + path)
        page.evaluate(axe.axe_script)  # once per page, not once per run as Axe.run does
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            violations = page.evaluate(RUN_AXE)["violations"]
            line = f"{locale} {width:4d} px {len(violations):2d} violations  {name}: "
            lines.append(line + _summary(violations))
            print(lines[-1])
            bad = [v for v in violations if v["impact"] in BLOCKING]
            if bad:
                blocking[f"{name} @{width}"] = [
                    f"{v['id']}: {v['help']} -> {[n['target'] for n in v['nodes']][:3]}"
                    for v in bad
                ]
    out = ROOT / "artifacts" / f"a11y-{locale}.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    assert blocking == {}, "\n".join(f"{k}: {v}" for k, v in blocking.items())
    # Moderate and minor ones were fixed too (empty table headers, duplicate region names):
    # keep it that way.
    assert [line for line in lines if " 0 violations" not in line] == []


# --- keyboard only: sign-up and preferences ----------------------------------------------

# The focused element: where it is, and whether a focus indicator is drawn around it.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  return {
    key: e.id || e.getAttribute('href') || e.tagName.toLowerCase() + ':' + e.textContent.trim(),
    top: r.top + scrollY, bottom: r.bottom + scrollY, left: r.left, right: r.right,
    visible: e.matches(':focus-visible')
      && ((s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none'),
  };
}"""
# Every control a keyboard user must reach, in document order: one per radio group (the
# checked one), nothing hidden, disabled or taken out of the tab order.
CONTROLS = """() => {
  const seen = new Set();
  return [...document.querySelectorAll('a[href], input, select, textarea, button')].filter(e => {
    if (e.type === 'hidden' || e.disabled || e.tabIndex < 0 || e.closest('[aria-hidden=true]')
        || !e.getClientRects().length) return false;
    if (e.type === 'radio') {
      const group = document.querySelectorAll(`input[type=radio][name="${e.name}"]:not(:disabled)`);
      const chosen = [...group].find(r => r.checked) || group[0];
      if (e !== chosen || seen.has(e.name)) return false;
      seen.add(e.name);
    }
    return true;
  }).map(e => e.id || e.getAttribute('href')
         || e.tagName.toLowerCase() + ':' + e.textContent.trim());
}"""
# Inputs without a name a screen reader can read out.
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => ![...e.labels].some(l => l.textContent.trim()) && !e.getAttribute('aria-label'))
  .map(e => e.id || e.name)"""
# Every error message and the controls of its field that do not point at it.
ERRORS = """() => [...document.querySelectorAll('.field-error')].map(error => ({
  id: error.id,
  untied: [...error.closest('.field')
      .querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(c => !(c.getAttribute('aria-describedby') || '').split(' ').includes(error.id)
                 || c.getAttribute('aria-invalid') !== 'true')
    .map(c => c.id),
}))"""


def tab_walk(page) -> list[dict]:
    """Tab round the whole page once; the focused elements from the top of the page down.

    Tab starts wherever focus is (an error summary, say) and wraps after the last element;
    the round is cut where focus left the page, or else before the skip link.
    """
    cycle = []
    for _ in range(100):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused and cycle and cycle[0] and focused["key"] == cycle[0]["key"]:
            break
        cycle.append(focused)
    else:
        raise AssertionError(f"Tab never came round: {[f and f['key'] for f in cycle]}")
    if None in cycle:
        cut = cycle.index(None)
        return [f for f in cycle[cut + 1 :] + cycle[:cut] if f]
    cut = [f["key"] for f in cycle].index("#main")
    return cycle[cut:] + cycle[:cut]


def out_of_visual_order(walked: list[dict]) -> list[tuple[str, str]]:
    """Pairs where focus moves back up the page, or leftwards within one row."""
    wrong = []
    for a, b in itertools.pairwise(walked):
        same_row = a["top"] < b["bottom"] and b["top"] < a["bottom"]
        if (same_row and b["left"] < a["right"] - 1) or (not same_row and b["top"] < a["top"]):
            wrong.append((a["key"], b["key"]))
    return wrong


def tab_to(page, key: str) -> None:
    for _ in range(100):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused and focused["key"] == key:
            return
    raise AssertionError(f"Tab never reached {key}")


def check_keyboard_page(page) -> None:
    """Tab reaches every control in visual order, each with a visible focus indicator."""
    walked = tab_walk(page)
    keys = [f["key"] for f in walked]
    assert keys[0] == "#main", keys  # the skip link comes first
    assert keys == page.evaluate(CONTROLS)
    assert out_of_visual_order(walked) == []
    assert [f["key"] for f in walked if not f["visible"]] == []
    assert page.evaluate(UNLABELLED) == []


def test_sign_up_by_keyboard_alone(site, open_page):
    w = open_page("en-US", viewport={"width": 1280, "height": 900})
    page = w.page
    page.goto(site.base_url + "/")
    check_keyboard_page(page)

    # A wrong address, no kind of notice, "only these" products but none: three errors.
    tab_to(page, "email")
    page.keyboard.type("not-an-address")
    tab_to(page, "notify_incidents")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")  # the checked "all products" radio; arrows choose in a group
    page.keyboard.press("ArrowDown")
    assert page.is_checked("#scope-selected")
    page.wait_for_timeout(1100)  # the server drops forms sent faster than a person could
    tab_to(page, "button:Subscribe")
    page.keyboard.press("Enter")
    page.wait_for_selector("#error-summary")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert page.evaluate(ERRORS) == [
        {"id": "email-error", "untied": []},
        {"id": "notify_maintenance-error", "untied": []},
        {"id": "components-error", "untied": []},
    ]
    assert page.get_attribute("#email", "aria-describedby") == "email-hint email-error"
    w.shot("keyboard-errors")
    violations = Axe().run(page).response["violations"]
    assert _summary(violations) == "-"
    check_keyboard_page(page)

    # Put it right, still by keyboard, and send it with Enter in the address field.
    tab_to(page, "email")
    page.keyboard.press("Control+A")
    page.keyboard.type("keyboard-only@example.com")
    tab_to(page, "notify_incidents")
    page.keyboard.press("Space")
    tab_to(page, "component-voice")
    page.keyboard.press("Space")
    page.wait_for_timeout(1100)
    tab_to(page, "email")
    page.keyboard.press("Enter")
    page.wait_for_url("**/subscribe/check-inbox")


def test_preferences_by_keyboard_alone(site, open_page):
    w = open_page("en-US", viewport={"width": 1280, "height": 900})
    page = w.page
    [path] = [p for name, p, _ in site.pages if name == "public.preferences"]
    page.goto(site.base_url + path)
    check_keyboard_page(page)

    tab_to(page, "notify_incidents")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    tab_to(page, "button:Save changes")
    page.keyboard.press("Enter")
    page.wait_for_selector("#error-summary")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert page.evaluate(ERRORS) == [{"id": "notify_maintenance-error", "untied": []}]
    check_keyboard_page(page)

    tab_to(page, "notify_maintenance")
    page.keyboard.press("Space")
    tab_to(page, "button:Save changes")
    page.keyboard.press("Space")
    page.wait_for_selector(".notice")
    assert page.inner_text(".notice") == "Saved. Your changes apply to the next email."
    assert page.evaluate(ERRORS) == []
    assert page.is_checked("#notify_maintenance") and not page.is_checked("#notify_incidents")
