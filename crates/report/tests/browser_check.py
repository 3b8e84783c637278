"""Open a report in headless Chromium (through Playwright) and say what the browser saw.

Usage: browser_check.py REPORT.html SCREENSHOT.png [CHROMIUM]

Prints one JSON object: the console messages of type error or warning, page errors, failed
requests, requests that left the file (a self-contained report makes none), the number of SVG
charts the browser laid out with a non-zero size, the number of patient sections, and the
page title. The Rust test `tests/browser.rs` runs this and judges the result.
"""

import json
import sys

from playwright.sync_api import sync_playwright

html, shot = sys.argv[1], sys.argv[2]
chromium = sys.argv[3] if len(sys.argv) > 3 else "/usr/bin/chromium"
seen = {"console": [], "page_errors": [], "failed": [], "outside": []}

with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=chromium,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on(
        "console",
        lambda m: seen["console"].append(f"{m.type}: {m.text}")
        if m.type in ("error", "warning")
        else None,
    )
    page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    page.on(
        "request",
        lambda r: seen["outside"].append(r.url)
        if not r.url.startswith(("file:", "data:", "about:"))
        else None,
    )
    page.goto("file://" + html, wait_until="load")
    seen["title"] = page.title()
    seen["charts"] = page.evaluate(
        """() => [...document.querySelectorAll('figure.chart svg')]
              .filter(s => { const b = s.getBoundingClientRect(); return b.width > 100 && b.height > 50; })
              .length"""
    )
    seen["chart_marks"] = page.evaluate(
        "() => document.querySelectorAll('figure.chart svg circle, figure.chart svg polyline, figure.chart svg polygon').length"
    )
    seen["patients"] = page.evaluate("() => document.querySelectorAll('section.patient').length")
    seen["overview_rows"] = page.evaluate("() => document.querySelectorAll('table.overview tbody tr').length")
    page.screenshot(path=shot, full_page=False)
    # A second screenshot further down, where the first patient's charts are.
    page.evaluate("() => document.querySelector('section.patient figure.chart')?.scrollIntoView()")
    page.screenshot(path=shot.replace(".png", "-charts.png"), full_page=False)
    browser.close()

print(json.dumps(seen))
