// Issue 14, in the call, Chromium (therapist + patients) against the real
// relay and signaling on loopback (lib/visitsuite.mjs):
// - the other side shows mute, camera off, sharing and a cut network within
//   1 s (timed from the action to the attribute change on the other page,
//   a MutationObserver there); camera off hides the video (no frozen frame)
//   and shows the avatar;
// - screen share (Chromium's fake capture: a 1280x720 "screen" against the
//   640x480 fake camera) decoded by the patient: frames rising in getStats
//   and the received frames 16:9, then 4:3 again once it stops (the camera
//   back on the sender's video sender);
// - chat both ways over the data channel; HTML and a javascript: link shown
//   as text and run nothing, an https: link is a link; a marker in every
//   chat text is in no signaling message (the recorded wire), no daemon log
//   and no audit record;
// - 3-way: share decoded by both patients, chat reaches both, the active
//   speaker, and a person who leaves leaves no tile behind (within 1 s).
// A cut network: nftables (root namespace) drops the UDP 5-tuple of the
// patient's selected candidate pair both ways, so media, data channel and
// heartbeats really stop; the patient's signaling WebSocket stays up. Each
// way is dropped where every packet of it passes with either relay path:
// the patient's sends in the output hook (the kernel path's program takes
// them later, at lo's TC ingress), what the patient receives in the input
// hook (the program's packets skip the relay's output hook, sent out below
// netfilter, but are received on lo like the sockets' packets).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { waitFor, sleep } from './lib/servers.mjs';
import { screenshot, waitState, waitVisible, click, assertMediaFlowing, text } from './lib/browsers.mjs';
import { openAndJoin, signalAuditText, signalLogText, relayLogText, metricsText, eventsOf } from './lib/visits.mjs';
import { visitSuite } from './lib/visitsuite.mjs';
import {
    msUntilShown, watchTile, clickTimed, shareTimed, tileAttrs, tileIds, waitDecoding, sendChat, openChat, chatMessages, waitChat, inboundVideo, responsiveness,
} from './lib/incall.mjs';

const run = promisify(execFile);
const MARKER = `qrchat${process.pid}x${Math.random().toString(36).slice(2, 10)}`;
const WITHIN = 1000;
let s = null;

// Registered before the suite's own hooks: runs while the daemons still run.
after(async () => {
    if (!s || !s.q) return;
    for (const [what, txt] of [['signaling log', await signalLogText(s.q)], ['relay log', await relayLogText(s.q)],
        ['signaling audit log', await signalAuditText(s.q)], ['relay audit log', JSON.stringify(await s.q.relayAudit().catch(() => []))],
        ['/metrics', await metricsText(s.opsBase, s.opsToken)]]) {
        assert.ok(!String(txt).includes(MARKER), `chat text in the ${what}`);
    }
});
s = visitSuite({ label: 'incall', grace: 20, fakeCamera: true });

/* Nothing of the chat went through signaling: no chat-like message type,
 * and the marker in no message either way, on every socket of the page. */
function assertNoChatOnWire(page) {
    for (const sock of page.qrSockets) {
        for (const m of [...sock.sent, ...sock.received]) {
            const j = JSON.stringify(m);
            assert.ok(!j.includes(MARKER), `${page.qrName}: chat text in a signaling ${m.type} message`);
            assert.ok(!/^(chat|message|text)$/.test(m.type), `${page.qrName}: a ${m.type} message on the signaling socket`);
        }
    }
}

async function pressed(page, testid) {
    return page.evaluate((id) => document.querySelector(`[data-testid="${id}"]`).getAttribute('aria-pressed'), testid);
}

async function quietroomOpen(page, pid) {
    return waitFor(`${page.qrName}: data channel to ${pid} open`, () => page.evaluate((p) => {
        const c = window.quietroom.channels && window.quietroom.channels.get(p);
        return !!c && c.state === 'open';
    }, pid), { timeout: 10000 });
}

/* The patient's selected UDP candidate pair to the relay: its local port. */
async function selectedLocalPort(page, pid) {
    return page.evaluate(async (p) => {
        const pc = window.quietroom.peerConnections.get(p);
        const r = await pc.getStats();
        let pair = null;
        r.forEach((x) => { if (x.type === 'transport' && x.selectedCandidatePairId) pair = r.get(x.selectedCandidatePairId); });
        if (!pair) r.forEach((x) => { if (x.type === 'candidate-pair' && x.nominated && x.state === 'succeeded') pair = x; });
        const local = pair && r.get(pair.localCandidateId);
        return local ? { port: local.port, protocol: local.protocol } : null;
    }, pid);
}

/* nft -f - with the given rules. */
function nft(input) {
    return new Promise((resolve, reject) => {
        const c = execFile('nft', ['-f', '-'], { timeout: 5000 }, (e, out, err) => (e ? reject(new Error(`nft: ${err || e.message}`)) : resolve(out)));
        c.stdin.end(input);
    });
}

// The tests below share one call (1:1, then 3-way): node:test runs the
// suite's afterEach after subtests too, so each step is a test of its own
// and the call's browser profiles are kept (visitSuite keep) until its last.
let one = null;
let three = null;
const oneCall = () => { assert.ok(one, 'no 1:1 call (its first test failed)'); return one; };
const threeCall = () => { assert.ok(three, 'no 3-way call (its first test failed)'); return three; };

test('1:1: in the call, each tile carries the peer state; the data channel is open both ways', async () => {
    const v = await s.startVisit('incall-1to1', { keep: true });
    const { doc, pat, docId, patId } = v;
    one = v;
    await quietroomOpen(doc, patId);
    await quietroomOpen(pat, docId);
    {
        const a = await tileAttrs(pat, docId);
        assert.ok(a, `no remote-tile[data-participant=${docId}] on the patient's page: ${JSON.stringify(await tileIds(pat))}`);
        assert.deepEqual([a.mic, a.cam, a.sharing, a.interrupted], ['on', 'on', 'false', 'false'], JSON.stringify(a));
        assert.ok(a.videoShown && !a.avatarShown && !a.mutedShown, JSON.stringify(a));
        assert.match(a.name, /^Dr\. Rivera\b/);
        await waitDecoding(pat, docId, 'camera');
    }
});

test('1:1: ' + 'mute shows within 1 s, with a visible "Muted" badge; unmute too', async () => {
    const { doc, pat, docId, patId } = oneCall();
    {
        const ms = await msUntilShown(pat, docId, 'data-mic', 'off', () => clickTimed(doc, 'toggle-mic'));
        const a = await tileAttrs(pat, docId);
        assert.ok(ms <= WITHIN, `the patient saw the therapist's mute after ${ms} ms`);
        assert.ok(a.mutedShown && /muted/i.test(a.muted), `the Muted badge: ${JSON.stringify(a)}`);
        assert.equal(await pressed(doc, 'toggle-mic'), 'true');
        await screenshot(pat, 'incall-remote-muted');
        const back = await msUntilShown(pat, docId, 'data-mic', 'on', () => clickTimed(doc, 'toggle-mic'));
        assert.ok(back <= WITHIN, `unmute shown after ${back} ms`);
        assert.equal((await tileAttrs(pat, docId)).mutedShown, false);
        process.stderr.write(`  mute shown after ${ms} ms, unmute after ${back} ms\n`);
    }
});

test('1:1: ' + 'camera off shows within 1 s: the video hidden (no frozen frame), the avatar shown; camera on brings live video back', async () => {
    const { doc, pat, docId, patId } = oneCall();
    try {
        // Every 50 ms from the click on: when the tile says cam off, its video is hidden in the same sample.
        await pat.evaluate((p) => {
            window.__camSamples = [];
            window.__camTimer = setInterval(() => {
                const el = document.querySelector(`[data-testid="remote-tile"][data-participant="${CSS.escape(p)}"]`);
                const v = el && el.querySelector('[data-testid="remote-video"]');
                window.__camSamples.push({ cam: el && el.dataset.cam, shown: !!v && !v.closest('[hidden]') && v.getClientRects().length > 0 });
            }, 50);
        }, docId);
        const ms = await msUntilShown(pat, docId, 'data-cam', 'off', () => clickTimed(doc, 'toggle-cam'));
        await sleep(600);
        const samples = await pat.evaluate(() => { clearInterval(window.__camTimer); return window.__camSamples; });
        const a = await tileAttrs(pat, docId);
        assert.ok(ms <= WITHIN, `the patient saw the camera off after ${ms} ms`);
        assert.equal(a.videoShown, false, `the remote video is still shown with the camera off (a frozen frame): ${JSON.stringify(a)}`);
        assert.ok(a.avatarShown, `no avatar: ${JSON.stringify(a)}`);
        // Initials of "Dr. Rivera" (a title may be left out): 1-3 letters, each a word's first.
        assert.match(a.avatar || '', /^(D\.? ?)?R$/i, `the avatar shows "${a.avatar}", not the initials of Dr. Rivera`);
        const frozen = samples.filter((x) => x.cam === 'off' && x.shown);
        assert.equal(frozen.length, 0, `${frozen.length} samples (50 ms apart) with cam off and the video still shown`);
        await screenshot(pat, 'incall-remote-camera-off');
        const back = await msUntilShown(pat, docId, 'data-cam', 'on', () => clickTimed(doc, 'toggle-cam'));
        assert.ok(back <= WITHIN, `camera on shown after ${back} ms`);
        const { video } = await waitDecoding(pat, docId, 'camera');
        const t1 = video.videoTime;
        await waitFor('the remote video playing again', async () => (await tileAttrs(pat, docId)).videoTime > t1 + 0.3, { timeout: 5000 });
        assert.equal((await tileAttrs(pat, docId)).avatarShown, false);
        process.stderr.write(`  camera off shown after ${ms} ms, on after ${back} ms\n`);
    } finally {
        // The next tests need the camera on, whatever failed here.
        if ((await tileAttrs(pat, docId).catch(() => null))?.cam === 'off') await doc.click('[data-testid="toggle-cam"]').catch(() => {});
    }
});

test('1:1: ' + 'screen share: shown within 1 s, the 16:9 screen decoded by the patient; stop-share puts the camera back', async () => {
    const { doc, pat, docId, patId } = oneCall();
    try {
        const before = await inboundVideo(pat, docId);
        // From the moment the screen was picked (getDisplayMedia resolved).
        const ms = await msUntilShown(pat, docId, 'data-sharing', 'true', () => shareTimed(doc));
        const pickMs = shareTimed.last.picked - shareTimed.last.clickAt;
        assert.ok(ms <= WITHIN, `the patient saw the share after ${ms} ms`);
        const { a, b } = await waitDecoding(pat, docId, 'screen');
        assert.ok(b.framesDecoded > before.framesDecoded, 'no new frames decoded');
        await waitVisible(doc, 'sharing-banner', 5000);
        assert.equal(await pressed(doc, 'share'), 'true');
        assert.equal(await doc.evaluate(() => window.quietroom.sharing), true);
        assert.equal(await pat.evaluate(() => document.querySelector('[data-testid="stage"]').dataset.layout), 'share');
        // The therapist's video sender carries the screen now (replaceTrack), with contentHint detail.
        const senders = await doc.evaluate((p) => window.quietroom.peerConnections.get(p).getSenders()
            .filter((x) => x.track && x.track.kind === 'video').map((x) => ({ label: x.track.label, hint: x.track.contentHint })), patId);
        assert.equal(senders.length, 1, JSON.stringify(senders));
        assert.match(senders[0].label, /^screen:/, JSON.stringify(senders));
        assert.equal(senders[0].hint, 'detail');
        await screenshot(doc, 'incall-sharing-therapist');
        await screenshot(pat, 'incall-sharing-patient');
        const stop = await msUntilShown(pat, docId, 'data-sharing', 'false', () => clickTimed(doc, 'stop-share'));
        assert.ok(stop <= WITHIN, `the end of the share shown after ${stop} ms`);
        await waitDecoding(pat, docId, 'camera');
        const after = await doc.evaluate((p) => window.quietroom.peerConnections.get(p).getSenders()
            .filter((x) => x.track && x.track.kind === 'video').map((x) => x.track.label), patId);
        assert.ok(after.length === 1 && !/^screen:/.test(after[0]), `the camera is not back on the sender: ${JSON.stringify(after)}`);
        assert.equal(await doc.evaluate(() => window.quietroom.sharing), false);
        assert.equal(await pat.evaluate(() => document.querySelector('[data-testid="stage"]').dataset.layout), 'grid');
        process.stderr.write(`  share shown ${ms} ms after the screen was picked (${pickMs} ms after the click; frames ${a.frameWidth}x${a.frameHeight}), stop after ${stop} ms\n`);
    } finally {
        if (await doc.evaluate(() => window.quietroom.sharing).catch(() => false)) {
            await doc.click('[data-testid="stop-share"]').catch(() => doc.click('[data-testid="share"]')).catch(() => {});
        }
    }
});

test('1:1: ' + 'chat both ways; the unread badge; HTML and javascript: shown as text, running nothing; https: a safe link', async () => {
    const { doc, pat, docId, patId } = oneCall();
    {
        await openChat(doc);
        assert.match(await text(doc, 'chat-privacy'), /not saved anywhere/i);
        const hello = `Hello from the clinician ${MARKER}`;
        await sendChat(doc, hello);
        await waitVisible(pat, 'chat-unread', 3000);
        assert.equal(await text(pat, 'chat-unread'), '1');
        // The button is read as "Chat 1 unread", not "Chat 1".
        assert.match(await pat.evaluate(() => document.getElementById('btn-chat').textContent.replace(/\s+/g, ' ').trim()), /^Chat 1 unread$/);
        await openChat(pat);
        const got = await waitChat(pat, hello);
        assert.deepEqual([got.from, got.text.trim()], [docId, hello]);
        assert.match(got.author, /^Dr\. Rivera\b/);
        const mine = await waitChat(doc, hello);
        assert.equal(mine.from, 'me');
        const xss = `<img src=x onerror="window.__pwned=1"> ${MARKER}`;
        const js = `javascript:window.__pwned=2 ${MARKER}`;
        const link = `see https://example.org/qr?a=1 ${MARKER}`;
        for (const m of [xss, js, link]) await sendChat(pat, m);
        for (const m of [xss, js, link]) {
            const r = await waitChat(doc, m.slice(0, 30));
            assert.equal(r.from, patId);
            assert.match(r.author, /^Sam Patient\b/);
            assert.equal(r.text.trim(), m, 'the text as sent, character for character');
        }
        await sleep(300);
        for (const page of [doc, pat]) {
            assert.equal(await page.evaluate(() => window.__pwned), undefined, `${page.qrName}: the chat ran script`);
            assert.equal(await page.evaluate(() => document.querySelectorAll('[data-testid="chat-log"] img, [data-testid="chat-log"] script').length), 0, `${page.qrName}: an <img> in the chat log`);
            const msgs = await chatMessages(page);
            const jsMsg = msgs.find((x) => x.text.includes('javascript:'));
            assert.deepEqual(jsMsg.links, [], `${page.qrName}: the javascript: text became a link`);
            assert.deepEqual(msgs.find((x) => x.text.includes('<img')).elements, [], `${page.qrName}: elements in the HTML message`);
            const l = msgs.find((x) => x.text.includes('https://example.org')).links;
            assert.equal(l.length, 1, `${page.qrName}: the https: URL is not a link`);
            assert.equal(l[0].href, 'https://example.org/qr?a=1');
            assert.equal(l[0].target, '_blank');
            assert.ok((l[0].rel || '').split(/\s+/).includes('noopener'), `rel="${l[0].rel}"`);
        }
        assert.equal(await pat.evaluate(() => window.quietroom.chatLog), undefined, 'quietroom.chatLog is exposed');
        await screenshot(doc, 'incall-chat-therapist');
        await screenshot(pat, 'incall-chat-patient');
        assertNoChatOnWire(doc);
        assertNoChatOnWire(pat);
    }
});

test('1:1: ' + 'the patient\'s network cut (nftables drops its UDP to and from the relay): interrupted within 1 s on the therapist\'s side; back when it returns', async () => {
    const { doc, pat, docId, patId } = oneCall();
    {
        const local = await selectedLocalPort(pat, docId);
        assert.ok(local && local.protocol === 'udp', `the patient's selected pair: ${JSON.stringify(local)}`);
        const table = `qrcut${process.pid}`;
        const rules = [
            `table inet ${table} {`,
            '    chain out {',
            '        type filter hook output priority filter; policy accept;',
            `        ip daddr ${s.q.mediaHost} udp sport ${local.port} udp dport ${s.q.mediaPort} counter drop`,
            '    }',
            '    chain in {',
            '        type filter hook input priority filter; policy accept;',
            `        ip saddr ${s.q.mediaHost} udp sport ${s.q.mediaPort} udp dport ${local.port} counter drop`,
            '    }',
            '}',
        ].join('\n');
        try {
            let started = 0;
            let returned = 0;
            // From when nft has put the rules in place (it returned), which
            // on a loaded machine can be well after it was started.
            const ms = await msUntilShown(doc, patId, 'data-interrupted', 'true', async () => {
                started = Date.now();
                await nft(`${rules}\n`);
                returned = Date.now();
                return returned;
            }, 5000);
            const a = await tileAttrs(doc, patId);
            const counters = (await run('nft', ['list', 'table', 'inet', table])).stdout.match(/packets \d+/g);
            assert.ok(counters.every((c) => Number(c.split(' ')[1]) > 0), `nftables dropped nothing one way: ${counters}`);
            assert.ok(ms <= WITHIN, `the therapist saw the interruption after ${ms} ms`);
            assert.ok(a.stateShown && /interrupted/i.test(a.state), `remote-state: ${JSON.stringify(a)}`);
            await screenshot(doc, 'incall-remote-interrupted');
            process.stderr.write(`  interruption shown ${ms} ms after nft returned (nft took ${returned - started} ms); dropped ${counters}\n`);
        } finally {
            await run('nft', ['delete', 'table', 'inet', table]).catch(() => {});
        }
        await waitFor('the patient no longer interrupted', async () => (await tileAttrs(doc, patId)).interrupted === 'false', { timeout: 15000 })
            .catch(async (e) => { throw new Error(`${e.message}\n    ${await eventsOf(doc)}`); });
        await assertMediaFlowing(doc);
    }
});

// The 1:1 call goes on as the 3-way call (a visit's start costs 30 s on a
// loaded machine).
test('3-way: the therapist admits a second patient into the call; each page has two tiles and data channels open to both others', async () => {
    const v = oneCall();
    const { doc, pat, docId, patId } = v;
    const third = await s.mint({ sid: v.t.sid, role: 'patient', sub: `other-${v.t.seq}`, name: 'Alex Other' });
    const o = await s.person('patient 2', { keep: true });
    const oth = o.page;
    assert.equal(await openAndJoin(oth, s.q.link(third), { timeout: 40000 }), 'waiting');
    const othId = await oth.evaluate(() => window.quietroom.participant);
    await click(doc, `admit-${othId}`);
    await waitState(oth, 'in-call');
    three = { ...v, oth, othId };
    const people = { [docId]: doc, [patId]: pat, [othId]: oth };
    for (const [id, page] of Object.entries(people)) {
        const others = Object.keys(people).filter((x) => x !== id);
        await waitFor(`${page.qrName}: two remote tiles`, async () => (await tileIds(page)).sort().join() === [...others].sort().join(), { timeout: 20000 })
            .catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await tileIds(page))}`); });
        for (const x of others) await quietroomOpen(page, x);
        assert.equal(await page.evaluate(() => document.querySelector('[data-testid="stage"]').dataset.count), '2', page.qrName);
    }
    // How busy the pages are with two remote tiles each (a loaded machine, or a client loop).
    for (const page of [doc, pat, oth]) process.stderr.write(`  ${page.qrName}: ${JSON.stringify(await responsiveness(page).catch((e) => e.message))}\n`);
    await assertMediaFlowing(oth);
    await screenshot(oth, 'incall-3way');
});

test('3-way: ' + 'the therapist\'s share is decoded by both patients; stopping restores the camera for both', async () => {
    const { doc, pat, oth, docId, patId, othId } = threeCall();
    {
        // Both patients watch, then the therapist clicks: each delay from the click.
        const w = [await watchTile(pat, docId, 'data-sharing', 'true'), await watchTile(oth, docId, 'data-sharing', 'true')];
        const at = await shareTimed(doc);
        const [m1, m2] = [(await w[0].at(10000)) - at, (await w[1].at(10000)) - at];
        assert.ok(m1 <= WITHIN && m2 <= WITHIN, `the patients saw the share after ${m1} and ${m2} ms`);
        for (const page of [pat, oth]) await waitDecoding(page, docId, 'screen');
        await screenshot(oth, 'incall-3way-sharing');
        await doc.click('[data-testid="stop-share"]');
        for (const page of [pat, oth]) await waitDecoding(page, docId, 'camera');
        // the patients' video between themselves was never touched
        await waitDecoding(pat, othId, 'camera');
    }
});

// The link the therapist's page makes again for a reloaded page must send
// the screen from its start: one video sender, not the camera's beside it.
test('3-way: ' + 'a page reloaded while the therapist shares gets the screen (one video sender); stopping gives it the camera', async () => {
    const { doc, pat, oth, docId, othId } = threeCall();
    await shareTimed(doc);
    await waitDecoding(pat, docId, 'screen');
    await oth.reload();
    await waitState(oth, 'in-call', 20000);
    await waitDecoding(oth, docId, 'screen', { timeout: 20000 });
    const senders = await doc.evaluate((p) => window.quietroom.peerConnections.get(p).getTransceivers()
        .filter((t) => !t.stopped && t.receiver.track && t.receiver.track.kind === 'video').length, othId);
    assert.equal(senders, 1, 'video transceivers on the therapist\'s link to the reloaded page');
    await doc.click('[data-testid="stop-share"]');
    await waitDecoding(oth, docId, 'camera');
    await quietroomOpen(doc, othId);
    await quietroomOpen(oth, docId);
});

test('3-way: ' + 'chat in the 3-way call reaches both others, with the right sender', async () => {
    const { doc, pat, oth, docId, patId, othId } = threeCall();
    {
        const a = `to all from the clinician ${MARKER}`;
        await sendChat(doc, a);
        for (const page of [pat, oth]) assert.equal((await waitChat(page, a)).from, docId);
        const b = `to all from Alex ${MARKER}`;
        await sendChat(oth, b);
        for (const page of [doc, pat]) {
            const m = await waitChat(page, b);
            assert.equal(m.from, othId);
            assert.match(m.author, /^Alex Other\b/);
        }
        await screenshot(pat, 'incall-3way-chat');
        for (const page of [doc, pat, oth]) assertNoChatOnWire(page);
    }
});

test('3-way: ' + 'active speaker: the only unmuted person\'s tile says speaking, muted ones do not', async () => {
    const { doc, pat, oth, docId, patId, othId } = threeCall();
    {
        for (const page of [pat, oth]) await page.click('[data-testid="toggle-mic"]');
        await waitFor('the therapist speaking on the patient\'s page (fake microphone beeps)', async () => {
            const [d, x] = [await tileAttrs(pat, docId), await tileAttrs(pat, othId)];
            return d.speaking === 'true' && x.speaking === 'false' && x.mic === 'off';
        }, { timeout: 8000 });
        assert.ok(await pat.evaluate((p) => /speaking/i.test(document.querySelector(`[data-testid="remote-tile"][data-participant="${CSS.escape(p)}"]`).textContent), docId),
            'no "speaking" text in the speaking tile (colour alone)');
        await screenshot(pat, 'incall-3way-speaking');
        await doc.click('[data-testid="toggle-mic"]');
        await waitFor('the therapist no longer speaking once muted', async () => (await tileAttrs(pat, docId)).speaking === 'false', { timeout: 5000 });
    }
});

test('3-way: ' + 'the second patient leaves: no tile of theirs left on the other pages within 1 s', async () => {
    const { doc, pat, oth, docId, patId, othId } = threeCall();
    {
        await click(oth, 'leave');
        await waitVisible(oth, 'confirm');
        const w = [await watchTile(doc, othId, null, null), await watchTile(pat, othId, null, null)];
        const at = await clickTimed(oth, 'confirm-ok');
        const [a, b] = [(await w[0].at(10000)) - at, (await w[1].at(10000)) - at];
        assert.ok(a <= WITHIN && b <= WITHIN, `tiles gone after ${a} ms (therapist) and ${b} ms (patient)`);
        for (const page of [doc, pat]) {
            assert.equal((await tileIds(page)).length, 1, page.qrName);
            assert.equal(await page.evaluate(() => document.querySelector('[data-testid="stage"]').dataset.count), '1');
        }
        await sleep(1500); // nothing brings it back
        for (const page of [doc, pat]) assert.ok(!(await tileIds(page)).includes(othId), `${page.qrName}: the tile came back`);
        await screenshot(pat, 'incall-after-leave');
        process.stderr.write(`  tile gone after ${a} / ${b} ms\n`);
    }
});

// The report: a patient who closed the tab stayed as a frozen
// "connection interrupted" tile, and appeared twice once back. The page's
// pagehide sends "bye"; the same link brings the same seat back.
test('1:1: ' + 'the patient closes the tab: the tile leaves within 1 s; the same link again gives one tile, not two', async () => {
    const { t, doc, patCtx, pat, patId } = threeCall();
    s.releaseKept();
    const w = await watchTile(doc, patId, null, null);
    const at = Date.now();
    await pat.close();
    const gone = (await w.at(10000)) - at;
    assert.ok(gone <= WITHIN, `the closed tab's tile left after ${gone} ms`);
    assert.deepEqual(await tileIds(doc), [], 'tiles left after the tab closed');
    process.stderr.write(`  closed tab's tile gone after ${gone} ms\n`);
    const back = await s.anotherTab(patCtx, 'patient again');
    const state = await openAndJoin(back, s.q.link(t.patient), { timeout: 40000 });
    if (state === 'waiting') await click(doc, `admit-${patId}`);
    await waitState(back, 'in-call');
    assert.equal(await back.evaluate(() => window.quietroom.participant), patId, 'the link took another seat');
    await waitFor('the patient\'s tile back on the therapist\'s page', async () => (await tileIds(doc)).join() === patId, { timeout: 20000 })
        .catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await tileIds(doc))}`); });
    await assertMediaFlowing(doc);
    await sleep(1500);
    assert.deepEqual(await tileIds(doc), [patId], 'a duplicate tile for the patient who came back');
});
