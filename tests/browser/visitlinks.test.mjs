// Issue 18 in Chromium (therapist + patient) against the real relay and
// signaling on loopback: reusable visit links. The same link reopened after
// closing the tab (within the resume grace: back in the call; after it: the
// waiting room), the therapist's mistaken Leave (confirmation, the patient told, the link
// brings them back), another person's token (a seat of its own; WebSocket
// level too), a removed seat's link refused. Two tabs with one link, the
// waiting room, audio-only and mute across a reload are in
// visitlinks-room.test.mjs (node --test gives each file 240 s). Contracts:
// docs/protocol.md and the page's test contract (data-testid,
// window.quietroom); the frame (servers, hooks, wire and console checks) is
// lib/visitsuite.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, waitFor } from './lib/servers.mjs';
import { screenshot, waitState, waitVisible, visible, text, click, assertMediaFlowing, qrState } from './lib/browsers.mjs';
import { openAndJoin, endedCode, eventsOf, waitText, localAudio } from './lib/visits.mjs';
import { visitSuite, welcomes } from './lib/visitsuite.mjs';

/* Short, so that "past the grace" takes seconds; long enough for a closed
 * tab to be reopened and joined on a busy 2-core machine (10 s seen under
 * a load of 25). */
const s = visitSuite({ label: 'visitlinks', grace: 20 });

/* The therapist's page was told that this participant came back with their
 * link (a lobby entry or a peer_status with rejoined: true). */
function therapistToldRejoined(doc, id) {
    return doc.qrSockets.flatMap((x) => x.received).some((m) =>
        (m.type === 'lobby' && [...(m.waiting || []), ...(m.present || [])].some((e) => e.participant === id && e.rejoined === true)) ||
        (m.type === 'peer_status' && m.participant === id && m.rejoined === true));
}

test('rejoin: the same link reopened after closing the tab is back in the call within the grace (still muted), in the waiting room after it', async () => {
    const { t, doc, pat, patCtx, patId } = await s.startVisit('rejoin', { shots: true });
    let admits = doc.qrSockets.flatMap((x) => x.sent).filter((m) => m.type === 'admit').length;
    assert.equal(admits, 1);

    // 1. The patient mutes, the tab closes by accident, the same email link
    // opens it again at once.
    await click(pat, 'toggle-mic');
    await waitFor('the microphone muted', async () => (await localAudio(pat)).every((x) => x.enabled === false));
    const docSeen = doc.qrSockets.map((x) => x.received.length);
    const docSent = doc.qrSockets.map((x) => x.sent.length);
    await pat.close();
    const closedAt = Date.now();
    const pat2 = await s.anotherTab(patCtx, 'patient (reopened)');
    const s2 = await openAndJoin(pat2, s.q.link(t.patient));
    const reopenedIn = Date.now() - closedAt;
    s.step(`reopened within the grace: ${s2} after ${reopenedIn} ms`);
    assert.ok(reopenedIn < s.grace * 1000, `reopening took ${reopenedIn} ms, over the ${s.grace} s grace: the test cannot tell`);
    assert.equal(s2, 'in-call', `reopened within the grace: ${s2} (${await endedCode(pat2).then(JSON.stringify)})\n    ${await eventsOf(pat2)}`);
    // Told so ("You are back in the visit.", shown 8 s).
    await waitText(pat2, 'rejoined-notice', /back in the visit/i, 5000);
    assert.ok((await pat2.evaluate(() => window.quietroom.events)).some((e) => / rejoined$/.test(e)), 'no rejoined event');
    const w2 = welcomes(pat2);
    assert.equal(w2.length, 1, 'one welcome on the reopened tab');
    assert.equal(w2[0].participant, patId, 'the same seat (participant id)');
    assert.equal(w2[0].rejoined, true, 'welcome says rejoined');
    assert.equal(w2[0].state, 'admitted', 'admitted without readmission');
    // Still muted after the rejoin, and told so.
    await waitFor('the local microphone track', async () => (await localAudio(pat2)).length === 1, { timeout: 10000 });
    assert.deepEqual((await localAudio(pat2)).map((x) => x.enabled), [false], 'the microphone came back unmuted after the rejoin');
    await waitText(pat2, 'restored-state', /microphone is still muted/i);
    try {
        await assertMediaFlowing(pat2, { timeout: 25000 });
        await assertMediaFlowing(doc, { timeout: 25000 });
    } catch (e) {
        // What the therapist's page was told and said since the tab closed.
        const brief = (m) => `${m.type}${m.from ? ` from ${m.from}` : ''}${m.to ? ` to ${m.to}` : ''}` +
            `${m.participant ? ` ${m.participant}` : ''}${m.initiator !== undefined ? ` initiator=${m.initiator}` : ''}` +
            `${m.code ? ` ${m.code}` : ''}${m.connected !== undefined ? ` connected=${m.connected}` : ''}`;
        const got = doc.qrSockets.flatMap((x, i) => x.received.slice(docSeen[i] || 0)).map(brief);
        const said = doc.qrSockets.flatMap((x, i) => x.sent.slice(docSent[i] || 0)).map(brief);
        e.message += `\n  the therapist since the close: got ${got.join(', ')}; sent ${said.join(', ')}\n  therapist ${await eventsOf(doc)}`;
        throw e;
    }
    admits = doc.qrSockets.flatMap((x) => x.sent).filter((m) => m.type === 'admit').length;
    assert.equal(admits, 1, 'the therapist admitted again');
    await waitFor('the therapist to be told the patient rejoined', () => therapistToldRejoined(doc, patId), { timeout: 5000 });
    await waitVisible(doc, `rejoined-${patId}`, 5000);
    assert.equal(await doc.evaluate(() => window.quietroom.peerConnections.size), 1, 'the therapist has one peer connection');
    await screenshot(pat2, 'visit-rejoined-in-call-patient');
    await screenshot(doc, 'visit-rejoined-in-call-therapist');

    // 2. Closed again, and reopened only after the grace: the waiting room.
    s.step('rejoined: media both ways');
    await pat2.close();
    await sleep(s.grace * 1000 + 3000);
    const pat3 = await s.anotherTab(patCtx, 'patient (after the grace)');
    const s3 = await openAndJoin(pat3, s.q.link(t.patient));
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
    // The audit log records both rejoins, of this seat.
    const rejoins = await waitFor('two participant.rejoined records', async () => {
        const r = (await s.auditOf(t.sid)).filter((x) => x.type === 'participant.rejoined');
        return r.length >= 2 && r;
    }, { timeout: 5000 }).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify((await s.auditOf(t.sid)).map((x) => x.type))}`); });
    assert.equal(rejoins.length, 2);
    for (const r of rejoins) assert.equal(r.detail.participant, patId);
});

/* A call that the next test goes on with (its contexts kept). */
let shared = null;

test('Leave asks first (cancel keeps the call); the patient is told the clinician left; the therapist\'s link brings them back', async () => {
    const v = await s.startVisit('leave', { keep: true });
    const { t, doc, docCtx, pat, docId } = v;
    // Leave looks unlike End (End is red, Leave is not).
    const colours = await doc.evaluate(() => {
        const bg = (id) => getComputedStyle(document.querySelector(`[data-testid="${id}"]`)).backgroundColor;
        return { leave: bg('leave'), end: bg('end-session') };
    });
    assert.notEqual(colours.leave, colours.end, `Leave and End look alike: ${JSON.stringify(colours)}`);

    await click(doc, 'leave');
    await waitVisible(doc, 'confirm');
    // The dialog's button says Leave and is not End's red.
    assert.match(await text(doc, 'confirm-ok'), /^Leave$/);
    const okColour = await doc.evaluate(() => getComputedStyle(document.querySelector('[data-testid="confirm-ok"]')).backgroundColor);
    assert.notEqual(okColour, colours.end, 'the Leave confirmation is as red as End');
    await screenshot(doc, 'visit-leave-confirm');
    await click(doc, 'confirm-cancel');
    await waitFor('the dialog to close', async () => !(await visible(doc, 'confirm')), { timeout: 3000 });
    await sleep(1000);
    assert.equal(await qrState(doc), 'in-call', 'cancel left the call');
    assert.equal(await qrState(pat), 'in-call');
    assert.ok(!doc.qrSockets.flatMap((x) => x.sent).some((m) => m.type === 'leave'), 'cancel sent leave');
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
    const doc2 = await s.anotherTab(docCtx, 'therapist (reopened)');
    const st = await openAndJoin(doc2, s.q.link(t.therapist));
    assert.equal(st, 'in-call', `the therapist's link after Leave: ${st} (${await endedCode(doc2).then(JSON.stringify)})`);
    const w = welcomes(doc2)[0];
    assert.equal(w.participant, docId, 'the therapist\'s own seat');
    assert.equal(w.rejoined, true);
    await assertMediaFlowing(doc2, { timeout: 25000 });
    await assertMediaFlowing(pat, { timeout: 25000 });
    await waitFor('the clinician-left notice to go', async () => !(await visible(pat, 'clinician-left')), { timeout: 5000 });
    // The next test goes on with this call (the therapist's new tab).
    shared = { ...v, doc: doc2 };
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

test('another person\'s token for the same visit gets a seat of its own in the waiting room, never the first person\'s', async () => {
    // The call the previous test left (or a new one if it failed).
    if (!shared) {
        s.releaseKept();
        shared = await s.startVisit('other', { keep: true });
    }
    const { t, doc, pat, patId } = shared;
    const other = await s.mint({ sid: t.sid, role: 'patient', sub: `other-${t.seq}`, name: 'Alex Other' });
    const o = await s.person('other person');
    const st = await openAndJoin(o.page, s.q.link(other));
    assert.equal(st, 'waiting', `the other person: ${st}`);
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
    const sameJti = await s.mint({ sid: t.sid, role: 'patient', sub: `thief-${t.seq}`, name: 'Alex Other', extra: ['--jti', jti] });
    const w = await s.person('websocket');
    await w.page.goto(`${s.q.base}/`);
    const r1 = await rawAuth(w.page, sameJti);
    assert.equal(r1.first && r1.first.type, 'error', `the patient's jti with another sub: ${JSON.stringify(r1)}`);
    assert.equal(r1.first.code, 'token_replayed');
    assert.equal(r1.close, 4401);
    const sameJtiClinician = await s.mint({ sid: t.sid, role: 'clinician', sub: `pat-${t.seq}`, name: 'Alex Other', extra: ['--jti', jti] });
    const r2 = await rawAuth(w.page, sameJtiClinician);
    assert.equal(r2.first && r2.first.code, 'token_replayed', `the patient's jti and sub as a clinician: ${JSON.stringify(r2)}`);
    const third = await s.mint({ sid: t.sid, role: 'patient', sub: `third-${t.seq}`, name: 'Alex Other' });
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
    s.releaseKept();
    await click(doc, `remove-${patId}`);
    await waitVisible(doc, 'confirm');
    await click(doc, 'confirm-ok');
    await waitState(pat, 'ended', 5000);
    const again = await s.anotherTab(patCtx, 'patient (removed, reopened)');
    const st = await openAndJoin(again, s.q.link(t.patient));
    assert.equal(st, 'ended', `the removed seat's link: ${st}`);
    await waitFor('the ended code', async () => ((await endedCode(again)).text || '').includes('removed_by_clinician'), { timeout: 5000 })
        .catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await endedCode(again))}`); });
    await screenshot(again, 'visit-removed-link-refused');
    // Nothing reached the therapist: no waiting entry, no peer.
    await sleep(1000);
    assert.equal(await visible(doc, `admit-${patId}`), false);
    assert.equal(await doc.evaluate(() => window.quietroom.peerConnections.size), 0);
});

