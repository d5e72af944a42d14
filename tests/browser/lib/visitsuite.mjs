// The frame of the issue-18 Chromium suites (visitlinks.test.mjs,
// visitlinks-room.test.mjs): one relay + signaling on loopback (a short
// resume grace, an ops listener for /metrics), one Chromium, and per test
// the people's browser profiles, closed after it, whose pages are then
// checked: every SDP names only the relay, the token goes out only as the
// first message of a socket (check_link or auth) and never in a URL, the
// console shows no token, name or SDP (lib/visits.mjs). After the file: no
// token in a daemon log or the audit log.
import { before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Quietroom, freePort } from './servers.mjs';
import { launchChromium, writeFakeCamera, FAKE_CAMERA_ARGS, chromiumPage, screenshot, waitState, waitVisible, click, assertMediaFlowing } from './browsers.mjs';
import { tabIn, checkVisitWire, checkConsole, openAndJoin, signalAuditText, signalLogText, relayLogText } from './visits.mjs';

export const NAMES = ['Dr. Rivera', 'Sam Patient', 'Alex Other'];

/* Registers the file's hooks; returns the suite (s.q, s.opsBase… once
 * `before` ran). grace: signaling's resume-grace in seconds. fakeCamera:
 * Chromium's camera is a magenta 640x480 file (writeFakeCamera), unlike
 * its fake screen capture. */
export function visitSuite({ label, grace, fakeCamera = false }) {
    const s = {
        q: null, browser: null, opsBase: null, opsToken: `${label}-ops-${process.pid}-7d2f`, grace,
        contexts: [], pages: [], kept: [], tokens: [], seq: 0, opsDir: null,
    };

    /* A line on stderr with the seconds since the test began: where the
     * time goes on a loaded machine. */
    let t0 = Date.now();
    s.step = (what) => process.stderr.write(`  [${label} +${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}\n`);
    beforeEach(() => { t0 = Date.now(); });

    before(async () => {
        s.opsDir = await mkdtemp(path.join(tmpdir(), 'qr-visit-ops-'));
        const tokenFile = path.join(s.opsDir, 'ops.token');
        await writeFile(tokenFile, `${s.opsToken}\n`, { mode: 0o600 });
        const opsPort = await freePort('127.0.0.1');
        s.opsBase = `http://127.0.0.1:${opsPort}`;
        s.q = await Quietroom.start({
            label,
            extraSignal: [`resume-grace = ${grace}`, `ops-listen = 127.0.0.1:${opsPort}`, `ops-token-file = ${tokenFile}`],
        });
        const args = fakeCamera ? FAKE_CAMERA_ARGS(await writeFakeCamera(path.join(s.opsDir, 'camera.y4m'))) : [];
        s.browser = await launchChromium({ args });
    });

    after(async () => {
        if (s.browser) await s.browser.close();
        if (s.q) {
            const logs = [await signalLogText(s.q), await relayLogText(s.q), await signalAuditText(s.q)];
            await s.q.stop();
            for (const t of s.tokens) {
                for (const l of logs) assert.ok(!l.includes(t) && !l.includes(t.split('.')[2]), 'a token (or its signature) in a daemon log or the audit log');
            }
        }
        if (s.opsDir) await rm(s.opsDir, { recursive: true, force: true });
    });

    afterEach(async () => {
        const done = s.contexts.splice(0);
        await Promise.all(done.map((c) => c.close().catch(() => {})));
        for (const page of s.pages.splice(0)) {
            checkVisitWire(page, { relayHost: s.q.mediaHost, relayPort: s.q.mediaPort, tokens: s.tokens });
            checkConsole(page.qrConsole, page.qrName, [...NAMES, ...s.tokens]);
        }
    });

    /* A browser profile of its own (a person's own browser) with one tab.
     * keep: it outlives the test, until releaseKept() (a call that spans two
     * tests). */
    s.person = async (name, { keep = false } = {}) => {
        const { context, page } = await chromiumPage(s.browser, name);
        (keep ? s.kept : s.contexts).push(context);
        s.pages.push(page);
        return { context, page };
    };
    s.releaseKept = () => { s.contexts.push(...s.kept.splice(0)); };

    /* Another tab in that person's browser. */
    s.anotherTab = async (context, name) => {
        const page = await tabIn(context, name);
        s.pages.push(page);
        return page;
    };

    s.visitTokens = async (tag) => {
        const n = ++s.seq;
        const sid = `${tag}-${process.pid}-${n}`;
        const therapist = await s.q.token({ sid, role: 'clinician', sub: `doc-${n}`, name: 'Dr. Rivera' });
        const patient = await s.q.token({ sid, role: 'patient', sub: `pat-${n}`, name: 'Sam Patient' });
        s.tokens.push(therapist, patient);
        return { sid, seq: n, therapist, patient };
    };

    s.mint = async (args) => {
        const t = await s.q.token(args);
        s.tokens.push(t);
        return t;
    };

    /* The audit records of signaling about this visit (session = sid). */
    s.auditOf = async (sid) => (await signalAuditText(s.q)).split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.session === sid);

    /* Therapist in, patient waits, therapist admits, media both ways. */
    s.startVisit = async (tag, { shots = false, keep = false } = {}) => {
        const t = await s.visitTokens(tag);
        const d = await s.person('therapist', { keep });
        const p = await s.person('patient', { keep });
        assert.equal(await openAndJoin(d.page, s.q.link(t.therapist)), 'in-call');
        await waitVisible(d.page, 'clinician-panel');
        s.step('therapist in');
        assert.equal(await openAndJoin(p.page, s.q.link(t.patient)), 'waiting');
        s.step('patient waiting');
        const patId = await p.page.evaluate(() => window.quietroom.participant);
        const docId = await d.page.evaluate(() => window.quietroom.participant);
        if (shots) {
            await screenshot(p.page, 'visit-waiting-room');
            await screenshot(d.page, 'visit-clinician-lobby');
        }
        await click(d.page, `admit-${patId}`);
        await waitState(p.page, 'in-call');
        try {
            await assertMediaFlowing(d.page);
            await assertMediaFlowing(p.page);
        } catch (e) {
            // Both sides' events: a negotiation stuck on one side shows on the other.
            const ev = async (page) => page.evaluate(() => window.quietroom.events.join('\n    ')).catch((x) => x.message);
            e.message += `\n  therapist's events:\n    ${await ev(d.page)}\n  patient's events:\n    ${await ev(p.page)}`;
            throw e;
        }
        s.step('admitted, media both ways');
        return { t, doc: d.page, docCtx: d.context, pat: p.page, patCtx: p.context, patId, docId };
    };
    return s;
}

/* Every `welcome` the page received over its sockets (from socket `from` on). */
export function welcomes(page, from = 0) {
    return page.qrSockets.slice(from).flatMap((x) => x.received).filter((m) => m.type === 'welcome');
}
