// Opens an observer HTML report in headless Chromium (Debian's, through
// playwright-core) and prints what the page did as one JSON object:
// console errors, page errors, every request, the rendered charts (SVG
// element counts), the text of the page, and writes a screenshot.
//
// usage: node check_report.js REPORT.html SCREENSHOT.png [light|dark]
"use strict";
const path = require("path");
const fs = require("fs");
const { chromium } = require("playwright-core");

async function main() {
  const [report, screenshot, scheme = "light"] = process.argv.slice(2);
  const url = "file://" + path.resolve(report);
  const profile = fs.mkdtempSync("/tmp/observer-chromium-");
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run",
    ],
    viewport: { width: 1366, height: 900 },
    colorScheme: scheme,
  });
  const result = { requests: [], console_errors: [], page_errors: [] };
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    // Offline: record every request; only the report itself may load.
    await page.route("**/*", (route) => {
      const u = route.request().url();
      result.requests.push(u);
      return u === url ? route.continue() : route.abort();
    });
    page.on("console", (m) => { if (m.type() === "error") result.console_errors.push(m.text()); });
    page.on("pageerror", (e) => result.page_errors.push(String(e)));
    await page.goto(url, { waitUntil: "load" });
    await page.waitForFunction(() => window.__observerReport && window.__observerReport.ready, null, { timeout: 20000 });
    await page.waitForTimeout(300);
    result.charts = await page.$$eval(".chart", (els) => els.map((el) => {
      const svg = el.querySelector("svg");
      return {
        id: el.id,
        width: el.getBoundingClientRect().width,
        svg_elements: svg ? svg.querySelectorAll("path, rect, text, circle").length : 0,
        text: svg ? svg.textContent : "",
      };
    }));
    result.title = await page.title();
    result.problems = await page.$eval("#problems", (el) => el.innerText);
    result.status = await page.$eval("#status", (el) => el.innerText);
    result.rows = await page.$$eval("#table tbody tr", (rows) => rows.length);
    // The table filters: by verdict, then back.
    result.filtered = await page.evaluate(() => {
      const select = document.getElementById("verdict-filter");
      const option = Array.from(select.options).find((o) => o.value.startsWith("leak"));
      if (!option) return null;
      select.value = option.value;
      select.dispatchEvent(new Event("change"));
      const visible = Array.from(document.querySelectorAll("#table tbody tr")).filter((r) => !r.hidden).length;
      select.value = "";
      select.dispatchEvent(new Event("change"));
      return { verdict: option.value, visible };
    });
    result.body_width = await page.evaluate(() => document.documentElement.scrollWidth);
    await page.screenshot({ path: screenshot, fullPage: true });
    await page.pdf({ path: screenshot.replace(/\.png$/, ".pdf"), format: "A4", printBackground: true }).catch((e) => { result.pdf_error = String(e); });
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e) => { console.error(e); process.exit(1); });
