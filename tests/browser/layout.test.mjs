// Issue 14's layout and accessibility, Chromium against the real relay and
// signaling (lib/visitsuite.mjs): each screen state at 1280x800, 1366x768,
// 390x844 (a phone), 844x390 (a phone on its side) and 640x400 (1280x800 at
// 200 % zoom): pre-join, waiting room, 1:1 call (patient and clinician),
// the "more" menu, chat open, clinician panel open, sharing (sharer and
// viewer), 3-way call. On each, measured with element boxes
// (getBoundingClientRect, lib/browsers.mjs boxProblems / selfViewOverlaps):
// every named control shown and fully inside the viewport, every other
// shown control too (call screens), the call screen does not scroll, no
// element of the self view overlaps a remote video; axe-core (pinned,
// lib/axe.mjs) finds 0 violations; a screenshot to
// artifacts/layout-<screen>-<w>x<h>.png. Each test collects the problems
// of all five viewports and reports them together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './lib/servers.mjs';
import { screenshot, waitState, waitVisible, visible, click, boxProblems, selfViewOverlaps } from './lib/browsers.mjs';
import { gotoLink, openAndJoin, stateOf } from './lib/visits.mjs';
import { visitSuite } from './lib/visitsuite.mjs';
import { axeViolations, axeVersion } from './lib/axe.mjs';
import { sendChat, waitChat } from './lib/incall.mjs';

export const VIEWPORTS = [[1280, 800], [1366, 768], [390, 844], [844, 390], [640, 400]];
const CALL = ['toggle-mic', 'toggle-cam', 'share', 'chat-toggle', 'more', 'quality', 'leave'];
const CLINICIAN = [...CALL, 'people-toggle', 'end-session'];

// The magenta still camera: cheap to encode, so five viewports of a 3-way call
// (each page encodes for two peers and decodes two) stay quick.
const s = visitSuite({ label: 'layout', grace: 20, fakeCamera: true });
let v = null; // the call, kept across the tests (s.person keep)
const call = () => { assert.ok(v, 'no call (an earlier test failed before it began)'); return v; };

/* Two animation frames: layout and paint after a resize or a click. */
const settle = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

/* The screen at every viewport: boxes, self view, axe, screenshot. Returns
 * the problems, each prefixed with its viewport. */
async function checkScreen(page, screen, { required = [], call: inCall = false } = {}) {
    const problems = [];
    for (const [width, height] of VIEWPORTS) {
        await page.setViewportSize({ width, height });
        await settle(page);
        const at = `${screen} at ${width}x${height}`;
        for (const p of await boxProblems(page, { required, allControls: inCall, noScroll: inCall })) problems.push(`${at}: ${p}`);
        if (inCall) {
            const o = await selfViewOverlaps(page);
            for (const p of o.problems) problems.push(`${at}: ${p}`);
        }
        for (const p of await axeViolations(page)) problems.push(`${at}: axe ${p}`);
        await screenshot(page, `layout-${screen}-${width}x${height}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await settle(page);
    return problems;
}

const report = (problems) => assert.deepEqual(problems, [], `${problems.length} problem(s) (axe-core ${axeVersion()}):\n  ${problems.join('\n  ')}`);

test('pre-join and waiting room: Join, and the waiting room\'s buttons, inside every viewport; 0 axe violations', async () => {
    const t = await s.visitTokens('layout');
    const d = await s.person('therapist', { keep: true });
    const p = await s.person('patient', { keep: true });
    assert.equal(await openAndJoin(d.page, s.q.link(t.therapist)), 'in-call');
    await gotoLink(p.page, s.q.link(t.patient));
    await waitFor('the pre-join screen', async () => (await stateOf(p.page)) === 'precall', { timeout: 20000 });
    await waitFor('the camera preview', () => p.page.evaluate(() => document.getElementById('preview').videoWidth > 0), { timeout: 20000 });
    const problems = await checkScreen(p.page, 'pre-join', { required: ['join'] });
    await click(p.page, 'join');
    await waitState(p.page, 'waiting');
    problems.push(...await checkScreen(p.page, 'waiting-room', { required: ['waiting-leave', 'waiting-toggle-mic', 'waiting-toggle-cam'] }));
    const patId = await p.page.evaluate(() => window.quietroom.participant);
    // The 3-way call's second patient waits from now on (joining later,
    // beside two calls' worth of video, costs a minute on a loaded machine).
    const token = await s.mint({ sid: t.sid, role: 'patient', sub: `other-${t.seq}`, name: 'Alex Other' });
    const oth = (await s.person('patient 2', { keep: true })).page;
    assert.equal(await openAndJoin(oth, s.q.link(token), { timeout: 30000 }), 'waiting');
    const othId = await oth.evaluate(() => window.quietroom.participant);
    v = { t, doc: d.page, pat: p.page, patId, oth, othId };
    s.step('two patients waiting');
    s.step('checked');
    report(problems);
});

test('1:1 call, patient and clinician: every control inside, no scroll, the self view over no remote video; the "more" menu; 0 axe violations', async () => {
    const { doc, pat, patId } = call();
    await click(doc, `admit-${patId}`);
    await waitState(pat, 'in-call');
    await waitVisible(pat, 'remote-video', 20000);
    await waitVisible(doc, 'remote-video', 20000);
    const problems = (await Promise.all([
        checkScreen(pat, 'call-patient', { required: CALL, call: true }),
        checkScreen(doc, 'call-clinician', { required: CLINICIAN, call: true }),
    ])).flat();
    await click(pat, 'more');
    await waitVisible(pat, 'more-menu', 3000);
    problems.push(...await checkScreen(pat, 'more-menu', { required: [...CALL, 'more-menu', 'settings'], call: true }));
    await pat.keyboard.press('Escape');
    if (await pat.evaluate(() => { const m = document.querySelector('[data-testid="more-menu"]'); return !!m && !m.closest('[hidden]'); })) await pat.click('[data-testid="more"]');
    s.step('checked');
    report(problems);
});

test('chat open (patient) and clinician panel open: inside every viewport, self view over no remote video; 0 axe violations', async () => {
    const { doc, pat } = call();
    // A message in the log: its rendering is checked too.
    await sendChat(pat, 'Hello, can you hear me? https://example.org/info');
    await waitChat(pat, 'Hello, can you hear me?');
    // The panel: open it where it is a drawer (people-toggle aria-expanded).
    const open = async () => {
        if (await doc.evaluate(() => document.querySelector('[data-testid="people-toggle"]').getAttribute('aria-expanded')) !== 'true') {
            await doc.click('[data-testid="people-toggle"]');
        }
    };
    await open();
    await waitVisible(doc, 'clinician-panel', 3000);
    const problems = (await Promise.all([
        checkScreen(pat, 'chat-open', { required: ['chat-input', 'chat-send', 'chat-close', 'toggle-mic', 'leave'], call: true }),
        checkScreen(doc, 'clinician-panel', { required: ['clinician-panel', 'toggle-mic', 'leave'], call: true }),
    ])).flat();
    // On a phone the chat is a drawer: Escape closes it and gives the
    // focus back to its button.
    await pat.setViewportSize({ width: 390, height: 844 });
    await pat.focus('[data-testid="chat-input"]');
    await pat.keyboard.press('Escape');
    assert.ok(!(await visible(pat, 'chat-panel')), 'Escape left the chat drawer open');
    assert.equal(await pat.evaluate(() => document.activeElement && document.activeElement.dataset.testid), 'chat-toggle');
    await pat.setViewportSize({ width: 1280, height: 800 });
    s.step('checked');
    report(problems);
});

test('sharing: the sharer (banner, stop-share) and the viewer (share layout) at every viewport; 0 axe violations', async () => {
    const { doc, pat } = call();
    if (await doc.evaluate(() => document.querySelector('[data-testid="people-toggle"]').getAttribute('aria-expanded')) === 'true') {
        await doc.click('[data-testid="people-toggle"]');
    }
    await click(doc, 'share');
    await waitVisible(doc, 'sharing-banner', 5000);
    await waitFor('the share layout on the patient\'s page', () => pat.evaluate(() => document.querySelector('[data-testid="stage"]').dataset.layout === 'share'), { timeout: 5000 });
    const problems = (await Promise.all([
        checkScreen(doc, 'sharing-sharer', { required: [...CLINICIAN, 'stop-share'], call: true }),
        checkScreen(pat, 'sharing-viewer', { required: CALL, call: true }),
    ])).flat();
    await click(doc, 'stop-share');
    s.step('checked');
    report(problems);
});

test('3-way call: every control inside, no scroll, the self view over neither remote video; 0 axe violations', async () => {
    const { doc, pat, oth, othId: id } = call();
    s.releaseKept();
    // Admit is in the clinician panel (closed by the test before).
    if (await doc.evaluate(() => document.querySelector('[data-testid="people-toggle"]').getAttribute('aria-expanded')) !== 'true') {
        await doc.click('[data-testid="people-toggle"]');
    }
    await click(doc, `admit-${id}`);
    await doc.click('[data-testid="people-toggle"]');
    await waitState(oth, 'in-call');
    s.step('admitted');
    await Promise.all([doc, pat, oth].map((page) => waitFor(`${page.qrName}: two remote videos`, () => page.evaluate(() =>
        Array.from(document.querySelectorAll('[data-testid="remote-video"]')).filter((x) => x.videoWidth > 0).length === 2), { timeout: 30000 })));
    s.step('two remote videos on each page');
    const problems = (await Promise.all([
        checkScreen(oth, '3way-patient', { required: CALL, call: true }),
        checkScreen(doc, '3way-clinician', { required: CLINICIAN, call: true }),
    ])).flat();
    s.step('checked');
    report(problems);
});
