// Issue 18 in Chromium (therapist + patient) against the real relay and
// signaling on loopback: reusable visit links (rejoin within and after the
// resume grace, two tabs with one link, the therapist's mistaken Leave, a
// removed seat, another person's token), the waiting room that talks (the
// clinician's name and the wait, a message to one and to all that is stored
// nowhere, admit all, the arrival sound), audio-only (getStats: no outgoing
// video, audio kept, camera back), mute kept across a reload and the
// clinician-left notice. Contracts: docs/protocol.md and the page's test
// contract (data-testid, window.quietroom).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Quietroom, freePort, sleep, waitFor } from './lib/servers.mjs';
import {
    launchChromium, chromiumPage, screenshot, waitState, waitVisible, visible, text, click,
    mediaStats, assertMediaFlowing, qrState,
} from './lib/browsers.mjs';
import {
    tabIn, checkVisitWire, checkConsole, openAndJoin, endedCode, sendStats, localAudio,
    signalAuditText, signalLogText, relayLogText, metricsText, waitText, neverShows, eventsOf, audioOnlyWindow,
} from './lib/visits.mjs';

/* Short, so that "past the grace" takes seconds; long enough for a closed
 * tab to be reopened and joined on a busy 2-core machine. */
const GRACE_S = 8;
const OPS_TOKEN = `visitlinks-ops-${process.pid}-7d2f`;

let q;
let browser;
let opsBase;
let opsDir;
const contexts = [];        // closed after each test
const pages = [];           // checked after each test (wire, console)
const tokensMinted = [];
const names = ['Dr. Rivera', 'Sam Patient', 'Alex Other'];
let seq = 0;

before(async () => {
    opsDir = await mkdtemp(path.join(tmpdir(), 'qr-visitlinks-ops-'));
    const tokenFile = path.join(opsDir, 'ops.token');
    await writeFile(tokenFile, `${OPS_TOKEN}\n`, { mode: 0o600 });
    const opsPort = await freePort('127.0.0.1');
    opsBase = `http://127.0.0.1:${opsPort}`;
    q = await Quietroom.start({
        label: 'visitlinks',
        extraSignal: [`resume-grace = ${GRACE_S}`, `ops-listen = 127.0.0.1:${opsPort}`, `ops-token-file = ${tokenFile}`],
    });
    browser = await launchChromium();
});

after(async () => {
    if (browser) await browser.close();
    if (q) {
        // No token in any daemon log or audit record, after everything.
        const logs = [await signalLogText(q), await relayLogText(q), await signalAuditText(q)];
        await q.stop();
        for (const t of tokensMinted) {
            for (const l of logs) assert.ok(!l.includes(t) && !l.includes(t.split('.')[2]), 'a token (or its signature) in a daemon log or the audit log');
        }
    }
    if (opsDir) await rm(opsDir, { recursive: true, force: true });
});

afterEach(async () => {
    const done = contexts.splice(0);
    await Promise.all(done.map((c) => c.close().catch(() => {})));
    for (const page of pages.splice(0)) {
        checkVisitWire(page, { relayHost: q.mediaHost, relayPort: q.mediaPort, tokens: tokensMinted });
        checkConsole(page.qrConsole, page.qrName, [...names, ...tokensMinted]);
    }
});

/* A browser profile of its own (a person's own browser) with one tab. */
async function person(name, { keep = false } = {}) {
    const { context, page } = await chromiumPage(browser, name);
    if (keep) kept.push(context);
    else contexts.push(context);
    pages.push(page);
    return { context, page };
}

/* A call that spans two tests: its contexts are closed after the second. */
const kept = [];
function releaseKept() {
    contexts.push(...kept.splice(0));
}

/* Another tab in that person's browser. */
async function anotherTab(context, name) {
    const page = await tabIn(context, name);
    pages.push(page);
    return page;
}

async function visitTokens(label) {
    const sid = `${label}-${process.pid}-${++seq}`;
    const therapist = await q.token({ sid, role: 'clinician', sub: `doc-${seq}`, name: 'Dr. Rivera' });
    const patient = await q.token({ sid, role: 'patient', sub: `pat-${seq}`, name: 'Sam Patient' });
    tokensMinted.push(therapist, patient);
    return { sid, seq, therapist, patient };
}

async function mint(args) {
    const t = await q.token(args);
    tokensMinted.push(t);
    return t;
}

/* The first `welcome` the page received over its sockets (from `from` on). */
function welcomes(page, from = 0) {
    return page.qrSockets.slice(from).flatMap((s) => s.received).filter((m) => m.type === 'welcome');
}

/* Therapist in, patient waits, therapist admits, media both ways. */
async function startVisit(label, { shots = false, keep = false } = {}) {
    const t = await visitTokens(label);
    const d = await person('therapist', { keep });
    const p = await person('patient', { keep });
    assert.equal(await openAndJoin(d.page, q.link(t.therapist)), 'in-call');
    await waitVisible(d.page, 'clinician-panel');
    assert.equal(await openAndJoin(p.page, q.link(t.patient)), 'waiting');
    const patId = await p.page.evaluate(() => window.quietroom.participant);
    const docId = await d.page.evaluate(() => window.quietroom.participant);
    if (shots) {
        await screenshot(p.page, 'visit-waiting-room');
        await screenshot(d.page, 'visit-clinician-lobby');
    }
    await click(d.page, `admit-${patId}`);
    await waitState(p.page, 'in-call');
    await assertMediaFlowing(d.page);
    await assertMediaFlowing(p.page);
    return { t, doc: d.page, docCtx: d.context, pat: p.page, patCtx: p.context, patId, docId };
}

/* The therapist's page was told that this participant came back with their
 * link (a lobby entry or a peer_status with rejoined: true). */
function therapistToldRejoined(doc, id) {
    return doc.qrSockets.flatMap((s) => s.received).some((m) =>
        (m.type === 'lobby' && [...(m.waiting || []), ...(m.present || [])].some((e) => e.participant === id && e.rejoined === true)) ||
        (m.type === 'peer_status' && m.participant === id && m.rejoined === true));
}

test('rejoin: the same link reopened after closing the tab is back in the call within the grace, in the waiting room after it', async () => {
    const { t, doc, pat, patCtx, patId } = await startVisit('rejoin', { shots: true });
    let admits = doc.qrSockets.flatMap((s) => s.sent).filter((m) => m.type === 'admit').length;
    assert.equal(admits, 1);

    // 1. The tab closes by accident; the same email link opens it again at once.
    await pat.close();
    const closedAt = Date.now();
    const pat2 = await anotherTab(patCtx, 'patient (reopened)');
    const s2 = await openAndJoin(pat2, q.link(t.patient));
    const reopenedIn = Date.now() - closedAt;
    assert.ok(reopenedIn < GRACE_S * 1000, `reopening took ${reopenedIn} ms, over the ${GRACE_S} s grace: the test cannot tell`);
    assert.equal(s2, 'in-call', `reopened within the grace: ${s2} (${await endedCode(pat2).then(JSON.stringify)})\n    ${await eventsOf(pat2)}`);
    const w2 = welcomes(pat2);
    assert.equal(w2.length, 1, 'one welcome on the reopened tab');
    assert.equal(w2[0].participant, patId, 'the same seat (participant id)');
    assert.equal(w2[0].rejoined, true, 'welcome says rejoined');
    assert.equal(w2[0].state, 'admitted', 'admitted without readmission');
    await assertMediaFlowing(pat2, { timeout: 25000 });
    await assertMediaFlowing(doc, { timeout: 25000 });
    admits = doc.qrSockets.flatMap((s) => s.sent).filter((m) => m.type === 'admit').length;
    assert.equal(admits, 1, 'the therapist admitted again');
    await waitFor('the therapist to be told the patient rejoined', () => therapistToldRejoined(doc, patId), { timeout: 5000 });
    assert.equal(await doc.evaluate(() => window.quietroom.peerConnections.size), 1, 'the therapist has one peer connection');
    await screenshot(pat2, 'visit-rejoined-in-call-patient');
    await screenshot(doc, 'visit-rejoined-in-call-therapist');

    // 2. Closed again, and reopened only after the grace: the waiting room.
    await pat2.close();
    await sleep(GRACE_S * 1000 + 3000);
    const pat3 = await anotherTab(patCtx, 'patient (after the grace)');
    const s3 = await openAndJoin(pat3, q.link(t.patient));
    assert.equal(s3, 'waiting', `reopened after the grace: ${s3} (${await endedCode(pat3).then(JSON.stringify)})`);
    const w3 = welcomes(pat3);
    assert.equal(w3.length, 1);
    assert.equal(w3[0].state, 'waiting');
    assert.equal(w3[0].rejoined, true);
    assert.equal(w3[0].participant, patId, 'the same seat');
    // The therapist sees it waiting, marked as having rejoined.
    await waitVisible(doc, `admit-${patId}`);
    await waitVisible(doc, `rejoined-${patId}`);
    assert.match(await text(doc, `rejoined-${patId}`), /rejoin/i);
    await screenshot(doc, 'visit-rejoined-waiting-therapist');
    await click(doc, `admit-${patId}`);
    await waitState(pat3, 'in-call');
    await assertMediaFlowing(pat3, { timeout: 25000 });
});

test('two tabs with the same link: the newer takes the seat, the older is told it was replaced and does not come back', async () => {
    const { t, doc, pat, patCtx, patId } = await startVisit('tabs');
    const patB = await anotherTab(patCtx, 'patient (second tab)');
    const sB = await openAndJoin(patB, q.link(t.patient));
    assert.equal(sB, 'in-call', `the second tab: ${sB}\n    ${await eventsOf(patB)}`);
    assert.equal(welcomes(patB)[0].participant, patId, 'the second tab has the same seat');
    await waitState(pat, 'ended', 8000);
    const code = await endedCode(pat);
    assert.ok((code.text || '').includes('replaced'), `the older tab's ended-code: ${JSON.stringify(code)}`);
    assert.ok(pat.qrSockets.flatMap((s) => s.received).some((m) => m.type === 'replaced'), 'the older tab got `replaced`');
    await screenshot(pat, 'visit-replaced-older-tab');
    // It stays ended and does not try to resume (its secret is void).
    const socketsThen = pat.qrSockets.length;
    await sleep(5000);
    assert.equal(await qrState(pat), 'ended');
    assert.equal(pat.qrSockets.length, socketsThen, 'the replaced tab opened another connection');
    assert.ok(!pat.qrSockets.flatMap((s) => s.sent).some((m) => m.type === 'resume'), 'the replaced tab tried to resume');
    // The newer tab has the call; the therapist one peer, media both ways.
    await assertMediaFlowing(patB, { timeout: 25000 });
    await assertMediaFlowing(doc, { timeout: 25000 });
    assert.equal(await doc.evaluate(() => window.quietroom.peerConnections.size), 1);
    assert.equal(await qrState(patB), 'in-call');
});

test('Leave asks first (cancel keeps the call); the patient is told the clinician left; the therapist\'s link brings them back', async () => {
    const { t, doc, docCtx, pat, docId } = await startVisit('leave');
    // Leave looks unlike End (End is red, Leave is not).
    const colours = await doc.evaluate(() => {
        const bg = (id) => getComputedStyle(document.querySelector(`[data-testid="${id}"]`)).backgroundColor;
        return { leave: bg('leave'), end: bg('end-session') };
    });
    assert.notEqual(colours.leave, colours.end, `Leave and End look alike: ${JSON.stringify(colours)}`);

    await click(doc, 'leave');
    await waitVisible(doc, 'confirm');
    await screenshot(doc, 'visit-leave-confirm');
    await click(doc, 'confirm-cancel');
    await waitFor('the dialog to close', async () => !(await visible(doc, 'confirm')), { timeout: 3000 });
    await sleep(1000);
    assert.equal(await qrState(doc), 'in-call', 'cancel left the call');
    assert.equal(await qrState(pat), 'in-call');
    assert.ok(!doc.qrSockets.flatMap((s) => s.sent).some((m) => m.type === 'leave'), 'cancel sent leave');
    await assertMediaFlowing(doc);

    // Leave for real: the patient stays, and is told.
    await click(doc, 'leave');
    await waitVisible(doc, 'confirm');
    await click(doc, 'confirm-ok');
    await waitState(doc, 'ended', 5000);
    await waitText(pat, 'clinician-left', /clinician has left/i, 8000);
    assert.match(await text(pat, 'clinician-left'), /wait or leave/i);
    assert.equal(await qrState(pat), 'in-call', 'the patient was sent away');
    await screenshot(pat, 'visit-clinician-left');

    // The therapist reopens their link: back in, the patient with them.
    const doc2 = await anotherTab(docCtx, 'therapist (reopened)');
    const s = await openAndJoin(doc2, q.link(t.therapist));
    assert.equal(s, 'in-call', `the therapist's link after Leave: ${s} (${await endedCode(doc2).then(JSON.stringify)})`);
    const w = welcomes(doc2)[0];
    assert.equal(w.participant, docId, 'the therapist\'s own seat');
    assert.equal(w.rejoined, true);
    await assertMediaFlowing(doc2, { timeout: 25000 });
    await assertMediaFlowing(pat, { timeout: 25000 });
    await waitFor('the clinician-left notice to go', async () => !(await visible(pat, 'clinician-left')), { timeout: 5000 });
});

/* A raw WebSocket from a page of the client's origin: auth with `token`;
 * resolves with the first message and the close code (if it closed). */
async function rawAuth(page, token) {
    return page.evaluate((tk) => new Promise((resolve) => {
        const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, 'quietroom.v1');
        let first = null;
        const done = (close) => resolve({ first, close });
        ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: tk }));
        ws.onmessage = (e) => {
            if (!first) first = JSON.parse(e.data);
            if (first.type === 'welcome') { ws.close(1000); done(null); }
        };
        ws.onclose = (e) => done(e.code);
        setTimeout(() => done('timeout'), 8000);
    }), token);
}

let shared = null;

test('another person\'s token for the same visit gets a seat of its own in the waiting room, never the first person\'s', async () => {
    shared = await startVisit('other', { keep: true });
    const { t, doc, pat, patId } = shared;
    const other = await mint({ sid: t.sid, role: 'patient', sub: `other-${t.seq}`, name: 'Alex Other' });
    const o = await person('other person');
    const s = await openAndJoin(o.page, q.link(other));
    assert.equal(s, 'waiting', `the other person: ${s}`);
    const otherId = await o.page.evaluate(() => window.quietroom.participant);
    assert.ok(otherId && otherId !== patId, `the other person got participant ${otherId} (the patient is ${patId})`);
    assert.notEqual(welcomes(o.page)[0].participant, patId);
    await waitVisible(doc, `admit-${otherId}`);
    assert.equal(await qrState(pat), 'in-call', 'the first person lost their seat');
    await assertMediaFlowing(pat);

    // WebSocket level: a token with the patient's jti but another sub is
    // refused; a fresh one of a third person gets a third seat.
    const jti = JSON.parse(Buffer.from(t.patient.split('.')[1], 'base64url').toString()).jti;
    assert.ok(jti, 'the patient\'s token has a jti');
    const sameJti = await mint({ sid: t.sid, role: 'patient', sub: `thief-${t.seq}`, name: 'Alex Other', extra: ['--jti', jti] });
    const w = await person('websocket');
    await w.page.goto(`${q.base}/`);
    const r1 = await rawAuth(w.page, sameJti);
    assert.equal(r1.first && r1.first.type, 'error', `the patient's jti with another sub: ${JSON.stringify(r1)}`);
    assert.equal(r1.first.code, 'token_replayed');
    assert.equal(r1.close, 4401);
    const sameJtiClinician = await mint({ sid: t.sid, role: 'clinician', sub: `pat-${t.seq}`, name: 'Alex Other', extra: ['--jti', jti] });
    const r2 = await rawAuth(w.page, sameJtiClinician);
    assert.equal(r2.first && r2.first.code, 'token_replayed', `the patient's jti and sub as a clinician: ${JSON.stringify(r2)}`);
    const third = await mint({ sid: t.sid, role: 'patient', sub: `third-${t.seq}`, name: 'Alex Other' });
    const r3 = await rawAuth(w.page, third);
    assert.equal(r3.first && r3.first.type, 'welcome', JSON.stringify(r3));
    assert.equal(r3.first.state, 'waiting');
    assert.ok(![patId, otherId].includes(r3.first.participant), `a third person got ${r3.first.participant}`);
    assert.equal(await qrState(pat), 'in-call');
    assert.equal(await qrState(o.page), 'waiting');
});

test('a removed seat\'s link is refused (removed_by_clinician)', async () => {
    assert.ok(shared, 'needs the call of the previous test');
    const { t, doc, pat, patCtx, patId } = shared;
    shared = null;
    releaseKept();
    await click(doc, `remove-${patId}`);
    await waitVisible(doc, 'confirm');
    await click(doc, 'confirm-ok');
    await waitState(pat, 'ended', 5000);
    const again = await anotherTab(patCtx, 'patient (removed, reopened)');
    const s = await openAndJoin(again, q.link(t.patient));
    assert.equal(s, 'ended', `the removed seat's link: ${s}`);
    await waitFor('the ended code', async () => ((await endedCode(again)).text || '').includes('removed_by_clinician'), { timeout: 5000 })
        .catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await endedCode(again))}`); });
    await screenshot(again, 'visit-removed-link-refused');
    // Nothing reached the therapist: no waiting entry, no peer.
    await sleep(1000);
    assert.equal(await visible(doc, `admit-${patId}`), false);
    assert.equal(await doc.evaluate(() => window.quietroom.peerConnections.size), 0);
});

test('waiting room: the clinician\'s name and the wait; a message to one, then to all, stored nowhere; arrival sound; admit all', async () => {
    const t = await visitTokens('notify');
    const second = await mint({ sid: t.sid, role: 'patient', sub: `pat2-${t.seq}`, name: 'Alex Other' });
    const d = await person('therapist');
    const doc = d.page;
    assert.equal(await openAndJoin(doc, q.link(t.therapist)), 'in-call');
    const sounds = async () => (await doc.evaluate(() => window.quietroom.events)).filter((e) => e.includes('arrival-sound')).length;
    const sounds0 = await sounds();
    const p1 = (await person('patient 1')).page;
    const p2 = (await person('patient 2')).page;
    assert.equal(await openAndJoin(p1, q.link(t.patient)), 'waiting');
    const id1 = await p1.evaluate(() => window.quietroom.participant);
    await waitVisible(doc, `admit-${id1}`);
    await waitFor('an arrival sound for the first', async () => (await sounds()) >= sounds0 + 1, { timeout: 5000 });
    assert.equal(await openAndJoin(p2, q.link(second)), 'waiting');
    const id2 = await p2.evaluate(() => window.quietroom.participant);
    await waitVisible(doc, `admit-${id2}`);
    await waitFor('an arrival sound for the second', async () => (await sounds()) >= sounds0 + 2, { timeout: 5000 })
        .catch(async (e) => { throw new Error(`${e.message}\n    ${await eventsOf(doc)}`); });

    // The patient sees who they wait for, and for how long.
    for (const p of [p1, p2]) {
        await waitText(p, 'waiting-clinician', /Dr\. Rivera/);
        await waitText(p, 'waiting-time', /\d|less than|minute/i);
        assert.equal(await visible(p, 'waiting-notice'), false, 'a notice before any was sent');
    }
    assert.ok(await visible(doc, `waited-${id1}`), 'the therapist sees how long the first has waited');

    // A message to the first only.
    const nonce = `${process.pid}${Date.now()}`.slice(-9);
    const one = `Running 5 minutes late, sorry (${nonce}a)`;
    const all = `Thank you for waiting (${nonce}b)`;
    await doc.fill('[data-testid="notify-text"]', one);
    await doc.selectOption('[data-testid="notify-target"]', id1);
    await click(doc, 'notify-send');
    await waitText(p1, 'waiting-notice', new RegExp(one.replace(/[()]/g, '\\$&')));
    assert.ok(await neverShows(p2, 'waiting-notice', /./, 2000), 'the message for one reached the other');
    assert.ok(!p2.qrSockets.flatMap((s) => s.received).some((m) => JSON.stringify(m).includes(`${nonce}a`)), 'the other\'s page received it');
    await screenshot(p1, 'visit-waiting-notice');

    // Then to everyone waiting.
    await doc.fill('[data-testid="notify-text"]', all);
    await doc.selectOption('[data-testid="notify-target"]', '');
    await click(doc, 'notify-send');
    for (const p of [p1, p2]) await waitText(p, 'waiting-notice', new RegExp(all.replace(/[()]/g, '\\$&')));
    const notified = doc.qrSockets.flatMap((s) => s.received).filter((m) => m.type === 'notified').map((m) => m.count);
    assert.deepEqual(notified, [1, 2], 'notified counts');
    await screenshot(doc, 'visit-clinician-notify');

    // Shown, not stored: not in signaling's log, its audit log or /metrics.
    await sleep(500);
    const audit = await signalAuditText(q);
    const where = { 'signaling log': await signalLogText(q), 'audit log': audit, '/metrics': await metricsText(opsBase, OPS_TOKEN) };
    for (const [name, body] of Object.entries(where)) {
        assert.ok(body.length > 0, `${name} is empty: the check would prove nothing`);
        for (const s of [nonce, 'Running 5 minutes late', 'Thank you for waiting']) assert.ok(!body.includes(s), `the message text in the ${name}`);
    }
    // The audit log records that messages were sent (not what they said).
    const recs = audit.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => JSON.stringify(r).includes(t.sid));
    assert.ok(recs.filter((r) => /notif|notice|message/i.test(r.type || r.event || '')).length >= 2,
        `no audit record of the two messages: types ${[...new Set(recs.map((r) => r.type || r.event))].join(', ')}`);

    // Admit all.
    await click(doc, 'admit-all');
    await waitState(p1, 'in-call');
    await waitState(p2, 'in-call');
    await assertMediaFlowing(doc, { timeout: 25000 });
    await waitFor('the therapist to receive from both', async () => Object.keys((await mediaStats(doc)).peers).length === 2, { timeout: 10000 });
    for (const p of [p1, p2]) await assertMediaFlowing(p, { timeout: 25000 });
});

test('audio-only stops the outgoing video and keeps the audio; camera back brings the video back', async () => {
    shared = await startVisit('audioonly', { keep: true });
    const { doc, pat } = shared;
    await click(pat, 'audio-only');
    await waitFor('audio-only on', () => pat.evaluate(() => window.quietroom.audioOnly === true &&
        document.querySelector('[data-testid="audio-only"]').getAttribute('aria-pressed') === 'true'), { timeout: 5000 });
    const { a, b, db } = await audioOnlyWindow(pat, doc);
    assert.ok(b.audioPacketsSent > a.audioPacketsSent, 'the patient stopped sending audio');
    await screenshot(pat, 'visit-audio-only');
    // One click brings the camera back.
    await click(pat, 'camera-back');
    await waitFor('audio-only off', () => pat.evaluate(() => window.quietroom.audioOnly === false), { timeout: 5000 });
    await waitFor('the therapist to decode the patient\'s video again', async () => (await sendStats(doc)).framesDecoded > db.framesDecoded + 10, { timeout: 10000 });
    const c = await sendStats(pat);
    await sleep(1500);
    assert.ok((await sendStats(pat)).videoBytesSent > c.videoBytesSent, 'the patient sends video again');
    await assertMediaFlowing(doc);
});

test('mute survives a reload: the microphone is still muted and the page says so', async () => {
    assert.ok(shared, 'needs the call of the previous test');
    const { doc, pat } = shared;
    shared = null;
    releaseKept();
    await click(pat, 'toggle-mic');
    await waitFor('the microphone muted', async () => (await localAudio(pat)).every((x) => x.enabled === false) &&
        (await pat.evaluate(() => document.querySelector('[data-testid="toggle-mic"]').getAttribute('aria-pressed'))) === 'true');
    await pat.reload();
    await waitState(pat, 'in-call', 20000);
    await waitFor('the local microphone track back', async () => (await localAudio(pat)).length === 1, { timeout: 10000 });
    assert.deepEqual((await localAudio(pat)).map((x) => x.enabled), [false], 'the microphone came back unmuted');
    assert.equal(await pat.evaluate(() => document.querySelector('[data-testid="toggle-mic"]').getAttribute('aria-pressed')), 'true');
    await waitText(pat, 'restored-state', /microphone is still muted/i);
    await assertMediaFlowing(pat, { timeout: 25000 });
    const s = await sendStats(pat);
    for (const snd of s.audioSenders) assert.ok(snd === null || snd.enabled === false, `an audio sender with a live track: ${JSON.stringify(s.audioSenders)}`);
    await screenshot(pat, 'visit-mute-restored');
    // And it can be unmuted.
    await click(pat, 'toggle-mic');
    await waitFor('the microphone on', async () => (await localAudio(pat)).every((x) => x.enabled === true), { timeout: 3000 });
    assert.equal(await qrState(doc), 'in-call');
});
