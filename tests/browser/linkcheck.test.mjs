// The page checks the link (check_link) before it asks for camera and
// microphone: a bad, expired or not-yet-valid link shows its sentence and the
// permission prompt never appears (getUserMedia is never called); a good link
// goes on to the pre-call check. Issue 18 item 2; /work/spec18/ui.md.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Quietroom } from './lib/servers.mjs';
import { launchChromium, chromiumPage, waitState, text, visible, checkWire, screenshot } from './lib/browsers.mjs';
import { mintToken } from './lib/mint.mjs';

let q;
let browser;
const open = [];
const minted = [];
let seq = 0;

/* Counts getUserMedia calls and records, in order, what the page sent on
 * its sockets and when it asked for the camera (before any page script). */
const COUNT = `(() => {
    window.__gum = 0;
    window.__order = [];
    const md = navigator.mediaDevices;
    if (md && md.getUserMedia) {
        const orig = md.getUserMedia.bind(md);
        md.getUserMedia = (...a) => { window.__gum++; window.__order.push('getUserMedia'); return orig(...a); };
    }
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        try { window.__order.push('ws:' + JSON.parse(data).type); } catch (e) { window.__order.push('ws:?'); }
        return send.call(this, data);
    };
})();`;

before(async () => {
    q = await Quietroom.start({ label: 'linkcheck' });
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
            for (const s of minted) assert.ok(!line.includes(s), `console of ${page.qrName} shows a token`);
            assert.ok(!line.startsWith('pageerror:'), `script error in ${page.qrName}: ${line}`);
            assert.ok(!/Content Security Policy|Refused to/i.test(line), `CSP violation in ${page.qrName}: ${line}`);
        }
    }
});

async function page(name) {
    const cp = await chromiumPage(browser, name, { initScript: COUNT });
    open.push(cp);
    return cp.page;
}

async function token(claims = {}) {
    const n = ++seq;
    const t = await mintToken(q, { sid: `linkcheck-${process.pid}-${n}`, sub: `pat-${n}`, name: 'Sam Patient', ...claims });
    minted.push(t);
    return t;
}

/* The page ends at the link check: its sentence, its code, no prompt, no auth. */
async function refused(p, code, sentence) {
    await waitState(p, 'ended', 10000);
    assert.equal(await p.evaluate(() => window.quietroom.errorCode), code);
    assert.match(await text(p, 'ended-message'), sentence);
    assert.match(await text(p, 'ended-code'), new RegExp(code));
    assert.equal(await visible(p, 'join'), false, 'no Join button for a refused link');
    const { gum, order } = await p.evaluate(() => ({ gum: window.__gum, order: window.__order }));
    assert.equal(gum, 0, `getUserMedia was called (${order.join(', ')})`);
    assert.deepEqual(order, ['ws:check_link'], 'the page only checked the link');
}

test('a link with a bad signature is refused before the camera prompt', async () => {
    const good = await token();
    const [h, p, s] = good.split('.');
    const forged = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    minted.push(forged);
    const pg = await page('forged');
    await pg.goto(q.link(forged));
    await refused(pg, 'token_bad_signature', /not valid or was changed/i);
});

test('an expired link is refused before the camera prompt', async () => {
    const now = Math.floor(Date.now() / 1000);
    const t = await token({ iat: now - 7200, exp: now - 3600 });
    const pg = await page('expired');
    await pg.goto(q.link(t));
    await refused(pg, 'token_expired', /has expired/i);
    await screenshot(pg, 'linkcheck-expired');
});

test('a link not valid yet says from when, in local time, before the camera prompt', async () => {
    const now = Math.floor(Date.now() / 1000);
    const nbf = now + 3 * 3600;
    const t = await token({ nbf });
    const pg = await page('early');
    await pg.goto(q.link(t));
    await refused(pg, 'token_not_yet_valid', /opens at/i);
    // The server's not_before is the token's nbf; the page shows it as a
    // local time in its own language.
    const expected = await pg.evaluate((s) => new Intl.DateTimeFormat(document.documentElement.lang,
        { hour: 'numeric', minute: '2-digit' }).format(new Date(s * 1000)), nbf);
    assert.ok((await text(pg, 'ended-message')).includes(expected), `"${await text(pg, 'ended-message')}" names ${expected}`);
    const err = pg.qrSockets.flatMap((s) => s.received).find((m) => m.type === 'error');
    assert.equal(err && err.not_before, nbf, 'the refusal carries not_before');
    await screenshot(pg, 'linkcheck-not-yet-valid');
});

test('a good link is checked first, then the camera is asked for; Join waits for the answer', async () => {
    const t = await token();
    const pg = await page('good');
    await pg.goto(q.link(t));
    await waitState(pg, 'precall', 10000);
    const order = await pg.evaluate(() => window.__order);
    assert.equal(order[0], 'ws:check_link', `order: ${order.join(', ')}`);
    assert.ok(order.indexOf('getUserMedia') > 0, `order: ${order.join(', ')}`);
    const ok = pg.qrSockets.flatMap((s) => s.received).find((m) => m.type === 'link_ok');
    assert.ok(ok, 'link_ok received');
    assert.equal(ok.role, 'patient');
    // The link was not used up by the check: Join works.
    await pg.waitForFunction(() => !document.querySelector('[data-testid="join"]').disabled);
    await pg.click('[data-testid="join"]');
    await waitState(pg, 'waiting', 10000);
});

test('Join stays disabled while the camera and microphone prompt is open', async () => {
    const t = await token();
    // A prompt that the person has not answered yet: getUserMedia pending.
    const { context, page: pg } = await chromiumPage(browser, 'prompt', {
        initScript: `${COUNT}
            (() => {
                const md = navigator.mediaDevices;
                const counted = md.getUserMedia;
                md.getUserMedia = (...a) => new Promise((resolve, reject) => {
                    window.__answer = () => counted(...a).then(resolve, reject);
                });
            })();`,
    });
    open.push({ context, page: pg });
    await pg.goto(q.link(t));
    await pg.waitForFunction(() => typeof window.__answer === 'function', null, { timeout: 10000 });
    assert.equal(await pg.evaluate(() => window.quietroom.state), 'precall');
    assert.equal(await pg.evaluate(() => document.querySelector('[data-testid="join"]').disabled), true);
    await pg.evaluate(() => window.__answer());
    await pg.waitForFunction(() => !document.querySelector('[data-testid="join"]').disabled, null, { timeout: 10000 });
});
