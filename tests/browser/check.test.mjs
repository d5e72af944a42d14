// The connection check through the real relay (issue 18 item 4;
// signaling/web/check.js; the contract in docs/protocol.md "Connection
// check"). A waiting person's page makes a loopback call through the relay
// (two peer connections, check_offer/check_answer through signaling) and
// reports whether video will work. Browsers run in network namespaces
// (lib/netns.mjs, as in tcp.test.mjs) so that every browser has an address
// of its own and the relay's leg records say whose legs the check's are:
//   udp    the person who runs the check (UDP to the relay allowed; for one
//          test, everything it sends through a 200 kbit/s tc token bucket)
//   tcp    nftables drops every UDP packet to the relay's address
//   other  the clinician
// A relay with ICE-TCP and its signaling (HTTPS), and a second pair whose
// relay has no TCP listener, listen on the root side of the first veth pair.
//
// Until the page runs the check by itself (the waiting room's own call of
// runConnectionCheck, testid check-result), the test runs it in the page
// through the page's own signaling socket (lib/signaltap.mjs); once it does,
// the test waits for the page's own check instead and asserts the same.
// Needs root, iproute2 (ip, tc) and nftables, like tcp.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Quietroom, sleep, waitFor } from './lib/servers.mjs';
import { launchChromium, chromiumPage, waitState, waitVisible, click, screenshot } from './lib/browsers.mjs';
import { TestNet } from './lib/netns.mjs';
import { SIGNAL_TAP, driveCheck, tapped } from './lib/signaltap.mjs';
import { GOOD_KBPS, GOOD_LOSS_PCT, GOOD_RTT_MS, verdictOf } from '../../signaling/web/check.js';

const SKIP_FIREFOX = process.env.QR_SKIP_FIREFOX === '1' ? 'QR_SKIP_FIREFOX=1' : false;
/* The test's own checks: 4 s of measuring (the page's default is 6 s). */
const CHECK_MS = 4000;
/* Video went through the relay at this rate at least (kbit/s). */
const KBPS_FLOOR = 100;
const RESULT_FIELDS = ['video', 'transport', 'loss_pct', 'rtt_ms', 'kbps'];

let net, nsUdp, nsTcp, nsOther, q, qNoTcp;
let seq = 0;
const browsers = new Map();

before(async () => {
    net = await TestNet.create();
    nsUdp = await net.add('udp');
    nsTcp = await net.add('tcp', { dropUdp: true });
    nsOther = await net.add('other');
    q = await Quietroom.start({ host: net.serverAddr, label: 'check', tls: true, tcp: true });
    // A second relay and signaling on the same address, UDP only: in `tcp`
    // nftables drops every UDP packet to that address, so the check's
    // browser has no way to it.
    qNoTcp = await Quietroom.start({ host: net.serverAddr, label: 'check-notcp', tls: true, tcp: false });
    for (const ns of [nsUdp, nsTcp, nsOther]) await ns.relayRules({ host: q.mediaHost, udpPort: q.mediaPort, tcpPort: q.tcpPort });
});

after(async () => {
    try {
        await Promise.allSettled([...browsers.values()].map((b) => b.then((x) => x.close())));
        for (const s of [q, qNoTcp]) if (s) await s.stop();
    } finally {
        if (net) await net.destroy();
    }
});

/* The browser of `kind` in namespace `ns` (one each, launched when first
 * needed, closed after the file), trusting both signaling certificates;
 * every page (a context of its own) with the signaling tap installed. */
function browserIn(kind, ns) {
    const key = `${kind}/${ns.tag}`;
    if (!browsers.has(key)) browsers.set(key, launch(kind, ns));
    return browsers.get(key);
}

async function launch(kind, ns) {
    if (kind === 'chromium') {
        const browser = await launchChromium({
            executablePath: await ns.chromiumWrapper(),
            args: [`--ignore-certificate-errors-spki-list=${q.tls.spki},${qNoTcp.tls.spki}`],
        });
        return {
            kind, ns,
            newPage: async (name) => (await chromiumPage(browser, name, { initScript: SIGNAL_TAP })).page,
            close: () => browser.close(),
        };
    }
    const ff = await ns.firefox({ acceptInsecureCerts: true });
    return {
        kind, ns,
        newPage: async (name) => {
            const page = await ff.newPage();
            page.qrName = name;
            await page.setViewport({ width: 1280, height: 800 });
            await page.evaluateOnNewDocument(SIGNAL_TAP);
            return page;
        },
        close: () => ff.close(),
    };
}

/* Opens a link and joins: the clinician is then in the call, a patient in
 * the waiting room. Camera and microphone are not waited for: the check
 * sends a picture and a tone of its own. */
const openPages = [];

async function joinAs(browser, servers, { sid, role, sub, name, state }) {
    const token = await servers.token({ sid, role, sub, name });
    const page = await browser.newPage(`${role} ${sub} (${browser.kind} in ${browser.ns.tag})`);
    openPages.push(page);
    await page.goto(servers.link(token));
    await waitState(page, 'precall', 20000);
    await click(page, 'join');
    await waitState(page, state, 20000);
    page.qrId = await page.evaluate(() => window.quietroom.participant);
    return page;
}

/* The relay's counters while `during` runs, every 250 ms: the highest
 * legs.active, links.active and sessions.active seen, and the counters
 * before and after. */
async function watchRelay(servers, during) {
    const before = await servers.stats();
    const max = { legs: before.legs.active, links: before.links.active, sessions: before.sessions.active };
    let stop = false;
    const poll = (async () => {
        while (!stop) {
            const s = await servers.stats().catch(() => null);
            if (s) {
                max.legs = Math.max(max.legs, s.legs.active);
                max.links = Math.max(max.links, s.links.active);
                max.sessions = Math.max(max.sessions, s.sessions.active);
            }
            await sleep(250);
        }
    })();
    let value;
    try {
        value = await during();
    } finally {
        stop = true;
        await poll;
    }
    return { value, before, after: await servers.stats(), max };
}

/* Whether the page runs the check by itself in the waiting room (the
 * client's integration of check.js: its check-result element). */
async function ownCheck(page) {
    return page.evaluate(() => !!document.querySelector('[data-testid="check-result"]'));
}

/* Runs the check in a waiting person's page: the page's own (once the
 * waiting room runs it: testid check-result exists) or driven through the
 * page's signaling socket. Resolves to { res, sent, ms, driven }: res what
 * runConnectionCheck returned (driven) or the page's check_result, sent
 * every check_result the page sent. */
async function runCheck(page, { timeout = 40000 } = {}) {
    if (!(await ownCheck(page))) {
        const t0 = Date.now();
        const r = await driveCheck(page, { durationMs: CHECK_MS });
        assert.equal(r.listenersLeft, 0, `${page.qrName}: the check did not unsubscribe`);
        return { ...r, driven: true, wall: Date.now() - t0, sent: await tapped(page, 'check_result', 'sent') };
    }
    await waitVisible(page, 'check-result', timeout);
    const sent = await waitFor(`${page.qrName}: check_result sent`, async () => {
        const s = await tapped(page, 'check_result', 'sent');
        return s.length ? s : null;
    }, { timeout });
    const shown = await page.evaluate(() => {
        const el = document.querySelector('[data-testid="check-result"]');
        return { video: el.dataset.video, transport: el.dataset.transport };
    });
    const res = sent[sent.length - 1];
    assert.deepEqual(shown, { video: res.video, transport: res.transport }, `${page.qrName}: the page shows what it sent`);
    return { res, sent, driven: false };
}

/* The check_result the page sent: one, the same as the result, integers in
 * the contract's ranges. */
function assertSentResult(page, check) {
    assert.equal(check.sent.length, 1, `${page.qrName} sent ${check.sent.length} check_result messages`);
    const sent = check.sent[0];
    for (const k of RESULT_FIELDS) assert.equal(sent[k], check.res[k], `check_result.${k}`);
    assert.deepEqual(Object.keys(sent).sort(), ['type', ...RESULT_FIELDS].sort(), 'check_result carries exactly the contract\'s fields');
    for (const [k, hi] of [['loss_pct', 100], ['rtt_ms', 60000], ['kbps', 1000000]]) {
        assert.ok(Number.isInteger(sent[k]) && sent[k] >= 0 && sent[k] <= hi, `check_result.${k} = ${sent[k]}`);
    }
    assert.ok(['good', 'weak', 'none'].includes(sent.video));
    assert.ok(['udp', 'tcp', 'none'].includes(sent.transport));
}

/* The clinician's page receives a lobby whose entry for `who` carries the
 * check's result (and shows it, once the clinician's panel does). */
async function assertClinicianSees(doc, who, result) {
    const want = Object.fromEntries(RESULT_FIELDS.map((k) => [k, result[k]]));
    const entry = await waitFor(`${doc.qrName}: a lobby entry for ${who} with the check`, async () => {
        const lobbies = await tapped(doc, 'lobby');
        for (let i = lobbies.length - 1; i >= 0; i--) {
            const e = (lobbies[i].waiting || []).find((x) => x.participant === who);
            if (e && e.check) return e;
        }
        return null;
    }, { timeout: 10000 });
    assert.deepEqual(entry.check, want, `the lobby's check for ${who}`);
    const hasUi = await doc.evaluate((id) => !!document.querySelector(`[data-testid="check-${id}"]`) ||
        !!document.querySelector('[data-testid="admit-all"]'), who);
    if (hasUi) {
        await waitVisible(doc, `check-${who}`);
        const v = await doc.evaluate((id) => document.querySelector(`[data-testid="check-${id}"]`).dataset.video, who);
        assert.equal(v, result.video, `check-${who} data-video`);
    }
    return entry;
}

/* The relay's leg records since record `from` of its audit log, per
 * session: up, every leg.up and leg.moved ({ type, role, host, transport });
 * last, each leg's latest binding (role -> { host, transport }: a browser
 * may nominate a TCP pair first and move to UDP); down, the reasons of its
 * leg.down records. */
async function legRecords(servers, from) {
    const recs = (await servers.relayAudit()).slice(from);
    const up = {}, last = {}, down = {};
    for (const r of recs) {
        const agent = (r.agents || []).find((x) => /^leg-/.test(x.role));
        if (r.type === 'leg.up' || r.type === 'leg.moved') {
            const b = {
                type: r.type, role: agent && agent.role, transport: r.detail && r.detail.transport,
                host: agent && agent.address ? agent.address.slice(0, agent.address.lastIndexOf(':')) : null,
            };
            (up[r.session] ||= []).push(b);
            (last[r.session] ||= {})[b.role] = { host: b.host, transport: b.transport };
        } else if (r.type === 'leg.down') {
            (down[r.session] ||= []).push(r.reason);
        }
    }
    return { up, last, down };
}

/* One relay session came up since `from`, with two legs (leg-a, leg-b)
 * whose every binding is from `host` and whose latest is over `transport`.
 * Returns the session's key. */
async function assertCheckLegs(servers, from, host, transport) {
    const legs = await waitFor('the check\'s legs in the relay\'s audit log', async () => {
        const l = await legRecords(servers, from);
        const s = Object.values(l.last);
        return s.length && Object.keys(s[0]).length >= 2 ? l : null;
    }, { timeout: 5000 });
    const sessions = Object.keys(legs.up);
    assert.equal(sessions.length, 1, `one relay session came up: ${JSON.stringify(legs.up)}`);
    const [session] = sessions;
    assert.deepEqual(Object.keys(legs.last[session]).sort(), ['leg-a', 'leg-b'], JSON.stringify(legs.up));
    for (const u of legs.up[session]) {
        assert.equal(u.host, host, `a leg of the check bound from ${u.host}, not the checking page's ${host}: ${JSON.stringify(legs.up)}`);
    }
    for (const [role, l] of Object.entries(legs.last[session])) {
        assert.equal(l.transport, transport, `${role} ends on ${l.transport}: ${JSON.stringify(legs.up)}`);
    }
    return session;
}

/* Each test closes the pages it opened (the browsers stay for the next). */
async function closePages() {
    for (const page of openPages.splice(0)) {
        await (page.context ? page.context().close() : page.close()).catch(() => {});
    }
}

const deltaNft = (a, b, name) => b[name].packets - a[name].packets;

test('the verdict\'s thresholds (check.js, no browser)', () => {
    const ok = { connectedOk: true, videoPackets: 500, kbps: GOOD_KBPS, lossPct: 0, rttMs: 20 };
    assert.equal(verdictOf(ok), 'good');
    assert.equal(verdictOf({ ...ok, kbps: GOOD_KBPS - 1 }), 'weak');
    assert.equal(verdictOf({ ...ok, lossPct: GOOD_LOSS_PCT }), 'weak');
    assert.equal(verdictOf({ ...ok, rttMs: GOOD_RTT_MS }), 'weak');
    // A sender that could not encode faster, on a path that carries more.
    assert.equal(verdictOf({ ...ok, kbps: 120, estimateKbps: GOOD_KBPS }), 'good');
    assert.equal(verdictOf({ ...ok, kbps: 120, estimateKbps: GOOD_KBPS - 1 }), 'weak');
    assert.equal(verdictOf({ ...ok, estimateKbps: 5000, lossPct: GOOD_LOSS_PCT }), 'weak');
    assert.equal(verdictOf({ ...ok, videoPackets: 0 }), 'none');
    assert.equal(verdictOf({ ...ok, connectedOk: false }), 'none');
});

test('Chromium: a waiting patient\'s check goes through the relay over UDP, is "good", and the clinician sees it; nothing reaches anyone else', async () => {
    const sid = `check-c-${process.pid}-${++seq}`;
    const t0 = Date.now();
    const took = {};
    const here = await browserIn('chromium', nsUdp);
    const there = await browserIn('chromium', nsOther);
    took.browsers = Date.now() - t0;
    try {
        const doc = await joinAs(there, q, { sid, role: 'clinician', sub: 'doc', name: 'Dr. Rivera', state: 'in-call' });
        took.clinician = Date.now() - t0;
        const s0 = await q.stats();
        const audit0 = (await q.relayAudit()).length;
        const c0 = await nsUdp.counters();
        let pat;
        const { value: check, max, before: sb } = await watchRelay(q, async () => {
            pat = await joinAs(here, q, { sid, role: 'patient', sub: 'pat-a', name: 'Sam Patient', state: 'waiting' });
            took.patient = Date.now() - t0;
            return runCheck(pat);
        });
        took.check = Date.now() - t0;
        const c1 = await nsUdp.counters();
        process.stderr.write(`  chromium udp check: ${JSON.stringify({ res: check.res, ms: check.ms, phases: check.phases, max, took })}\n`);

        // The verdict and its numbers.
        const r = check.res;
        assert.equal(r.video, 'good', `verdict ${JSON.stringify(r)}`);
        assert.equal(r.transport, 'udp');
        // Video really went through the relay. (On a busy machine the
        // encoder may stay below GOOD_KBPS; the verdict then rests on
        // Chromium's bandwidth estimate of the path, see verdictOf.)
        assert.ok(r.kbps >= KBPS_FLOOR, `bitrate reached ${r.kbps} kbit/s`);
        assert.ok(r.loss_pct < GOOD_LOSS_PCT && r.rtt_ms < GOOD_RTT_MS, JSON.stringify(r));
        if (check.driven) {
            assert.equal(r.reason, null);
            assert.equal(r.sentence, 'check.good');
            assert.ok(check.ms >= CHECK_MS && check.ms < CHECK_MS + 20000, `the check took ${check.ms} ms`);
        }
        assertSentResult(pat, check);

        // The relay carried it: two legs of one link of one new session
        // while it ran, both bound from the patient's own address (the relay
        // forwards a leg's packets only to the other leg of its link: here,
        // back into the same page), over UDP, and real traffic.
        assert.equal(max.links - sb.links.active, 1, `links at the relay during the check (before ${sb.links.active}, max ${max.links})`);
        assert.equal(max.legs - sb.legs.active, 2, `legs at the relay during the check (before ${sb.legs.active}, max ${max.legs})`);
        const session = await assertCheckLegs(q, audit0, nsUdp.addr, 'udp');
        const s1 = await q.stats();
        assert.ok(s1.packets.forwarded - s0.packets.forwarded >= 200, `the relay forwarded ${s1.packets.forwarded - s0.packets.forwarded} packets`);
        assert.equal(s1.tcp.packets_forwarded - s0.tcp.packets_forwarded, 0, 'nothing over TCP');
        assert.ok(deltaNft(c0, c1, 'relay_udp') >= 200, `the patient's namespace sent ${deltaNft(c0, c1, 'relay_udp')} UDP packets to the relay`);

        // check_result revokes the check's session at the relay: its legs
        // go down as revoked, not 30 s later for want of consent.
        const downs = await waitFor('the check\'s legs revoked', async () => {
            const d = (await legRecords(q, audit0)).down[session] || [];
            return d.length >= 2 ? d : null;
        }, { timeout: 5000 });
        assert.deepEqual(downs, ['revoked', 'revoked'], `the check's legs went down: ${downs}`);
        const s2 = await waitFor('the check\'s link gone', async () => {
            const s = await q.stats();
            return s.links.active === sb.links.active ? s : null;
        }, { timeout: 3000 });
        assert.ok(s2.revocations - s0.revocations >= 1);

        // The clinician sees the result next to the patient, and nothing
        // else of the check: no check or call SDP, no peer connection.
        const entry = await assertClinicianSees(doc, pat.qrId, r);
        for (const type of ['check_offer', 'check_answer', 'offer', 'answer']) {
            assert.equal((await tapped(doc, type)).length, 0, `${doc.qrName} received ${type}`);
        }
        assert.equal(await doc.evaluate(() => window.quietroom.peerConnections.size), 0, `${doc.qrName} has a peer connection`);
        took.end = Date.now() - t0;
        process.stderr.write(`  lobby entry: ${JSON.stringify(entry)}; ms since the test began: ${JSON.stringify(took)}\n`);
        await screenshot(doc, 'check-clinician-lobby');
        await screenshot(pat, 'check-patient-waiting');
    } finally {
        await closePages();
    }
});

test('Firefox ESR: the check reports a result through the relay', { skip: SKIP_FIREFOX }, async () => {
    const sid = `check-f-${process.pid}-${++seq}`;
    // Firefox is closed at the end of this test: it is the only one.
    // (The clinician's side is the Chromium tests'.)
    const ff = await launch('firefox', nsUdp);
    try {
        const audit0 = (await q.relayAudit()).length;
        let pat;
        const { value: check, max, before: sb } = await watchRelay(q, async () => {
            pat = await joinAs(ff, q, { sid, role: 'patient', sub: 'pat-f', name: 'Fio Patient', state: 'waiting' });
            return runCheck(pat);
        });
        process.stderr.write(`  firefox udp check: ${JSON.stringify({ res: check.res, ms: check.ms, phases: check.phases, max })}\n`);
        const r = check.res;
        assert.notEqual(r.video, 'none', `verdict ${JSON.stringify(r)}`);
        assert.equal(r.transport, 'udp');
        assert.ok(r.kbps >= KBPS_FLOOR, `bitrate reached ${r.kbps} kbit/s`);
        assertSentResult(pat, check);
        assert.equal(max.legs - sb.legs.active, 2, 'two legs at the relay during the check');
        await assertCheckLegs(q, audit0, nsUdp.addr, 'udp');
    } finally {
        await closePages();
        await ff.close();
    }
});

test('UDP to the relay dropped, the relay on ICE-TCP: the check says video works, over TCP', async () => {
    const sid = `check-t-${process.pid}-${++seq}`;
    const here = await browserIn('chromium', nsTcp);
    try {
        const s0 = await q.stats();
        const audit0 = (await q.relayAudit()).length;
        const c0 = await nsTcp.counters();
        let pat;
        const { value: check, max, before: sb } = await watchRelay(q, async () => {
            pat = await joinAs(here, q, { sid, role: 'patient', sub: 'pat-t', name: 'Tess Patient', state: 'waiting' });
            return runCheck(pat);
        });
        const c1 = await nsTcp.counters();
        const s1 = await q.stats();
        process.stderr.write(`  chromium tcp check: ${JSON.stringify({ res: check.res, ms: check.ms, phases: check.phases, max })}\n`);
        const r = check.res;
        assert.notEqual(r.video, 'none', `verdict ${JSON.stringify(r)}`);
        assert.equal(r.transport, 'tcp');
        assert.ok(r.kbps >= KBPS_FLOOR, `bitrate reached ${r.kbps} kbit/s`);
        assertSentResult(pat, check);
        assert.equal(max.legs - sb.legs.active, 2, 'two legs at the relay during the check');
        await assertCheckLegs(q, audit0, nsTcp.addr, 'tcp');
        assert.ok(s1.tcp_connections.accepted - s0.tcp_connections.accepted >= 2, 'two ICE-TCP connections');
        assert.ok(s1.tcp.packets_forwarded - s0.tcp.packets_forwarded >= 200, `${s1.tcp.packets_forwarded - s0.tcp.packets_forwarded} packets forwarded over TCP`);
        // The browser did try UDP; nftables dropped it.
        assert.ok(deltaNft(c0, c1, 'relay_udp') > 0, 'no UDP to the relay was tried (and dropped)');
        assert.ok(deltaNft(c0, c1, 'relay_tcp') >= 200, `${deltaNft(c0, c1, 'relay_tcp')} TCP packets to the relay`);
    } finally {
        await closePages();
    }
});

test('UDP to the relay dropped and the relay without ICE-TCP: the check says video will not work', async () => {
    const sid = `check-n-${process.pid}-${++seq}`;
    const q2 = qNoTcp;
    const here = await browserIn('chromium', nsTcp);
    try {
        const c0 = await nsTcp.counters();
        let pat;
        const { value: check, max, before: sb } = await watchRelay(q2, async () => {
            pat = await joinAs(here, q2, { sid, role: 'patient', sub: 'pat-n', name: 'Nat Patient', state: 'waiting' });
            return runCheck(pat);
        });
        const c1 = await nsTcp.counters();
        process.stderr.write(`  chromium blocked check: ${JSON.stringify({ res: check.res, ms: check.ms, phases: check.phases, max })}\n`);
        const r = check.res;
        assert.deepEqual(Object.fromEntries(RESULT_FIELDS.map((k) => [k, r[k]])),
            { video: 'none', transport: 'none', loss_pct: 0, rtt_ms: 0, kbps: 0 });
        if (check.driven) {
            assert.ok(['timeout', 'ice_failed'].includes(r.reason), `reason ${r.reason}`);
            assert.equal(r.sentence, 'check.none');
            assert.ok(check.ms < 20000, `the check took ${check.ms} ms`);
        }
        assertSentResult(pat, check);
        assert.equal(max.legs, sb.legs.active, 'a leg came up at the relay');
        assert.ok(deltaNft(c0, c1, 'other_udp') + deltaNft(c0, c1, 'relay_udp') > 0, 'the browser tried UDP to the relay (dropped)');
    } finally {
        await closePages();
    }
});

test('a path of 200 kbit/s (tc tbf in the namespace): the check says "weak"; a seat gets five checks, the sixth is refused (check_limit) as "none" with no result sent', async () => {
    const sid = `check-l-${process.pid}-${++seq}`;
    const here = await browserIn('chromium', nsUdp);
    // Everything the namespace sends (the check's media to the relay, and
    // its receiver reports) through a 200 kbit/s token bucket.
    const tbf = ['qdisc', 'add', 'dev', nsUdp.vethNs, 'root', 'tbf', 'rate', '200kbit', 'burst', '8kb', 'latency', '200ms'];
    await nsUdp.exec('tc', tbf);
    let limited = true;
    const unlimit = async () => {
        if (limited) await nsUdp.exec('tc', ['qdisc', 'del', 'dev', nsUdp.vethNs, 'root']);
        limited = false;
    };
    try {
        const pat = await joinAs(here, q, { sid, role: 'patient', sub: 'pat-l', name: 'Lou Patient', state: 'waiting' });
        const slow = await runCheck(pat);
        await unlimit();
        process.stderr.write(`  200 kbit/s check: ${JSON.stringify({ res: slow.res, ms: slow.ms, phases: slow.phases })}\n`);
        const r = slow.res;
        assert.equal(r.video, 'weak', `verdict ${JSON.stringify(r)}`);
        assert.equal(r.transport, 'udp');
        assert.ok(r.kbps > 0 && r.kbps < GOOD_KBPS, `bitrate reached ${r.kbps} kbit/s through a 200 kbit/s path`);
        if (slow.driven) {
            assert.equal(r.sentence, 'check.weak');
            assert.ok(r.estimate_kbps === null || r.estimate_kbps < GOOD_KBPS, `the sender estimated ${r.estimate_kbps} kbit/s`);
        }
        assertSentResult(pat, slow);

        // Four more (short) checks are allowed, the sixth is refused.
        const results = [];
        for (let i = 0; i < 6; i++) {
            const c = await driveCheck(pat, { durationMs: 300 });
            results.push({ ...c.res, ms: c.ms });
            if (c.res.reason === 'check_limit') break;
        }
        process.stderr.write(`  checks: ${JSON.stringify(results)}\n`);
        const answered = (await tapped(pat, 'check_offer')).length;
        assert.equal(answered, 5, `the server answered ${answered} check offers`);
        const last = results.at(-1);
        assert.deepEqual({ video: last.video, transport: last.transport, reason: last.reason, sentence: last.sentence },
            { video: 'none', transport: 'none', reason: 'check_limit', sentence: 'err.checkLimit' });
        assert.ok(last.ms < 5000, `the refused check took ${last.ms} ms`);
        for (const c of results.slice(0, -1)) assert.equal(c.transport, 'udp', `an allowed check: ${JSON.stringify(c)}`);
        assert.equal((await tapped(pat, 'check_result', 'sent')).length, 5, 'one check_result per check the server answered');
        assert.equal(await pat.evaluate(() => window.quietroom.state), 'waiting', 'the refusal does not end the page');
    } finally {
        await unlimit().catch(() => {});
        await closePages();
    }
});
