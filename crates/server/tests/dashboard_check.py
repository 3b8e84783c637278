"""Open the server's dashboard in headless Chromium (through Playwright) and say what it saw.

Usage: dashboard_check.py BASE_URL SCREENSHOT_PREFIX [CHROMIUM]

Loads BASE_URL/ (the overview), follows the first patient link (the most urgent patient), and
prints one JSON object: console errors and warnings, page errors, failed requests, requests to
another origin, HTTP statuses, overview rows, the patient page's laid-out charts and alerts,
and both pages' titles. Screenshots: PREFIX-overview.png, PREFIX-patient.png,
PREFIX-patient-charts.png. The Rust test `tests/dashboard.rs` judges the result.
"""

import json
import sys

from playwright.sync_api import sync_playwright

base, prefix = sys.argv[1].rstrip("/"), sys.argv[2]
chromium = sys.argv[3] if len(sys.argv) > 3 else "/usr/bin/chromium"
seen = {"console": [], "page_errors": [], "failed": [], "outside": [], "statuses": []}

with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=chromium,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    page.on("request", lambda r: seen["outside"].append(r.url) if not r.url.startswith((base, "data:", "about:")) else None)
    page.on("response", lambda r: seen["statuses"].append(r.status))

    page.goto(base + "/", wait_until="load")
    seen["overview_title"] = page.title()
    seen["overview_rows"] = page.evaluate("() => document.querySelectorAll('table.overview tbody tr').length")
    seen["links"] = page.evaluate("() => [...document.querySelectorAll('table.overview a')].map(a => a.getAttribute('href'))")
    page.screenshot(path=prefix + "-overview.png", full_page=False)

    page.click("table.overview tbody tr a")
    page.wait_for_load_state("load")
    seen["patient_url"] = page.url
    seen["patient_title"] = page.title()
    seen["charts"] = page.evaluate(
        """() => [...document.querySelectorAll('figure.chart svg')]
              .filter(s => { const b = s.getBoundingClientRect(); return b.width > 100 && b.height > 50; })
              .length"""
    )
    seen["alerts"] = page.evaluate("() => document.querySelectorAll('section.patient table.alerts tbody tr, section.patient .alert').length")
    page.screenshot(path=prefix + "-patient.png", full_page=False)
    page.evaluate("() => document.querySelector('figure.chart')?.scrollIntoView()")
    page.screenshot(path=prefix + "-patient-charts.png", full_page=False)
    browser.close()

print(json.dumps(seen))
