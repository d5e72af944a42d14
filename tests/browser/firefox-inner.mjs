// Runs INSIDE the network namespace that firefox.test.mjs creates (started
// with `ip netns exec`): relay on the namespace's veth address, signaling on
// the namespace's loopback (so the page is a secure context for
// getUserMedia), Chromium as the therapist (Playwright), Firefox ESR as the
// patient (puppeteer-core over WebDriver BiDi). Prints one JSON line with what
// it observed and exits non-zero on any failure.
import { Quietroom, sleep, waitFor } from './lib/servers.mjs';
import {
    launchChromium, chromiumPage, launchFirefox, screenshot, waitState, waitVisible, text, click,
    assertMediaFlowing, checkRelayOnlySdp, checkWire, KEEP_SENDING,
} from './lib/browsers.mjs';

const MEDIA_HOST = process.env.QR_NS_ADDR || '198.18.0.1';
const result = { ok: false, steps: [] };
const step = (s) => { result.steps.push(s); process.stderr.write(`  [firefox] ${s}\n`); };

let q, chromium, firefox;
const hardStop = setTimeout(() => {
    process.stderr.write('firefox-inner: overall timeout\n');
    process.exit(3);
}, 150000);

try {
    q = await Quietroom.start({ host: '127.0.0.1', mediaHost: MEDIA_HOST, label: 'firefox' });
    step(`relay ${q.media}, signaling ${q.base}`);
    const sid = `ff-${process.pid}`;
    const therapistToken = await q.token({ sid, role: 'clinician', sub: 'doc-ff', name: 'Dr. Rivera' });
    const patientToken = await q.token({ sid, role: 'patient', sub: 'pat-ff', name: 'Sam Patient' });

    [chromium, firefox] = await Promise.all([launchChromium(), launchFirefox()]);
    result.firefoxVersion = await firefox.version();
    step(`browsers up: ${result.firefoxVersion}`);

    const { page: doc } = await chromiumPage(chromium, 'therapist (chromium)', { initScript: KEEP_SENDING });
    await doc.goto(q.link(therapistToken));
    await waitState(doc, 'precall');
    await click(doc, 'join');
    await waitState(doc, 'in-call');

    const pat = await firefox.newPage();
    // Both pages keep sending after the end (KEEP_SENDING): the relay alone
    // must stop the media. Were Firefox to close its peer connection, its
    // DTLS close_notify could reach Chromium before the relay's revocation
    // and stop Chromium's sending too, leaving nothing to prove (seen under
    // load: "only 2 packets reached the relay after the end").
    await pat.evaluateOnNewDocument(KEEP_SENDING);
    pat.qrName = 'patient (firefox)';
    const patConsole = [];
    pat.on('console', (m) => patConsole.push(m.text()));
    await pat.setViewport({ width: 1280, height: 800 });
    await pat.goto(q.link(patientToken));
    await waitState(pat, 'precall', 20000);
    const href = await pat.evaluate(() => location.href);
    if (href.includes('token')) throw new Error('the token is still in the Firefox address bar');
    await waitFor('the Firefox camera preview', () => pat.evaluate(() => document.getElementById('preview').videoWidth > 0));
    await screenshot(pat, 'firefox-pre-join');
    await click(pat, 'join');
    await waitState(pat, 'waiting');
    const patId = await pat.evaluate(() => window.quietroom.participant);
    await waitVisible(doc, `admit-${patId}`);
    step('patient (firefox) waiting; therapist (chromium) admits');
    await click(doc, `admit-${patId}`);
    await waitState(pat, 'in-call');

    const [p1, p2] = await assertMediaFlowing(pat, { timeout: 25000 });
    const [d1, d2] = await assertMediaFlowing(doc, { timeout: 25000 });
    result.firefox = { framesDecoded: [p1.framesDecoded, p2.framesDecoded], audioPackets: [p1.audioPackets, p2.audioPackets] };
    result.chromium = { framesDecoded: [d1.framesDecoded, d2.framesDecoded], audioPackets: [d1.audioPackets, d2.audioPackets] };
    step(`media both ways: ${JSON.stringify({ firefox: result.firefox, chromium: result.chromium })}`);
    // Firefox's getStats differs from Chromium's (no transport.selectedCandidatePairId, ...):
    // the quality indicator must still say the connection in words and keep
    // loss, delay and bitrate in its details (issue 14).
    await waitFor('the Firefox quality indicator', async () =>
        /^Connection: (good|weak)\b/.test(await text(pat, 'quality')) &&
        /^loss \d+\.\d %, delay \d+ ms, \d+ kbit\/s in$/.test(await text(pat, 'quality-details')), { timeout: 8000 });
    step(`Firefox shows "${await text(pat, 'quality')}" (${await text(pat, 'quality-details')})`);

    const s1 = await q.stats();
    await sleep(1000);
    const s2 = await q.stats();
    result.relay = { legsActive: s2.legs.active, forwarded: [s1.packets.forwarded, s2.packets.forwarded] };
    if (s2.legs.active !== 2) throw new Error(`relay legs.active ${s2.legs.active}`);
    if (!(s2.packets.forwarded > s1.packets.forwarded)) throw new Error('the relay forwarded nothing in 1 s');

    const gotOffer = await pat.evaluate(() => window.quietroom.lastSdp.offer);
    const gotAnswer = await doc.evaluate(() => window.quietroom.lastSdp.answer);
    result.candidates = {
        firefoxGot: checkRelayOnlySdp(gotOffer, q.mediaHost, q.mediaPort),
        chromiumGot: checkRelayOnlySdp(gotAnswer, q.mediaHost, q.mediaPort),
    };
    // Everything the Chromium page received over the wire, too.
    checkWire(doc, { relayHost: q.mediaHost, relayPort: q.mediaPort, tokens: [therapistToken, patientToken] });
    await screenshot(pat, 'firefox-in-call-patient');
    await screenshot(doc, 'firefox-in-call-therapist');

    // The therapist ends the session; Firefox shows it; forwarding stops
    // although the therapist's page goes on sending (KEEP_SENDING).
    await click(doc, 'end-session');
    await doc.evaluate(() => { window.__qrKeepSending = true; });
    await pat.evaluate(() => { window.__qrKeepSending = true; });
    await click(doc, 'confirm-ok');
    const clickedAt = Date.now();
    await waitState(pat, 'ended', 5000);
    const msg = await text(pat, 'ended-message');
    if (!/clinician ended the session/i.test(msg)) throw new Error(`Firefox ended message: ${msg}`);
    result.afterEnd = await q.assertForwardingStopped(clickedAt, 'the end of the session');
    await screenshot(pat, 'firefox-ended');
    for (const line of patConsole) {
        if ([patientToken, therapistToken, 'v=0', 'a=candidate', 'Sam Patient', 'Dr. Rivera'].some((s) => line.includes(s))) {
            throw new Error('the Firefox console leaks a token, SDP or a name');
        }
    }
    result.ok = true;
    step('ended; relay stopped forwarding');
} catch (e) {
    result.error = e && e.stack ? e.stack : String(e);
    if (q) result.logs = { relay: await q.log('relay'), signal: await q.log('signal') };
} finally {
    await Promise.allSettled([chromium && chromium.close(), firefox && firefox.close()]);
    if (q) await q.stop();
    clearTimeout(hardStop);
}
process.stdout.write(`QR_RESULT ${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);
