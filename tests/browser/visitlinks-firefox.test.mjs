// Issue 18 with Firefox ESR as the patient and Chromium as the therapist,
// each in a network namespace of its own (lib/netns.mjs: Firefox gathers no
// candidate without a default route and does not pair a non-loopback
// candidate with a loopback relay). Relay and signaling (HTTPS, a fresh
// self-signed certificate) listen on the root side of the first veth pair.
// - the patient closes the tab and reopens the same link within the resume
//   grace: back in the call without readmission, media both ways;
// - audio-only: Firefox stops sending video (getStats), audio goes on, the
//   camera comes back with one click;
// - quality made poor for real (nftables in the patient's namespace drops a
//   share of what the relay sends it): after 10 s of it the page offers
//   audio-only, and accepting it turns audio-only on.
// Needs root, iproute2 and nftables.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Quietroom, waitFor } from './lib/servers.mjs';
import {
    launchChromium, chromiumPage, screenshot, waitState, waitVisible, visible, text, click, clickControl, assertMediaFlowing, qrState,
} from './lib/browsers.mjs';
import { TestNet } from './lib/netns.mjs';
import {
    checkVisitWire, checkConsole, openAndJoin, sendStats, signalLogText, relayLogText, signalAuditText, eventsOf, audioOnlyWindow,
} from './lib/visits.mjs';
import { SIGNAL_TAP } from './lib/signaltap.mjs';
import { msUntilShown, clickTimed, tileAttrs, sendChat, waitChat } from './lib/incall.mjs';

const SKIP = process.env.QR_SKIP_FIREFOX === '1' ? 'QR_SKIP_FIREFOX=1' : false;
// Long enough for Firefox to reopen and join on a busy machine.
const GRACE_S = 20;

let net, nsPat, nsDoc, q, chromium, firefox;
let seq = 0;
const tokensMinted = [];
const chromiumPages = [];
const names = ['Dr. Rivera', 'Sam Patient'];

/* Each Firefox page records its states (every 50 ms, changes only) in
 * window.__states from its first script on. */
const WATCH_STATES = `(() => {
    window.__states = [];
    setInterval(() => {
        const s = window.quietroom && window.quietroom.state;
        if (s && window.__states[window.__states.length - 1] !== s) window.__states.push(s);
    }, 50);
})();`;

before(async () => {
    if (SKIP) return;
    net = await TestNet.create();
    nsPat = await net.add('ffpat');
    nsDoc = await net.add('ffdoc');
    q = await Quietroom.start({ host: net.serverAddr, label: 'visitlinks-firefox', tls: true, extraSignal: [`resume-grace = ${GRACE_S}`] });
    chromium = await launchChromium({
        executablePath: await nsDoc.chromiumWrapper(),
        args: [`--ignore-certificate-errors-spki-list=${q.tls.spki}`],
    });
    firefox = await nsPat.firefox({ acceptInsecureCerts: true });
});

after(async () => {
    try {
        await Promise.allSettled([chromium && chromium.close(), firefox && firefox.close()]);
        if (q) {
            const logs = [await signalLogText(q), await relayLogText(q), await signalAuditText(q)];
            await q.stop();
            for (const t of tokensMinted) for (const l of logs) assert.ok(!l.includes(t), 'a token in a daemon log or the audit log');
        }
    } finally {
        if (net) await net.destroy();
    }
    for (const page of chromiumPages) {
        checkVisitWire(page, { relayHost: q.mediaHost, relayPort: q.mediaPort, tokens: tokensMinted });
        checkConsole(page.qrConsole, page.qrName, [...names, ...tokensMinted]);
    }
});

/* tap: also record the page's signaling messages (lib/signaltap.mjs). */
async function firefoxPage(name, { tap = false } = {}) {
    const page = await firefox.newPage();
    page.qrName = name;
    await page.setViewport({ width: 1280, height: 800 });
    await page.evaluateOnNewDocument(WATCH_STATES);
    if (tap) await page.evaluateOnNewDocument(SIGNAL_TAP);
    return page;
}

async function firefoxConsoleOk(page) {
    checkConsole(await page.consoleLines(), page.qrName, [...names, ...tokensMinted]);
}

/* Chromium therapist in, Firefox patient waits, therapist admits; media
 * both ways. */
async function startVisit(label, { tap = false } = {}) {
    const sid = `${label}-${process.pid}-${++seq}`;
    const therapist = await q.token({ sid, role: 'clinician', sub: `doc-${seq}`, name: 'Dr. Rivera' });
    const patient = await q.token({ sid, role: 'patient', sub: `pat-${seq}`, name: 'Sam Patient' });
    tokensMinted.push(therapist, patient);
    const { context: docCtx, page: doc } = await chromiumPage(chromium, 'therapist (chromium)');
    chromiumPages.push(doc);
    assert.equal(await openAndJoin(doc, q.link(therapist), { timeout: 30000 }), 'in-call');
    const pat = await firefoxPage('patient (firefox)', { tap });
    assert.equal(await openAndJoin(pat, q.link(patient), { timeout: 30000 }), 'waiting');
    const patId = await pat.evaluate(() => window.quietroom.participant);
    await waitVisible(doc, `admit-${patId}`);
    await click(doc, `admit-${patId}`);
    await waitState(pat, 'in-call');
    await assertMediaFlowing(pat, { timeout: 30000 });
    await assertMediaFlowing(doc, { timeout: 30000 });
    return { doc, docCtx, pat, patId, patient, docId: await doc.evaluate(() => window.quietroom.participant) };
}

test('Firefox ESR: the patient closes the tab and reopens the same link within the grace: back in the call, no readmission, media both ways', { skip: SKIP }, async () => {
    const { doc, docCtx, pat, patId, patient } = await startVisit('ff-rejoin');
    try {
        // (Its console is checked at the end: behaviour first.)
        const firstConsole = await pat.consoleLines();
        await pat.close();
        const closedAt = Date.now();
        const pat2 = await firefoxPage('patient (firefox, reopened)');
        const s = await openAndJoin(pat2, q.link(patient), { timeout: 30000 });
        const took = Date.now() - closedAt;
        assert.ok(took < GRACE_S * 1000, `reopening took ${took} ms, over the ${GRACE_S} s grace: the test cannot tell`);
        assert.equal(s, 'in-call', `reopened within the grace: ${s}\n    ${await eventsOf(pat2)}`);
        assert.equal(await pat2.evaluate(() => window.quietroom.participant), patId, 'the same seat');
        const states = await pat2.evaluate(() => window.__states);
        assert.ok(!states.includes('waiting'), `the reopened tab went through the waiting room: ${states.join(' > ')}`);
        assert.equal(doc.qrSockets.flatMap((x) => x.sent).filter((m) => m.type === 'admit').length, 1, 'admitted twice');
        await assertMediaFlowing(pat2, { timeout: 30000 });
        await assertMediaFlowing(doc, { timeout: 30000 });
        assert.equal(await doc.evaluate(() => window.quietroom.peerConnections.size), 1);
        await screenshot(pat2, 'firefox-visit-rejoined');
        checkConsole(firstConsole, pat.qrName, [...names, ...tokensMinted]);
        await firefoxConsoleOk(pat2);
        await pat2.close();
    } finally {
        await docCtx.close();
    }
});

test('Firefox ESR: audio-only stops the outgoing video and keeps the audio; camera back brings the video back', { skip: SKIP }, async () => {
    const { doc, docCtx, pat } = await startVisit('ff-audio');
    try {
        await clickControl(pat, 'audio-only');
        await waitFor('audio-only on', () => pat.evaluate(() => window.quietroom.audioOnly === true &&
            document.querySelector('[data-testid="audio-only"]').getAttribute('aria-pressed') === 'true'), { timeout: 5000 });
        const { db } = await audioOnlyWindow(pat, doc);
        await screenshot(pat, 'firefox-visit-audio-only');
        await clickControl(pat, 'camera-back');
        await waitFor('audio-only off', () => pat.evaluate(() => window.quietroom.audioOnly === false), { timeout: 5000 });
        await waitFor('the therapist to decode Firefox\'s video again', async () => (await sendStats(doc)).framesDecoded > db.framesDecoded + 10, { timeout: 15000 });
        await assertMediaFlowing(doc);
        await firefoxConsoleOk(pat);
        await pat.close();
    } finally {
        await docCtx.close();
    }
});

/* A share (pct %) of the UDP the relay sends into the patient's namespace is
 * dropped (nftables, random): the patient's quality is poor for real. */
async function lossyDownlink(pct) {
    const rules = [
        'table inet qrloss {',
        '    chain input {',
        '        type filter hook input priority filter; policy accept;',
        `        ip saddr ${q.mediaHost} udp sport ${q.mediaPort} numgen random mod 100 < ${pct} counter drop`,
        '    }',
        '}',
    ].join('\n');
    await nsPat.exec('nft', ['-f', '-'], { input: `${rules}\n` });
}

async function lossCounter() {
    const out = JSON.parse(await nsPat.exec('nft', ['-j', 'list', 'table', 'inet', 'qrloss']));
    const rule = out.nftables.find((o) => o.rule);
    const c = rule.rule.expr.find((e) => e.counter);
    return c.counter.packets;
}

/* The quality line says weak (data-level and words) while the page's own
 * meter (QualityMeter.level, peers.js) rates some peer's numbers poor. */
async function weakAndPoor(page) {
    return page.evaluate(async () => {
        const el = document.querySelector('[data-testid="quality"]');
        if (el.dataset.level !== 'weak' || !/^Connection: weak\b/.test(el.textContent)) return false;
        const { QualityMeter } = await import('/peers.js');
        return Object.values(window.quietroom.quality).some((q) => QualityMeter.level(q) === 'poor');
    });
}

test('Firefox ESR: after 10 s of poor quality (15 % of its downlink dropped) the page offers audio-only; accepting turns it on', { skip: SKIP }, async () => {
    const { doc, docCtx, pat } = await startVisit('ff-poor');
    try {
        assert.equal(await visible(pat, 'audio-only-offer'), false, 'audio-only offered on a clean network');
        await lossyDownlink(15);
        const lossFrom = Date.now();
        let poorSince = null;
        await waitFor('the audio-only offer', async () => {
            // Since issue 14 the line says "weak" for both of the meter's
            // fair and poor; the offer follows 10 s of poor: the meter's own
            // verdict (QualityMeter.level of peers.js on the page's numbers)
            // while the line shows weak.
            if (!poorSince && await weakAndPoor(pat)) poorSince = Date.now();
            return visible(pat, 'audio-only-offer');
        }, { timeout: 40000, interval: 250 }).catch(async (e) => {
            throw new Error(`${e.message}; quality "${await text(pat, 'quality')}", ${await lossCounter()} packets dropped\n    ${await eventsOf(pat)}`);
        });
        const offeredAt = Date.now();
        assert.ok(poorSince, 'offered although the page never showed weak quality (measured poor)');
        assert.ok(offeredAt - poorSince >= 8000, `offered ${offeredAt - poorSince} ms after the quality turned poor (10 s expected)`);
        assert.ok(await lossCounter() > 100, 'the loss rule dropped next to nothing');
        process.stderr.write(`  poor from ${poorSince - lossFrom} ms after the loss began; offered ${offeredAt - poorSince} ms later\n`);
        assert.ok((await pat.evaluate(() => window.quietroom.events)).some((e) => e.includes('audio-only offered')), 'no "audio-only offered" event');
        await screenshot(pat, 'firefox-visit-audio-only-offer');
        await click(pat, 'audio-only-accept');
        await waitFor('audio-only on', () => pat.evaluate(() => window.quietroom.audioOnly === true), { timeout: 5000 });
        assert.equal(await qrState(pat), 'in-call');
        await nsPat.exec('nft', ['delete', 'table', 'inet', 'qrloss']);
        await clickControl(pat, 'camera-back');
        await waitFor('audio-only off', () => pat.evaluate(() => window.quietroom.audioOnly === false), { timeout: 5000 });
        await assertMediaFlowing(doc, { timeout: 20000 });
        await pat.close();
    } finally {
        await nsPat.exec('nft', ['delete', 'table', 'inet', 'qrloss']).catch(() => {});
        await docCtx.close();
    }
});

test('Firefox ESR: the data channel through the relay: chat both ways with the Chromium therapist; the therapist\'s mute and camera off shown within 1 s', { skip: SKIP }, async () => {
    const { doc, docCtx, pat, patId, docId } = await startVisit('ff-channel', { tap: true });
    const marker = `qrffchat${process.pid}x${Math.random().toString(36).slice(2, 10)}`;
    try {
        for (const [page, other] of [[doc, patId], [pat, docId]]) {
            await waitFor(`${page.qrName}: data channel open`, () => page.evaluate((p) => {
                const c = window.quietroom.channels && window.quietroom.channels.get(p);
                return !!c && c.state === 'open';
            }, other), { timeout: 15000 });
        }
        const a = `from Chromium ${marker}`;
        await sendChat(doc, a);
        const gotA = await waitChat(pat, a, 8000);
        assert.equal(gotA.from, docId);
        assert.match(gotA.author, /^Dr\. Rivera\b/);
        const b = `from Firefox <b>bold</b> javascript:alert(1) ${marker}`;
        await sendChat(pat, b);
        const gotB = await waitChat(doc, 'from Firefox', 8000);
        assert.equal(gotB.from, patId);
        assert.equal(gotB.text.trim(), b);
        assert.deepEqual(gotB.elements, [], 'HTML from Firefox interpreted on the Chromium page');
        await screenshot(pat, 'firefox-incall-chat');

        const mute = await msUntilShown(pat, docId, 'data-mic', 'off', () => clickTimed(doc, 'toggle-mic'), 8000);
        assert.ok(mute <= 1000, `Firefox showed the therapist's mute after ${mute} ms`);
        assert.ok((await tileAttrs(pat, docId)).mutedShown, 'no Muted badge on Firefox');
        const cam = await msUntilShown(pat, docId, 'data-cam', 'off', () => clickTimed(doc, 'toggle-cam'), 8000);
        const t = await tileAttrs(pat, docId);
        assert.ok(cam <= 1000, `Firefox showed the therapist's camera off after ${cam} ms`);
        assert.ok(!t.videoShown && t.avatarShown, `Firefox: camera off but ${JSON.stringify(t)}`);
        await screenshot(pat, 'firefox-incall-remote-muted-camera-off');
        process.stderr.write(`  Firefox: mute shown after ${mute} ms, camera off after ${cam} ms\n`);

        // Nothing of the chat through signaling (both pages' recorded
        // messages) or in a daemon log or the audit log.
        const ffWire = await pat.evaluate(() => JSON.stringify([window.__qrSignalTap.sent, window.__qrSignalTap.received]));
        assert.ok(ffWire.length > 100 && !ffWire.includes(marker), 'chat text in a signaling message of the Firefox page');
        assert.ok(!JSON.stringify(doc.qrSockets).includes(marker), 'chat text in a signaling message of the Chromium page');
        for (const l of [await signalLogText(q), await relayLogText(q), await signalAuditText(q)]) assert.ok(!l.includes(marker), 'chat text in a daemon log or the audit log');
        await firefoxConsoleOk(pat);
        await pat.close();
    } finally {
        await docCtx.close();
    }
});
