// Relays that die under a call, with two Chromium pages and two relays
// sharing one secret: signaling moves the pair to the other relay (an ICE
// restart on new credentials and candidates; DTLS and SRTP stay end to end),
// and a pair admitted while no relay is ready waits, says so, and gets media
// as soon as one is back, also when a page reloaded meanwhile. Never a
// forced reload, never a readmission, never "Nobody else is in the call".
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Quietroom, sleep, waitFor } from './lib/servers.mjs';
import {
    launchChromium, chromiumPage, screenshot, waitState, visible, click,
    mediaStats, assertMediaFlowing, checkWire, layoutProblems, qrState,
} from './lib/browsers.mjs';
import { startCall, events, watchStates } from './lib/calls.mjs';

let q;
let browser;
const open = [];
const tokens = [];

before(async () => {
    q = await Quietroom.start({ label: 'failover', relays: 2 });
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
        checkWire(page, { relays: q.relays.map((r) => [r.mediaHost, r.mediaPort]), tokens });
        for (const line of page.qrConsole) assert.ok(!line.startsWith('pageerror:'), `script error in ${page.qrName}: ${line}`);
    }
});

/* The relay port the candidates of an SDP name. */
function relayPort(sdp) {
    const c = (sdp || '').split(/\r?\n/).find((l) => l.startsWith('a=candidate:'));
    return c ? Number(c.split(' ')[5]) : -1;
}

/* Polls both pages every 250 ms until each has decoded a new video frame
 * and received audio since the call; returns when both have (Date.now()). */
async function mediaBack(pages, timeout) {
    const first = new Map();
    for (const p of pages) first.set(p, await mediaStats(p));
    const seen = new Set();
    const until = Date.now() + timeout;
    while (seen.size < pages.length) {
        if (Date.now() > until) {
            const names = pages.filter((p) => !seen.has(p)).map((p) => p.qrName).join(', ');
            throw new Error(`no media for ${names} within ${timeout} ms\n  ${await events(pages.find((p) => !seen.has(p)))}`);
        }
        await sleep(250);
        for (const p of pages) {
            const st = await mediaStats(p);
            const f = first.get(p);
            if (st.framesDecoded > f.framesDecoded + 2 && st.audioPackets > f.audioPackets + 10) seen.add(p);
        }
    }
    return Date.now();
}

/* The call screen as it should be: one remote tile, the controls, no
 * "nobody else", no end screen; the page never left the call. */
async function assertCallIntact(page, { role }) {
    assert.equal(await qrState(page), 'in-call');
    assert.ok(!(await page.evaluate(() => window.__states)).some((s) => !s.startsWith('in-call/')),
        `${page.qrName} left the call: ${JSON.stringify(await page.evaluate(() => window.__states))}`);
    assert.equal(await page.evaluate(() => document.querySelectorAll('[data-testid="remote-tile"]').length), 1);
    assert.equal(await visible(page, 'remote-empty'), false, `${page.qrName} says nobody else is in the call`);
    for (const id of ['toggle-mic', 'toggle-cam', 'leave', ...(role === 'clinician' ? ['end-session'] : [])]) {
        assert.ok(await visible(page, id), `${page.qrName}: ${id} is gone`);
    }
    assert.deepEqual(await layoutProblems(page, ['leave', 'remote-video']), []);
}

async function shots(page, name) {
    for (const [w, h, size] of [[1280, 800, 'desktop'], [390, 844, 'phone']]) {
        await page.setViewportSize({ width: w, height: h });
        await sleep(300);
        await screenshot(page, `${name}-${size}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
}

let survivor = -1;
let waitingCall = null;   // the next test goes on with the call (closed by it)

test('kill -9 of the relay carrying a call: media comes back through the other relay, no reload, no readmission', async () => {
    const { doc, pat, patId, docId } = await startCall(q, browser, { label: 'failover', open, tokens });
    for (const page of [doc, pat]) await page.evaluate(() => { window.__sameDocument = true; });
    const port = relayPort(await pat.evaluate(() => window.quietroom.lastSdp.offer));
    const from = q.relays.findIndex((r) => r.mediaPort === port);
    assert.ok(from >= 0, 'the call is on neither relay');
    const to = 1 - from;
    const forwardedBefore = (await q.relayStats(to)).packets.forwarded;

    const killed = Date.now();
    await q.killRelay(from);
    // Signaling gives the relay QR_RELAY_LOST_MS (3 s) to come back first.
    await waitFor('the therapist to be asked for an ICE restart', async () =>
        (await doc.evaluate(() => window.quietroom.events.some((e) => e.includes('received renegotiate')))), { timeout: 10000, interval: 100 });
    const decided = Date.now();
    const back = await mediaBack([doc, pat], 10000);
    process.stderr.write(`  relay ${q.relays[from].name} killed: the move after ${decided - killed} ms, ` +
        `video and audio both ways ${back - decided} ms after it (${back - killed} ms after the kill)\n`);
    if (process.env.QR_FAILOVER_EVENTS === '1') for (const p of [doc, pat]) process.stderr.write(`  ${p.qrName} ${await events(p)}\n`);
    assert.ok(back - decided <= 5000, `media came back ${back - decided} ms after the move (over 5 s)`);
    await assertMediaFlowing(doc, { timeout: 5000 });
    await assertMediaFlowing(pat, { timeout: 5000 });

    // Through the other relay, on its candidates, with the same people.
    assert.equal(relayPort(await pat.evaluate(() => window.quietroom.lastSdp.offer)), q.relays[to].mediaPort);
    assert.ok((await q.relayStats(to)).packets.forwarded > forwardedBefore + 100, 'the other relay forwards nothing');
    assert.equal(await pat.evaluate(() => window.quietroom.participant), patId);
    assert.equal(await doc.evaluate(() => window.quietroom.participant), docId);
    for (const [page, role] of [[doc, 'clinician'], [pat, 'patient']]) {
        assert.equal(await page.evaluate(() => window.__sameDocument), true, `${page.qrName} reloaded`);
        await assertCallIntact(page, { role });
    }
    await shots(pat, 'failover-moved');
    await shots(doc, 'failover-moved-therapist');
    survivor = to;
    await click(doc, 'end-session');
    await click(doc, 'confirm-ok');
    await waitState(pat, 'ended', 5000);
});

test('no relay ready at admission: the two meet, the page says video is on its way, media starts when a relay is back', async () => {
    assert.ok(survivor >= 0, 'needs the previous test');
    const dead = 1 - survivor;
    await q.killRelay(survivor);
    await waitFor('signaling to see no relay', async () =>
        (await (await fetch(`${q.base}/healthz`)).json()).relays_healthy === 0, { timeout: 10000 });

    const n = Date.now();
    const therapist = await q.token({ sid: `norelay-${process.pid}-${n}`, role: 'clinician', sub: 'doc-nr', name: 'Dr. Rivera' });
    const patient = await q.token({ sid: `norelay-${process.pid}-${n}`, role: 'patient', sub: 'pat-nr', name: 'Sam Patient' });
    tokens.push(therapist, patient);
    const d = await chromiumPage(browser, 'therapist');
    const p = await chromiumPage(browser, 'patient');
    const doc = d.page, pat = p.page;
    waitingCall = { d, p };
    await doc.goto(q.link(therapist));
    await waitState(doc, 'precall');
    await click(doc, 'join');
    await waitState(doc, 'in-call');
    await pat.goto(q.link(patient));
    await waitState(pat, 'precall');
    await click(pat, 'join');
    await waitState(pat, 'waiting');
    await click(doc, `admit-${await pat.evaluate(() => window.quietroom.participant)}`);
    await waitState(pat, 'in-call');
    for (const page of [doc, pat]) {
        await page.evaluate(() => { window.__sameDocument = true; });
        // Each sees the other's tile, saying what is happening; nobody says
        // "nobody else is in the call"; no offer went out yet.
        await waitFor(`${page.qrName}'s tile to say it waits for a video server`, async () =>
            /waiting for a video server/i.test(await page.evaluate(() =>
                document.querySelector('[data-testid="remote-tile"] .remote-state')?.textContent || '')), { timeout: 5000 });
        assert.equal(await visible(page, 'remote-empty'), false, `${page.qrName} says nobody else is in the call`);
        await watchStates(page);
    }
    await shots(pat, 'failover-waiting');
    await shots(doc, 'failover-waiting-therapist');
    assert.ok(!(await doc.evaluate(() => window.quietroom.events)).some((e) => e.startsWith('offer sent')),
        'the therapist offered although no relay was there');

    await sleep(3000);
    const restarted = Date.now();
    await q.restartRelay(dead);
    const back = await mediaBack([doc, pat], 20000);
    process.stderr.write(`  relay ${q.relays[dead].name} back: video and audio both ways ${back - restarted} ms after its start\n`);
    for (const [page, role] of [[doc, 'clinician'], [pat, 'patient']]) {
        assert.equal(await page.evaluate(() => window.__sameDocument), true, `${page.qrName} reloaded`);
        assert.equal(await page.evaluate(() => document.querySelector('[data-testid="remote-tile"] .remote-state')?.textContent || ''), '');
        assert.equal(await qrState(page), 'in-call');
        await assertCallIntact(page, { role }).catch(async (e) => { throw new Error(`${e.message}\n  ${await events(page)}`); });
    }
    waitingCall.relay = dead;
});

test('the patient reloads while the call waits for a relay: media both ways once a relay is back', async () => {
    assert.ok(waitingCall && waitingCall.relay !== undefined, 'needs the previous test');
    const { d, p, relay } = waitingCall;
    open.push(d, p);
    const doc = d.page, pat = p.page;
    await q.killRelay(relay);
    await waitFor('the therapist to hear the call waits', async () =>
        (await doc.evaluate(() => window.quietroom.events.some((e) => e.includes('received relay_wait')))), { timeout: 10000 });
    await pat.reload();
    await waitState(pat, 'in-call', 15000);
    await waitFor('the reloaded tile to say it waits', async () =>
        /waiting for a video server/i.test(await pat.evaluate(() =>
            document.querySelector('[data-testid="remote-tile"] .remote-state')?.textContent || '')), { timeout: 5000 });
    await sleep(1000);
    const restarted = Date.now();
    await q.restartRelay(relay);
    // The therapist offers on the relay; the reloaded page answers from a new
    // connection (it had built its link to offer), and the therapist's old
    // connection, meeting a new DTLS identity, is replaced by a new offer.
    const back = await mediaBack([doc, pat], 20000).catch(async (e) => {
        throw new Error(`${e.message}\n  therapist ${await events(doc)}\n  patient ${await events(pat)}`);
    });
    process.stderr.write(`  the patient reloaded while waiting: video and audio both ways ${back - restarted} ms after the relay's start\n`);
    assert.equal(await qrState(pat), 'in-call');
    await assertCallIntact(doc, { role: 'clinician' });
});
