// A call between two Chromium pages, as the suites that break something
// under a call (restart.test.mjs, failover.test.mjs) start it.
import { waitState, click, chromiumPage, assertMediaFlowing } from './browsers.mjs';

let seq = 0;

/* Therapist joins, patient waits, therapist admits; both decode video. The
 * pages go into `open` (the suite closes them after each test) and their
 * tokens into `tokens` (checked never to leak). Each page records its state
 * every 100 ms (window.__states) from then on. */
export async function startCall(q, browser, { label, open, tokens }) {
    const n = ++seq;
    const sid = `${label}-${process.pid}-${n}`;
    const therapist = await q.token({ sid, role: 'clinician', sub: `doc-${n}`, name: 'Dr. Rivera' });
    const patient = await q.token({ sid, role: 'patient', sub: `pat-${n}`, name: 'Sam Patient' });
    tokens.push(therapist, patient);
    const d = await chromiumPage(browser, 'therapist');
    const p = await chromiumPage(browser, 'patient');
    open.push(d, p);
    const doc = d.page, pat = p.page;
    await doc.goto(q.link(therapist));
    await waitState(doc, 'precall');
    await click(doc, 'join');
    await waitState(doc, 'in-call');
    await pat.goto(q.link(patient));
    await waitState(pat, 'precall');
    await click(pat, 'join');
    await waitState(pat, 'waiting');
    const patId = await pat.evaluate(() => window.quietroom.participant);
    await click(doc, `admit-${patId}`);
    await waitState(pat, 'in-call');
    await assertMediaFlowing(doc);
    await assertMediaFlowing(pat);
    for (const page of [doc, pat]) await watchStates(page);
    return { doc, pat, patId, docId: await doc.evaluate(() => window.quietroom.participant) };
}

/* Records the page's state every 100 ms in window.__states (changes only). */
export async function watchStates(page) {
    await page.evaluate(() => {
        window.__states = [];
        window.__watch = setInterval(() => {
            const s = `${window.quietroom.state}/${document.body.dataset.screen}`;
            if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
        }, 100);
    });
}

/* The page's event log, for a failure's message. */
export async function events(page) {
    return `events:\n    ${(await page.evaluate(() => window.quietroom.events)).join('\n    ')}`;
}
