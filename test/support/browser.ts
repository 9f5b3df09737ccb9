import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium; test/support/provision.mjs fails the run early when it is missing. */
export const CHROMIUM = '/usr/bin/chromium';

/** Screenshots of a run, for people to look at (gitignored). From dist/test/support/ this is the checkout's test-artifacts/. */
export const SCREENSHOTS = fileURLToPath(new URL('../../../test-artifacts/screenshots/', import.meta.url));

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (.ci/run does)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A phone-sized window: the portal must read well there. */
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: false, hasTouch: false };

let shot = 0;
/** Saves a full-page screenshot as `NN-name.png`, numbered in the order taken. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = join(SCREENSHOTS, `${String(++shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * What a person notices on any page: every form control has a visible label, nothing is wider than
 * the window (no sideways scrolling on a phone), and no stack trace is shown.
 */
export async function checkPage(page: Page): Promise<string[]> {
  // A string, evaluated in the page: this project compiles without the DOM's types.
  return page.evaluate(`(() => {
    const problems = [];
    for (const element of document.querySelectorAll('input, select, textarea')) {
      if (element.type === 'hidden') continue;
      const labels = Array.from(element.labels || []);
      if (!labels.some((label) => label.getBoundingClientRect().width > 0 && getComputedStyle(label).visibility !== 'hidden')) {
        problems.push(element.tagName.toLowerCase() + ' "' + element.name + '" has no visible label');
      }
    }
    if (document.documentElement.scrollWidth > window.innerWidth + 1) {
      problems.push('the page is ' + document.documentElement.scrollWidth + 'px wide in a ' + window.innerWidth + 'px window');
    }
    if (/\\bat .+\\.(js|ts):\\d+/.test(document.body.innerText)) problems.push('the page shows a stack trace');
    return problems;
  })()`);
}
