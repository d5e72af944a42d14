// Runs INSIDE a test network namespace (lib/netns.mjs starts it with
// `ip netns exec NS node firefox-agent.mjs`): launches Firefox ESR there with
// puppeteer-core (WebDriver BiDi on the namespace's loopback) and carries out
// the page calls the test process sends, one JSON object per line on stdin,
// answering each on stdout ({ id, ok, value } or { id, ok: false, error }).
// Ends Firefox and itself when stdin closes.
import { createInterface } from 'node:readline';
import { launchFirefox } from './browsers.mjs';

let browser = null;
const pages = new Map();
let nextPage = 0;
const options = JSON.parse(process.env.QR_FIREFOX_OPTIONS || '{}');

function reply(m) {
    process.stdout.write(`${JSON.stringify(m)}\n`);
}

function page(id) {
    const p = pages.get(id);
    if (!p) throw new Error(`no page ${id}`);
    return p;
}

// A function's source as the test wrote it; puppeteer sends it as text again.
// eslint-disable-next-line no-eval
const revive = (src) => (0, eval)(`(${src})`);

const ops = {
    async launch() {
        browser = await launchFirefox(options);
        return browser.version();
    },
    async newPage() {
        const p = await browser.newPage();
        const id = ++nextPage;
        p.qrConsole = [];
        p.on('console', (m) => p.qrConsole.push(`${m.type()}: ${m.text()}`));
        p.on('pageerror', (e) => p.qrConsole.push(`pageerror: ${e.message}`));
        pages.set(id, p);
        return id;
    },
    async goto(m) {
        await page(m.page).goto(m.url);
        return null;
    },
    async evaluate(m) {
        const fn = m.isFn ? revive(m.fn) : m.fn;
        const v = await page(m.page).evaluate(fn, ...(m.args || []));
        return v === undefined ? null : v;
    },
    async evaluateOnNewDocument(m) {
        await page(m.page).evaluateOnNewDocument(m.source);
        return null;
    },
    async click(m) {
        await page(m.page).click(m.selector);
        return null;
    },
    async setViewport(m) {
        await page(m.page).setViewport(m.viewport);
        return null;
    },
    async screenshot(m) {
        await page(m.page).screenshot(m.options);
        return null;
    },
    async console(m) {
        return page(m.page).qrConsole;
    },
    async closePage(m) {
        await page(m.page).close();
        pages.delete(m.page);
        return null;
    },
    async close() {
        if (browser) await browser.close();
        browser = null;
        return null;
    },
};

async function shutdown() {
    try {
        if (browser) await browser.close();
    } catch (e) { /* already gone */ }
    process.exit(0);
}

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
    let m;
    try {
        m = JSON.parse(line);
    } catch (e) {
        return;
    }
    try {
        if (!ops[m.op]) throw new Error(`unknown op ${m.op}`);
        reply({ id: m.id, ok: true, value: await ops[m.op](m) });
    } catch (e) {
        reply({ id: m.id, ok: false, error: e && e.message ? e.message : String(e) });
    }
});
rl.on('close', shutdown);
process.on('SIGTERM', shutdown);
