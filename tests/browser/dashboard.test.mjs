// The operator dashboard in headless Chromium against the real relay and
// signaling with a live visit (a clinician in the room, a patient waiting,
// both the real web client) and media through the relay (synthetic calls
// by `quietroomctl probe`, one over UDP, one over ICE-TCP): the page loads
// under its strict CSP, its canvases draw, its numbers move from one poll
// to the next and show the calls' packets, ICE-TCP apart, the data needs
// the operator token, and a screenshot is kept in artifacts/dashboard.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { Quietroom, REPO, BIN, freePort, sleep, waitFor } from './lib/servers.mjs';
import { launchChromium, chromiumPage, screenshot } from './lib/browsers.mjs';

const OPS_TOKEN = 'dashboard-test-token-5c1e9a0b';
let q;
let browser;
let opsPort;

before(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'qr-dash-'));
    const tokenFile = path.join(dir, 'ops.token');
    await writeFile(tokenFile, OPS_TOKEN + '\n', { mode: 0o600 });
    opsPort = await freePort('127.0.0.1');
    q = await Quietroom.start({
        label: 'dashboard',
        tcp: true,
        extraSignal: [
            `ops-listen = 127.0.0.1:${opsPort}`,
            `ops-token-file = ${tokenFile}`,
            `ops-static-dir = ${path.join(REPO, 'signaling', 'ops-web')}`,
        ],
    });
    browser = await launchChromium();
});

after(async () => {
    if (browser) await browser.close();
    if (q) await q.stop();
});

/* Pixels of a canvas that are neither the background nor the grid. */
function inkPixels(page, selector) {
    return page.evaluate((sel) => {
        const c = document.querySelector(sel);
        if (!c) return -1;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
            const white = d[i] > 245 && d[i + 1] > 245 && d[i + 2] > 245;
            const grid = Math.abs(d[i] - 0xe3) < 4 && Math.abs(d[i + 1] - 0xe6) < 4 && Math.abs(d[i + 2] - 0xe8) < 4;
            if (!white && !grid) n++;
        }
        return n;
    }, selector);
}

/* Pixels of exactly one series colour (the connections line is #1f77b4). */
function seriesPixels(page, selector, rgb) {
    return page.evaluate(([sel, [r, g, b]]) => {
        const c = document.querySelector(sel);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (Math.abs(d[i] - r) < 8 && Math.abs(d[i + 1] - g) < 8 && Math.abs(d[i + 2] - b) < 8) n++;
        }
        return n;
    }, [selector, rgb]);
}

test('the operator dashboard draws live aggregates and updates every second', async () => {
    const base = `http://127.0.0.1:${opsPort}`;
    // The data needs the token; the page itself holds none.
    assert.equal((await fetch(`${base}/api/dashboard`)).status, 401);
    const page0 = await fetch(`${base}/dashboard`);
    assert.equal(page0.status, 200);
    assert.match(page0.headers.get('content-security-policy') || '', /script-src 'self'/);
    assert.doesNotMatch(await page0.text(), /<script>|onload=|style="/);

    // A live visit: the clinician is in, the patient waits (each a
    // WebSocket from a page of the client's origin, speaking the protocol).
    const sid = `dash-${Date.now()}`;
    const join = async (role, sub, name) => {
        const { page: p } = await chromiumPage(browser, role);
        await p.goto(`${q.base}/`);
        const token = await q.token({ sid, role, sub, name });
        const reply = await p.evaluate((t) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/ws`, 'quietroom.v1');
            window.keep = ws;
            ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: t }));
            ws.onmessage = (e) => resolve(JSON.parse(e.data).type);
            ws.onerror = () => resolve('error');
        }), token);
        assert.equal(reply, 'welcome');
        return p;
    };
    const doc = await join('clinician', 'dr-dash', 'Dr. Dash');
    const pat = await join('patient', 'pt-dash', 'Pat Dash');

    const { page } = await chromiumPage(browser, 'operator');
    const violations = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
    await page.goto(`${base}/dashboard#token=${OPS_TOKEN}`);
    await waitFor('the waiting room to show the patient', async () =>
        (await page.textContent('#waiting-room')) === '1', { timeout: 15000 }).catch(async (e) => {
        await screenshot(page, 'dashboard-failed');
        throw new Error(`${e.message}; page says: ${await page.textContent('body')}`);
    });
    await waitFor('a relay card with its name', async () =>
        (await page.textContent('#relay-r1 .relay-name')) === 'Relay r1', { timeout: 5000 });
    assert.equal(await page.textContent('#ws-connections'), '2');
    assert.equal(await page.textContent('#sessions'), '1');

    // Media through the relay while the page polls: real encrypted calls
    // by the reference native client, about 50 packets/s each way, one over
    // UDP and one over ICE-TCP (the card splits traffic by transport).
    const runProbe = (transport) => new Promise((resolve) => {
        execFile(BIN.ctl, ['probe', '--signal', `${q.base.replace(/^http/, 'ws')}/ws`,
            '--key', q.ehrKey, '--seconds', '8', '--transport', transport, '--json'], (err, stdout, stderr) =>
            resolve({ code: err ? err.code : 0, stdout, stderr }));
    });
    const probes = [runProbe('udp'), runProbe('tcp')];
    const number = async (sel) => Number((await page.textContent(`#relay-r1 ${sel}`)).replace(/[^\d.]/g, ''));
    const ppsIn = () => number('.r-pps-in');
    await waitFor('the calls\' packets on the page', async () => (await ppsIn()) >= 80, { timeout: 15000 });
    await waitFor('the ICE-TCP call\'s packets and connections on the page', async () =>
        (await number('.r-tcp-pps-in')) >= 40 && (await number('.r-tcp-conns')) >= 2, { timeout: 15000 });
    assert.ok(await number('.r-tcp-pps-in') < await ppsIn(), 'TCP is a part of all traffic');

    // Numbers update between two reads a couple of polls apart.
    const first = { updates: Number(await page.getAttribute('body', 'data-updates')), status: await page.textContent('#status') };
    await sleep(2500);
    const second = { updates: Number(await page.getAttribute('body', 'data-updates')), status: await page.textContent('#status') };
    assert.ok(second.updates >= first.updates + 2, `only ${second.updates - first.updates} updates in 2.5 s`);
    assert.notEqual(second.status, first.status);
    // The relay's rates need two polls; by now they are numbers.
    await waitFor('relay rates', async () => /\d/.test(await page.textContent('#relay-r1 .r-pps-in')), { timeout: 5000 });

    // The charts draw: the connections line itself, and every relay chart.
    assert.ok(await seriesPixels(page, '#chart-signal', [0x1f, 0x77, 0xb4]) > 10, 'no connections line');
    for (const c of ['c-bits', 'c-packets', 'c-workers', 'c-loss']) {
        const n = await inkPixels(page, `#relay-r1 .${c}`);
        assert.ok(n > 20, `${c}: ${n} drawn pixels`);
    }
    // Nothing names the visit or a person.
    const html = await page.content();
    for (const s of [sid, 'dr-dash', 'pt-dash', 'Pat Dash', 'Dr. Dash']) assert.ok(!html.includes(s), s);
    assert.deepEqual(violations, []);
    const file = await screenshot(page, 'dashboard');
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(1200); // a poll redraws at the new size
    const phone = await screenshot(page, 'dashboard-phone');
    process.stderr.write(`dashboard screenshots: ${file}, ${phone}\n`);
    for (const call of await Promise.all(probes)) assert.equal(call.code, 0, `probe: ${call.stderr}`);
    for (const p of [page, doc, pat]) await p.context().close();
});
