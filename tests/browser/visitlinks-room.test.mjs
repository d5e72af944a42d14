// Issue 18 in Chromium (therapist + patients) against the real relay and
// signaling on loopback: two tabs with one link (the older is told it was
// replaced and does not come back), the waiting room that talks (the clinician's name
// and the wait, a message to one and then to all that is stored nowhere:
// not in signaling's log, its audit log or /metrics; the arrival sound;
// admit all), audio-only (getStats: no outgoing video, audio kept, the
// camera back with one click), mute kept across a reload, and a patient's Leave
// undone by their link within the grace. Reusable links
// are in visitlinks.test.mjs (node --test gives each file 240 s); the frame
// (servers, hooks, wire and console checks) is lib/visitsuite.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, waitFor } from './lib/servers.mjs';
import { screenshot, waitState, waitVisible, visible, text, click, clickControl, mediaStats, assertMediaFlowing, qrState } from './lib/browsers.mjs';
import {
    openAndJoin, endedCode, sendStats, localAudio, signalAuditText, signalLogText, metricsText, waitText, neverShows, eventsOf, audioOnlyWindow,
} from './lib/visits.mjs';
import { visitSuite, welcomes } from './lib/visitsuite.mjs';

const s = visitSuite({ label: 'visitroom', grace: 20 });
let shared = null;

test('two tabs with the same link: the newer takes the seat, the older is told it was replaced and does not come back', async () => {
    const { t, doc, pat, patCtx, patId } = await s.startVisit('tabs');
    const patB = await s.anotherTab(patCtx, 'patient (second tab)');
    const sB = await openAndJoin(patB, s.q.link(t.patient));
    assert.equal(sB, 'in-call', `the second tab: ${sB}\n    ${await eventsOf(patB)}`);
    assert.equal(welcomes(patB)[0].participant, patId, 'the second tab has the same seat');
    await waitState(pat, 'ended', 8000);
    const code = await endedCode(pat);
    assert.ok((code.text || '').includes('replaced'), `the older tab's ended-code: ${JSON.stringify(code)}`);
    assert.ok(pat.qrSockets.flatMap((x) => x.received).some((m) => m.type === 'replaced'), 'the older tab got `replaced`');
    assert.match(await text(pat, 'ended-message'), /opened in another tab or window/i);
    await screenshot(pat, 'visit-replaced-older-tab');
    // It stays ended and does not try to resume (its secret is void).
    const socketsThen = pat.qrSockets.length;
    await sleep(5000);
    assert.equal(await qrState(pat), 'ended');
    assert.equal(pat.qrSockets.length, socketsThen, 'the replaced tab opened another connection');
    assert.ok(!pat.qrSockets.flatMap((x) => x.sent).some((m) => m.type === 'resume'), 'the replaced tab tried to resume');
    // The newer tab has the call; the therapist one peer, media both ways.
    await assertMediaFlowing(patB, { timeout: 25000 });
    await assertMediaFlowing(doc, { timeout: 25000 });
    assert.equal(await doc.evaluate(() => window.quietroom.peerConnections.size), 1);
    assert.equal(await qrState(patB), 'in-call');
});

test('waiting room: the clinician\'s name and the wait; a message to one, then to all, stored nowhere; arrival sound; admit all', async () => {
    const t = await s.visitTokens('notify');
    const second = await s.mint({ sid: t.sid, role: 'patient', sub: `pat2-${t.seq}`, name: 'Alex Other' });
    const d = await s.person('therapist');
    const doc = d.page;
    assert.equal(await openAndJoin(doc, s.q.link(t.therapist)), 'in-call');
    const sounds = async () => (await doc.evaluate(() => window.quietroom.events)).filter((e) => e.includes('arrival-sound')).length;
    const sounds0 = await sounds();
    const p1 = (await s.person('patient 1')).page;
    const p2 = (await s.person('patient 2')).page;
    assert.equal(await openAndJoin(p1, s.q.link(t.patient)), 'waiting');
    const id1 = await p1.evaluate(() => window.quietroom.participant);
    await waitVisible(doc, `admit-${id1}`);
    await waitFor('an arrival sound for the first', async () => (await sounds()) >= sounds0 + 1, { timeout: 5000 });
    assert.equal(await openAndJoin(p2, s.q.link(second)), 'waiting');
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
    assert.ok(!p2.qrSockets.flatMap((x) => x.received).some((m) => JSON.stringify(m).includes(`${nonce}a`)), 'the other\'s page received it');
    await screenshot(p1, 'visit-waiting-notice');

    // Then to everyone waiting.
    await doc.fill('[data-testid="notify-text"]', all);
    await doc.selectOption('[data-testid="notify-target"]', '');
    await click(doc, 'notify-send');
    for (const p of [p1, p2]) await waitText(p, 'waiting-notice', new RegExp(all.replace(/[()]/g, '\\$&')));
    const notified = doc.qrSockets.flatMap((x) => x.received).filter((m) => m.type === 'notified').map((m) => m.count);
    assert.deepEqual(notified, [1, 2], 'notified counts');
    await screenshot(doc, 'visit-clinician-notify');

    // Shown, not stored: not in signaling's log, its audit log or /metrics.
    await sleep(500);
    const audit = await signalAuditText(s.q);
    const where = { 'signaling log': await signalLogText(s.q), 'audit log': audit, '/metrics': await metricsText(s.opsBase, s.opsToken) };
    for (const [name, body] of Object.entries(where)) {
        assert.ok(body.length > 0, `${name} is empty: the check would prove nothing`);
        for (const x of [nonce, 'Running 5 minutes late', 'Thank you for waiting']) assert.ok(!body.includes(x), `the message text in the ${name}`);
    }
    // The audit log records that messages were sent (not what they said).
    const notices = (await s.auditOf(t.sid)).filter((r) => r.type === 'session.notice');
    assert.equal(notices.length, 2, `session.notice records: ${JSON.stringify(notices)}`);

    // Admit all.
    await click(doc, 'admit-all');
    await waitState(p1, 'in-call');
    await waitState(p2, 'in-call');
    await assertMediaFlowing(doc, { timeout: 25000 });
    await waitFor('the therapist to receive from both', async () => Object.keys((await mediaStats(doc)).peers).length === 2, { timeout: 10000 });
    for (const p of [p1, p2]) await assertMediaFlowing(p, { timeout: 25000 });
});

test('audio-only stops the outgoing video and keeps the audio; camera back brings the video back', async () => {
    shared = await s.startVisit('audioonly', { keep: true });
    const { doc, pat } = shared;
    await clickControl(pat, 'audio-only');
    await waitFor('audio-only on', () => pat.evaluate(() => window.quietroom.audioOnly === true &&
        document.querySelector('[data-testid="audio-only"]').getAttribute('aria-pressed') === 'true'), { timeout: 5000 });
    const { a, b, db } = await audioOnlyWindow(pat, doc);
    assert.ok(b.audioPacketsSent > a.audioPacketsSent, 'the patient stopped sending audio');
    await screenshot(pat, 'visit-audio-only');
    // One click brings the camera back.
    await clickControl(pat, 'camera-back');
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
    const st = await sendStats(pat);
    for (const snd of st.audioSenders) assert.ok(snd === null || snd.enabled === false, `an audio sender with a live track: ${JSON.stringify(st.audioSenders)}`);
    await screenshot(pat, 'visit-mute-restored');
    // And it can be unmuted.
    await click(pat, 'toggle-mic');
    await waitFor('the microphone on', async () => (await localAudio(pat)).every((x) => x.enabled === true), { timeout: 3000 });
    assert.equal(await qrState(doc), 'in-call');
});

test('a patient who presses Leave (and confirms) and opens the link again within the grace is back in the call without readmission', async () => {
    assert.ok(shared, 'needs the call of the previous test');
    const { t, doc, pat, patCtx, patId } = shared;
    shared = null;
    s.releaseKept();
    await click(pat, 'leave');
    await waitVisible(pat, 'confirm');
    await click(pat, 'confirm-ok');
    await waitState(pat, 'ended', 5000);
    assert.ok(pat.qrSockets.flatMap((x) => x.sent).some((m) => m.type === 'leave'), 'the page did not send leave');
    const leftAt = Date.now();
    const again = await s.anotherTab(patCtx, 'patient (after Leave)');
    const st = await openAndJoin(again, s.q.link(t.patient));
    const took = Date.now() - leftAt;
    assert.ok(took < s.grace * 1000, `reopening took ${took} ms, over the ${s.grace} s grace: the test cannot tell`);
    assert.equal(st, 'in-call', `reopened ${took} ms after Leave: ${st}\n    ${await eventsOf(again)}`);
    const w = welcomes(again)[0];
    assert.equal(w.participant, patId);
    assert.equal(w.rejoined, true);
    assert.equal(w.state, 'admitted');
    assert.equal(doc.qrSockets.flatMap((x) => x.sent).filter((m) => m.type === 'admit').length, 1, 'admitted again');
    await assertMediaFlowing(again, { timeout: 25000 });
    await assertMediaFlowing(doc, { timeout: 25000 });
});
