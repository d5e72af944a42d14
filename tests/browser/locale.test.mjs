// The patient's language (issue 18 item 7): every sentence comes from one
// catalogue (signaling/web/i18n.js) with English and Spanish side by side;
// the token's `locale` claim picks it, else the browser's languages, else
// English; <html lang> and window.quietroom.lang say which.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Quietroom, REPO } from './lib/servers.mjs';
import {
    launchChromium, chromiumPage, waitState, waitVisible, click, text, checkWire, screenshot,
} from './lib/browsers.mjs';
import { mintToken } from './lib/mint.mjs';

const { CATALOGUE, LANGS, pickLang } = await import(path.join(REPO, 'signaling', 'web', 'i18n.js'));
const { ERROR_KEYS, REASON_KEYS } = await import(path.join(REPO, 'signaling', 'web', 'messages.js'));

const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('every catalogue key exists in every language, not empty, with the same placeholders', () => {
    assert.deepEqual(LANGS, ['en', 'es']);
    const keys = new Set(LANGS.flatMap((l) => Object.keys(CATALOGUE[l])));
    assert.ok(keys.size > 150, `only ${keys.size} keys`);
    const problems = [];
    for (const k of keys) {
        for (const l of LANGS) {
            const v = CATALOGUE[l][k];
            if (typeof v !== 'string' || !v.trim()) problems.push(`${l}: ${k} missing or empty`);
        }
        if (LANGS.every((l) => typeof CATALOGUE[l][k] === 'string')) {
            const want = placeholders(CATALOGUE.en[k]);
            for (const l of LANGS) {
                if (JSON.stringify(placeholders(CATALOGUE[l][k])) !== JSON.stringify(want)) problems.push(`${l}: ${k} has {${placeholders(CATALOGUE[l][k])}} instead of {${want}}`);
            }
        }
    }
    // The codes and reasons name keys that exist.
    for (const k of [...Object.values(ERROR_KEYS), ...Object.values(REASON_KEYS).flat()]) {
        if (!keys.has(k)) problems.push(`messages.js names ${k}, not in the catalogue`);
    }
    assert.deepEqual(problems, []);
});

test('the language is the claim\'s if the catalogue has it, else the browser\'s, else English', () => {
    assert.equal(pickLang('es', ['en-US']), 'es');
    assert.equal(pickLang('es-MX', []), 'es');
    assert.equal(pickLang('en-US', ['es-ES']), 'en');
    assert.equal(pickLang('fr', ['es-ES', 'en']), 'es');
    assert.equal(pickLang('', ['de-DE', 'es']), 'es');
    assert.equal(pickLang(undefined, ['de-DE']), 'en');
    assert.equal(pickLang(null, []), 'en');
});

/* English sentences a Spanish page must not show: every English value that
 * differs from its Spanish one, cut at its placeholders; the fragments
 * long enough to be words of a sentence rather than a unit or a name. */
function englishFragments() {
    const out = new Set();
    for (const [k, en] of Object.entries(CATALOGUE.en)) {
        if (CATALOGUE.es[k] === en) continue;
        for (const part of en.split(/\{\w+\}/)) {
            const p = part.trim().replace(/^[(:,.—–-]+|[(:,.—–-]+$/g, '').trim();
            if (p.length >= 10 && /\s/.test(p)) out.add(p);
        }
    }
    return [...out];
}

/* The page's visible text, by screen: everything not hidden. */
async function visibleText(page) {
    return page.evaluate(() => document.body.innerText);
}

async function assertNoEnglish(page, where) {
    const shown = await visibleText(page);
    const found = englishFragments().filter((f) => shown.includes(f));
    assert.deepEqual(found, [], `${where}: English on a Spanish page:\n${shown}`);
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'es', `${where}: html lang`);
    assert.equal(await page.evaluate(() => window.quietroom.lang), 'es', `${where}: quietroom.lang`);
}

let q;
let browser;
const open = [];
const minted = [];
let seq = 0;

before(async () => {
    q = await Quietroom.start({ label: 'locale' });
    browser = await launchChromium();
});

after(async () => {
    if (browser) await browser.close();
    if (q) await q.stop();
});

afterEach(async () => {
    const done = open.splice(0);
    await Promise.all(done.map(({ context }) => context.close()));
    for (const { page } of done) {
        checkWire(page, { relayHost: q.mediaHost, relayPort: q.mediaPort, tokens: minted });
        for (const line of page.qrConsole) {
            assert.ok(!line.startsWith('pageerror:'), `script error in ${page.qrName}: ${line}`);
            assert.ok(!/Content Security Policy|Refused to/i.test(line), `CSP violation in ${page.qrName}: ${line}`);
        }
    }
});

async function page(name, initScript = null) {
    const cp = await chromiumPage(browser, name, { initScript });
    open.push(cp);
    return cp.page;
}

/* A page whose browser speaks Spanish (navigator.languages es-ES, es). */
async function spanishBrowserPage(name) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'es-ES' });
    const pg = await context.newPage();
    pg.setDefaultTimeout(15000);
    Object.assign(pg, { qrName: name, qrConsole: [], qrSockets: [], qrRequests: [] });
    pg.on('console', (m) => pg.qrConsole.push(`${m.type()}: ${m.text()}`));
    pg.on('pageerror', (e) => pg.qrConsole.push(`pageerror: ${e.message}`));
    open.push({ context, page: pg });
    return pg;
}

async function tokens(label, patientClaims) {
    const n = ++seq;
    const sid = `${label}-${process.pid}-${n}`;
    const doc = await q.token({ sid, role: 'clinician', sub: `doc-${n}`, name: 'Dr. Rivera' });
    const pat = await mintToken(q, { sid, sub: `pat-${n}`, name: 'Ana Paciente', ...patientClaims });
    minted.push(doc, pat);
    return { doc, pat };
}

test('a patient journey in Spanish (locale claim) shows no English sentence: pre-call, waiting, call, end', async () => {
    const t = await tokens('es-journey', { locale: 'es' });
    const doc = await page('therapist');
    const pat = await page('patient');
    await doc.goto(q.link(t.doc));
    await waitState(doc, 'precall');
    await click(doc, 'join');
    await waitState(doc, 'in-call');
    assert.equal(await doc.evaluate(() => window.quietroom.lang), 'en', 'the clinician keeps English');

    await pat.goto(q.link(t.pat));
    await waitState(pat, 'precall');
    await pat.waitForFunction(() => !document.querySelector('[data-testid="join"]').disabled);
    await assertNoEnglish(pat, 'pre-call');
    assert.match(await text(pat, 'join'), /Entrar en la consulta/);
    await screenshot(pat, 'locale-es-precall');

    await click(pat, 'join');
    await waitState(pat, 'waiting');
    const patId = await pat.evaluate(() => window.quietroom.participant);
    // A message from the clinician: their words as written, the frame in Spanish.
    await waitVisible(doc, `admit-${patId}`);
    await doc.fill('[data-testid="notify-text"]', 'Llego en 5 minutos');
    await click(doc, 'notify-send');
    await waitVisible(pat, 'waiting-notice');
    assert.equal(await text(pat, 'waiting-notice'), 'Llego en 5 minutos');
    assert.match(await pat.evaluate(() => document.getElementById('waiting-notice-from').textContent), /^Mensaje de Dr\. Rivera:$/);
    assert.match(await text(pat, 'waiting-clinician'), /Dr\. Rivera le dará paso en breve/);
    await assertNoEnglish(pat, 'waiting room');
    assert.match(await text(pat, 'waiting-time'), /Lleva esperando/);
    await screenshot(pat, 'locale-es-waiting');

    await click(doc, `admit-${patId}`);
    await waitState(pat, 'in-call');
    await waitVisible(pat, 'remote-video');
    // The quality in words (issue 14), its numbers in the details, in Spanish too.
    await pat.waitForFunction(() => /^Conexión: (buena|débil)\b/.test(document.querySelector('[data-testid="quality"]').textContent) &&
        /^pérdida \d+,\d %, retardo \d+ ms, \d+ kbit\/s de entrada$/.test(document.querySelector('[data-testid="quality-details"]').textContent), null, { timeout: 15000 });
    await assertNoEnglish(pat, 'call');
    await screenshot(pat, 'locale-es-call');

    // Leave asks first, in Spanish too.
    await click(pat, 'leave');
    await waitVisible(pat, 'confirm');
    await assertNoEnglish(pat, 'leave confirmation');
    await click(pat, 'confirm-ok');
    await waitState(pat, 'ended');
    await assertNoEnglish(pat, 'ended');
    assert.match(await text(pat, 'ended-title'), /Ha salido de la consulta/);
    await screenshot(pat, 'locale-es-ended');
});

test('a Spanish browser without a claim gets Spanish; a claim wins over the browser', async () => {
    const n = ++seq;
    const plain = await mintToken(q, { sid: `es-browser-${process.pid}-${n}`, sub: `p-${n}` });
    const english = await mintToken(q, { sid: `es-browser-${process.pid}-${n}`, sub: `e-${n}`, locale: 'en-US' });
    minted.push(plain, english);
    const es = await spanishBrowserPage('es-browser');
    await es.goto(q.link(plain));
    await waitState(es, 'precall');
    await assertNoEnglish(es, 'pre-call, Spanish browser');
    assert.match(await text(es, 'precall-title') || await es.evaluate(() => document.getElementById('precall-title').textContent), /Compruebe su cámara/);

    const en = await spanishBrowserPage('es-browser-en-claim');
    await en.goto(q.link(english));
    await waitState(en, 'precall');
    assert.equal(await en.evaluate(() => document.documentElement.lang), 'en');
    assert.equal(await en.evaluate(() => window.quietroom.lang), 'en');
});

test('a refused link is explained in Spanish too', async () => {
    const now = Math.floor(Date.now() / 1000);
    const n = ++seq;
    const t = await mintToken(q, { sid: `es-refused-${process.pid}-${n}`, sub: `p-${n}`, locale: 'es', iat: now - 7200, exp: now - 3600 });
    minted.push(t);
    const pg = await page('es-refused');
    await pg.goto(q.link(t));
    // Refused at the link check (or at Join, with a server that cannot check).
    await pg.waitForFunction(() => ['precall', 'ended'].includes(window.quietroom.state), null, { timeout: 10000 });
    if (await pg.evaluate(() => window.quietroom.state) === 'precall') {
        await pg.waitForFunction(() => !document.querySelector('[data-testid="join"]').disabled);
        await click(pg, 'join');
    }
    await waitState(pg, 'ended');
    await assertNoEnglish(pg, 'refused link');
    assert.match(await text(pg, 'ended-message'), /ha caducado/);
});
