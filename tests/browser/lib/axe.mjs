// axe-core (npm, pinned exactly in package.json) on a page: its source is
// put into the page with page.evaluate, which the page's CSP (script-src
// 'self', no inline script) does not govern, then axe.run() checks the whole
// document. Works with Playwright pages and with puppeteer-core's Firefox
// pages (lib/netns.mjs NsFirefoxPage: evaluate takes source text).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let source = null;

export async function axeSource() {
    if (source === null) source = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
    return source;
}

export function axeVersion() {
    return require('axe-core/package.json').version;
}

/* The violations axe finds in the page as it is now, each as one readable
 * line: rule, impact, what it asks, and up to 3 offending nodes (CSS
 * selector and axe's summary). `disable`: rule ids left out (none by
 * default; a suite that leaves one out must say why). */
export async function axeViolations(page, { disable = [] } = {}) {
    const loaded = await page.evaluate(() => typeof window.axe === 'object' && typeof window.axe.run === 'function');
    if (!loaded) {
        // As an expression: the UMD bundle defines window.axe.
        await page.evaluate(`${await axeSource()}\n;void 0`);
    }
    const rules = Object.fromEntries(disable.map((id) => [id, { enabled: false }]));
    const violations = await page.evaluate(async (rulesJson) => {
        const r = await window.axe.run(document, { resultTypes: ['violations'], rules: JSON.parse(rulesJson) });
        return r.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${(n.failureSummary || '').replace(/\s+/g, ' ').trim()}`),
        }));
    }, JSON.stringify(rules));
    return violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.length} node(s): ${v.nodes.slice(0, 3).join(' | ')}`);
}

/* Throws unless axe finds nothing; `where` names the screen. */
export async function assertNoAxeViolations(page, where, options) {
    const v = await axeViolations(page, options);
    if (v.length) throw new Error(`axe-core ${axeVersion()}: ${v.length} violation(s) on ${where}:\n  ${v.join('\n  ')}`);
}
