// Browser launching and driver-neutral page helpers. Chromium is driven by
// Playwright (playwright-core, Debian's /usr/bin/chromium); Firefox ESR by
// puppeteer-core over WebDriver BiDi. The helpers below use only
// page.evaluate / click / screenshot, which both drivers share.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ARTIFACTS, sleep, waitFor } from './servers.mjs';

export { ARTIFACTS };
export const CHROMIUM = process.env.QR_CHROMIUM || '/usr/bin/chromium';
export const FIREFOX = process.env.QR_FIREFOX || '/usr/bin/firefox-esr';

export const CHROMIUM_ARGS = [
    '--no-sandbox', // as root
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
    '--disable-gpu',
    '--disable-dev-shm-usage', // containers often have a tiny /dev/shm
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];

/* A fake camera Chromium can tell from its fake screen: a Y4M file of
 * solid magenta 640x480 frames, for --use-file-for-fake-video-capture
 * (FAKE_CAMERA_ARGS). The camera then gives 4:3 magenta frames while
 * getDisplayMedia (--use-fake-ui-for-media-stream picks the fake "screen")
 * still gives Chromium's 1280x720 green test pattern: a receiver can tell
 * which of the two it decodes, by size and by colour. */
export async function writeFakeCamera(file) {
    const [W, H] = [640, 480];
    const frame = Buffer.alloc(W * H * 3 / 2);
    // BT.601 full range magenta: Y 105, U 212, V 234.
    frame.fill(105, 0, W * H);
    frame.fill(212, W * H, W * H * 5 / 4);
    frame.fill(234, W * H * 5 / 4);
    const parts = [Buffer.from(`YUV4MPEG2 W${W} H${H} F30:1 Ip A1:1 C420jpeg\n`)];
    for (let i = 0; i < 2; i++) parts.push(Buffer.from('FRAME\n'), frame);
    await writeFile(file, Buffer.concat(parts));
    return file;
}
export const FAKE_CAMERA_ARGS = (file) => [`--use-file-for-fake-video-capture=${file}`];

/* executablePath: another Chromium, or a wrapper that starts it (in a
 * network namespace, lib/netns.mjs); args: added to CHROMIUM_ARGS. */
export async function launchChromium({ executablePath = CHROMIUM, args = [] } = {}) {
    const { chromium } = await import('playwright-core');
    return chromium.launch({
        executablePath,
        headless: true,
        args: [...CHROMIUM_ARGS, ...args],
        timeout: 30000,
    });
}

/* Test instrumentation for "the relay stops forwarding", installed in a page
 * before its scripts run. Once window.__qrKeepSending is true the page can no
 * longer close its RTCPeerConnections or stop its tracks, so it goes on
 * sending media to the relay after the visit ended for it, as a broken or
 * hostile client would. Without such a sender both browsers stop sending by
 * themselves when told the visit is over, and "the relay forwards nothing
 * more" would prove nothing about the relay. */
export const KEEP_SENDING = `(() => {
    const close = RTCPeerConnection.prototype.close;
    RTCPeerConnection.prototype.close = function () { if (!window.__qrKeepSending) close.call(this); };
    const stop = MediaStreamTrack.prototype.stop;
    MediaStreamTrack.prototype.stop = function () { if (!window.__qrKeepSending) stop.call(this); };
})();`;

/* A fresh context (own profile state) and page. Kept for the checks after
 * the test: console lines, every WebSocket message each way (page.qrSockets)
 * and every requested URL. */
export async function chromiumPage(browser, name, { initScript = null } = {}) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    if (initScript) await context.addInitScript(initScript);
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    page.qrName = name;
    page.qrConsole = [];
    page.qrSockets = [];
    page.qrRequests = [];
    page.on('console', (m) => page.qrConsole.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => page.qrConsole.push(`pageerror: ${e.message}`));
    page.on('request', (r) => page.qrRequests.push(r.url()));
    page.on('websocket', (ws) => {
        const socket = { url: ws.url(), sent: [], received: [] };
        page.qrSockets.push(socket);
        const parse = (f) => { try { return JSON.parse(f.payload); } catch (e) { return { unparsed: String(f.payload) }; } };
        ws.on('framesent', (f) => socket.sent.push(parse(f)));
        ws.on('framereceived', (f) => socket.received.push(parse(f)));
    });
    return { context, page };
}

/* What went over the wire for a Chromium page (chromiumPage), checked against
 * docs/protocol.md and DESIGN.md:
 * - every offer and answer the page received names only the relay;
 * - the token goes out once to join, as the first message of a socket
 *   (`auth`), and never in a URL; later sockets start with `resume`; before
 *   that the page may check the link once on a socket of its own
 *   (`check_link`, first and only message: the token is not used up);
 * - no candidate is ever sent (the server would drop it; our client never
 *   gathers them for anyone).
 * Returns how many SDPs were checked. */
export function checkWire(page, { relayHost, relayPort, tcpPort = null, relays = [[relayHost, relayPort, tcpPort]], tokens }) {
    let sdps = 0;
    const where = page.qrName || 'page';
    for (const [i, s] of page.qrSockets.entries()) {
        if (s.sent.length) {
            const first = s.sent[0].type;
            if (first !== 'auth' && first !== 'resume' && first !== 'check_link') throw new Error(`${where}: socket ${i} began with ${first}`);
            if (first === 'check_link' && s.sent.length > 1) throw new Error(`${where}: more after check_link on socket ${i}`);
        }
        for (const m of s.sent) {
            if (m.type === 'candidate') throw new Error(`${where}: sent a candidate`);
            if (m.type === 'auth' && m !== s.sent[0]) throw new Error(`${where}: auth after the first message`);
            if (m.type !== 'auth' && m.type !== 'check_link' && tokens.some((t) => JSON.stringify(m).includes(t))) {
                throw new Error(`${where}: a token in a ${m.type} message`);
            }
        }
        for (const m of s.received) {
            if (m.type !== 'offer' && m.type !== 'answer') continue;
            // Each SDP names one relay (a call that moved names another).
            const errors = [];
            for (const [host, port, tcp = null] of relays) {
                try {
                    checkRelayOnlySdp(m.sdp, host, port, { tcpPort: tcp });
                    break;
                } catch (e) {
                    errors.push(e.message);
                }
            }
            if (errors.length === relays.length) {
                throw new Error(`${where}: received ${m.type} from ${m.from}: ${errors.join('; ')}`);
            }
            sdps++;
        }
    }
    // The token goes out once, and again only to take the seat back after
    // a session this page had was lost (signal.js rejoinWithLink): never
    // more often than the page was let in.
    const auths = page.qrSockets.flatMap((s) => s.sent).filter((m) => m.type === 'auth').length;
    const admitted = page.qrSockets.filter((s) => s.received.some((m) => m.type === 'welcome' || m.type === 'resumed')).length;
    if (auths > Math.max(1, admitted)) throw new Error(`${where}: sent the token ${auths} times, let in ${admitted} times`);
    const checks = page.qrSockets.flatMap((s) => s.sent).filter((m) => m.type === 'check_link').length;
    if (checks > 1) throw new Error(`${where}: checked the link ${checks} times`);
    for (const url of page.qrRequests) {
        // What reaches a server (and its proxies' logs): the URL without its fragment.
        const sent = url.split('#')[0];
        if (/token/i.test(sent) || tokens.some((t) => sent.includes(t))) throw new Error(`${where}: a token in a requested URL`);
    }
    return sdps;
}

export const FIREFOX_PREFS = {
    'media.navigator.streams.fake': true,
    'media.navigator.permission.disabled': true,
    'media.autoplay.default': 0,
    'media.autoplay.blocking_policy': 0,
    'network.captive-portal-service.enabled': false,
    'network.connectivity-service.enabled': false,
    'browser.safebrowsing.malware.enabled': false,
    'browser.safebrowsing.phishing.enabled': false,
    'app.update.enabled': false,
    'datareporting.healthreport.uploadEnabled': false,
    'toolkit.telemetry.enabled': false,
};

/* prefs: added to (or overriding) FIREFOX_PREFS; acceptInsecureCerts: for
 * a test server's self-signed certificate. */
export async function launchFirefox({ prefs = {}, acceptInsecureCerts = false } = {}) {
    const puppeteer = (await import('puppeteer-core')).default;
    return puppeteer.launch({
        browser: 'firefox',
        acceptInsecureCerts,
        executablePath: FIREFOX,
        headless: true,
        extraPrefsFirefox: { ...FIREFOX_PREFS, ...prefs },
        protocolTimeout: 30000,
        timeout: 30000,
    });
}

/* In the cluster pass (QR_BROWSER_CLUSTER=1) screenshots are named
 * cluster-NAME.png, beside (not over) the first pass's. */
export async function screenshot(page, name) {
    await mkdir(ARTIFACTS, { recursive: true });
    const prefix = process.env.QR_BROWSER_CLUSTER === '1' ? 'cluster-' : '';
    const file = path.join(ARTIFACTS, `${prefix}${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
}

export async function qrState(page) {
    return page.evaluate(() => window.quietroom && window.quietroom.state);
}

export async function waitState(page, state, timeout = 15000) {
    return waitFor(`state ${state}`, async () => (await qrState(page)) === state, { timeout });
}

export async function visible(page, testid) {
    return page.evaluate((id) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        if (!el) return false;
        return !el.closest('[hidden]') && el.getClientRects().length > 0;
    }, testid);
}

export async function waitVisible(page, testid, timeout = 15000) {
    return waitFor(`[data-testid=${testid}] visible`, () => visible(page, testid), { timeout });
}

export async function text(page, testid) {
    return page.evaluate((id) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        return el ? el.textContent.trim() : null;
    }, testid);
}

/* Waits until the control is visible and enabled (Join stays disabled while
 * the camera prompt is open; Puppeteer would click a disabled button). */
export async function click(page, testid) {
    await waitVisible(page, testid);
    await waitFor(`[data-testid=${testid}] enabled`, () => page.evaluate((id) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        return !!el && !el.disabled;
    }, testid));
    await page.click(`[data-testid="${testid}"]`);
}

/* Inbound media per peer, from the page's own RTCPeerConnections. */
export async function mediaStats(page) {
    return page.evaluate(async () => {
        const out = { framesDecoded: 0, videoPackets: 0, audioPackets: 0, audioBytes: 0, peers: {} };
        for (const [id, pc] of window.quietroom.peerConnections) {
            const report = await pc.getStats();
            const p = { framesDecoded: 0, videoPackets: 0, audioPackets: 0, connectionState: pc.connectionState, ice: pc.iceConnectionState };
            report.forEach((s) => {
                if (s.type !== 'inbound-rtp') return;
                if (s.kind === 'video') {
                    p.framesDecoded += s.framesDecoded || 0;
                    p.videoPackets += s.packetsReceived || 0;
                } else if (s.kind === 'audio') {
                    p.audioPackets += s.packetsReceived || 0;
                    out.audioBytes += s.bytesReceived || 0;
                }
            });
            out.framesDecoded += p.framesDecoded;
            out.videoPackets += p.videoPackets;
            out.audioPackets += p.audioPackets;
            out.peers[id] = p;
        }
        return out;
    });
}

/* Waits (up to `timeout` ms) until video frames are being decoded and audio
 * packets received: both counters rising over a `window` ms interval.
 * Returns the two samples of that interval. */
export async function assertMediaFlowing(page, { timeout = 20000, window = 2000 } = {}) {
    const deadline = Date.now() + timeout;
    let first = await mediaStats(page), second = first;
    for (;;) {
        await sleep(window);
        second = await mediaStats(page);
        if (first.framesDecoded > 0 && first.audioPackets > 0 &&
            second.framesDecoded > first.framesDecoded && second.audioPackets > first.audioPackets) {
            return [first, second];
        }
        if (Date.now() > deadline) break;
        first = second;
    }
    const pcs = await page.evaluate(() => Array.from(window.quietroom.peerConnections, ([id, pc]) =>
        `${id}: signaling ${pc.signalingState}, ice ${pc.iceConnectionState}, connection ${pc.connectionState}`).join('; '));
    const events = await page.evaluate(() => window.quietroom.events.join('\n    '));
    throw new Error(`${page.qrName || 'page'}: media not flowing within ${timeout} ms ` +
        `(frames ${first.framesDecoded} -> ${second.framesDecoded}, audio packets ${first.audioPackets} -> ${second.audioPackets}; ${pcs})` +
        `\n  events:\n    ${events}\n  ICE:\n    ${(await icePairs(page)).join('\n    ')}`);
}

/* Every candidate pair of the page's peer connections, the selected one
 * marked: which local socket checks and media leave from, and what came
 * back on each. For a failure's message (loopback addresses only). */
export async function icePairs(page) {
    return page.evaluate(async () => {
        const lines = [];
        for (const [id, pc] of window.quietroom.peerConnections) {
            const report = await pc.getStats();
            const byId = new Map();
            let selected = null;
            report.forEach((s) => {
                byId.set(s.id, s);
                if (s.type === 'transport') selected = s.selectedCandidatePairId;
            });
            const addr = (c) => (c ? `${c.address}:${c.port}/${c.candidateType}` : '?');
            report.forEach((s) => {
                if (s.type !== 'candidate-pair') return;
                lines.push(`${id} ${s.id === selected ? '*' : ' '} ${addr(byId.get(s.localCandidateId))} -> ` +
                    `${addr(byId.get(s.remoteCandidateId))} ${s.state}${s.nominated ? ' nominated' : ''} ` +
                    `req ${s.requestsSent}/${s.responsesReceived} in ${s.requestsReceived} ` +
                    `bytes ${s.bytesSent}/${s.bytesReceived} last ${Math.round(performance.timeOrigin + performance.now() - (s.lastPacketReceivedTimestamp || 0))} ms ago`);
            });
        }
        return lines;
    });
}

/* An SDP as signaling delivers it (docs/protocol.md §6): every a=candidate
 * names the relay's media address and port, no other address appears in c=,
 * a=rtcp: or o= lines, a=ice-lite is there, the audio-level header extensions
 * are gone and a DTLS fingerprint is left. Throws on the first violation;
 * returns the candidate lines.
 * tcpPort: the relay's ICE-TCP port. The SDP must then also carry a passive
 * TCP host candidate on it (RFC 6544), below every UDP candidate in
 * priority; without it, every candidate names relayPort. */
export function checkRelayOnlySdp(sdp, relayHost, relayPort, { tcpPort = null } = {}) {
    if (!sdp) throw new Error('no SDP was received');
    const lines = sdp.split(/\r?\n/);
    const cands = lines.filter((l) => l.startsWith('a=candidate:'));
    if (!cands.length) throw new Error('the SDP has no candidate at all');
    const prio = { udp: [], tcp: [] };
    for (const c of cands) {
        const f = c.split(' ');
        // a=candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ TYPE
        const tcp = tcpPort !== null && f[2].toLowerCase() === 'tcp';
        if (f[4] !== relayHost || Number(f[5]) !== (tcp ? tcpPort : relayPort)) {
            throw new Error(`a candidate that is not the relay's: ${c}`);
        }
        if (tcp && !/ typ host tcptype passive$/.test(c)) throw new Error(`not a passive TCP host candidate: ${c}`);
        if (tcpPort !== null && !tcp && f[2].toLowerCase() !== 'udp') throw new Error(`a candidate of neither UDP nor TCP: ${c}`);
        prio[tcp ? 'tcp' : 'udp'].push(Number(f[3]));
    }
    if (tcpPort !== null) {
        if (!prio.udp.length || !prio.tcp.length) throw new Error(`the SDP lacks the relay's UDP or TCP candidate: ${cands.join(' | ')}`);
        if (Math.max(...prio.tcp) >= Math.min(...prio.udp)) throw new Error(`a TCP candidate is not below every UDP one: ${cands.join(' | ')}`);
    }
    for (const l of lines.filter((x) => x.startsWith('c='))) {
        const addr = l.split(' ')[2];
        if (addr !== relayHost && addr !== '0.0.0.0') throw new Error(`a connection address that is not the relay's: ${l}`);
    }
    for (const l of lines.filter((x) => x.startsWith('a=rtcp:'))) {
        const addr = l.split(' ')[2];
        if (addr !== undefined && addr !== relayHost && addr !== '0.0.0.0') throw new Error(`an RTCP address that is not the relay's: ${l}`);
    }
    // The rewrite puts 0.0.0.0 in the origin line, whatever the browser wrote.
    const origin = lines.find((l) => l.startsWith('o='));
    if (!origin || !origin.endsWith(' IN IP4 0.0.0.0')) throw new Error(`the origin line keeps an address: ${origin}`);
    // DTLS stays end to end: the sender's fingerprint is still there.
    if (!lines.some((l) => l.startsWith('a=fingerprint:'))) throw new Error('the SDP lost its DTLS fingerprint');
    if (!lines.includes('a=ice-lite')) throw new Error('the SDP lacks a=ice-lite');
    if (lines.some((l) => /^a=extmap:\d+\S* urn:ietf:params:rtp-hdrext:(ssrc|csrc)-audio-level/.test(l))) {
        throw new Error('the SDP still carries an audio-level header extension');
    }
    return cands;
}

/* Layout at the current viewport: no horizontal scrolling, and each element
 * named by data-testid is rendered and fully inside the viewport's width;
 * buttons and fields are at least 24 CSS px in both directions (WCAG 2.5.8).
 * Returns the problems. */
export async function layoutProblems(page, testids) {
    return page.evaluate((ids) => {
        const problems = [];
        const over = document.documentElement.scrollWidth - window.innerWidth;
        if (over > 0) problems.push(`${over}px of horizontal overflow`);
        for (const id of ids) {
            const el = document.querySelector(`[data-testid="${id}"]`);
            const r = el && el.getBoundingClientRect();
            if (!r || r.width === 0 || el.closest('[hidden]')) problems.push(`${id} not shown`);
            else if (el.matches('button, select, input') && (r.width < 24 || r.height < 24)) problems.push(`${id} is ${r.width}x${r.height}`);
            else if (r.left < 0 || r.right > window.innerWidth + 0.5) problems.push(`${id} spans x ${r.left}..${r.right} of ${window.innerWidth}`);
        }
        return problems;
    }, testids);
}

/* Buttons, fields, meters and videos without an accessible name (a label,
 * aria-label or aria-labelledby, or text for a button). Returns their ids. */
export async function unnamedControls(page) {
    return page.evaluate(() => Array.from(document.querySelectorAll('button, select, input, meter, video'))
        .filter((el) => !(el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') ||
            (el.labels && el.labels.length) || (el.tagName === 'BUTTON' && el.textContent.trim())))
        .map((el) => el.id || el.dataset.testid || el.outerHTML.slice(0, 60)));
}

/* Boxes at the current viewport (getBoundingClientRect), for issue 14's
 * layout rules:
 * - `required` (data-testids): each must be shown (not under [hidden], a
 *   box of its own) and fully inside the viewport, both axes, without
 *   scrolling;
 * - allControls: every other shown control of the page (button, input,
 *   select, textarea, a[href], [tabindex] >= 0) must be fully inside too,
 *   or at least once focused (a skip link shows itself on focus), or
 *   once the panel that scrolls it (not the page) is scrolled to it;
 * - noScroll: the page itself does not scroll either way.
 * Returns the problems (empty when all hold). */
export async function boxProblems(page, { required = [], allControls = false, noScroll = false } = {}) {
    return page.evaluate(([ids, all, noScroll]) => {
        const problems = [];
        const W = window.innerWidth, H = window.innerHeight;
        const shown = (el) => {
            if (el.closest('[hidden]')) return false;
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.height === 0) return false;
            const cs = getComputedStyle(el);
            return cs.visibility !== 'hidden' && cs.display !== 'none';
        };
        const name = (el) => el.dataset.testid || el.id || el.outerHTML.slice(0, 50);
        const outside = (el) => {
            const r = el.getBoundingClientRect();
            if (r.left < -0.5 || r.top < -0.5 || r.right > W + 0.5 || r.bottom > H + 0.5) {
                return `${name(el)} at x ${Math.round(r.left)}..${Math.round(r.right)}, y ${Math.round(r.top)}..${Math.round(r.bottom)} of ${W}x${H}`;
            }
            return null;
        };
        if (noScroll) {
            const se = document.scrollingElement;
            if (se.scrollHeight > H + 1) problems.push(`the page scrolls: ${se.scrollHeight}px tall in ${H}`);
            if (se.scrollWidth > W + 1) problems.push(`the page scrolls: ${se.scrollWidth}px wide in ${W}`);
        }
        const seen = new Set();
        for (const id of ids) {
            const el = document.querySelector(`[data-testid="${id}"]`);
            if (!el) { problems.push(`${id} missing`); continue; }
            seen.add(el);
            if (!shown(el)) { problems.push(`${id} not shown`); continue; }
            const o = outside(el);
            if (o) problems.push(o);
        }
        if (all) {
            for (const el of document.querySelectorAll('button, input, select, textarea, a[href], [tabindex]')) {
                if (seen.has(el) || el.tabIndex < 0 || el.type === 'hidden' || !shown(el)) continue;
                let o = outside(el);
                if (o) {
                    // A control that comes into view when focused (a skip
                    // link) is where a keyboard user meets it: measured so.
                    const before = document.activeElement;
                    el.focus({ preventScroll: true });
                    if (document.activeElement === el) o = outside(el) && `${outside(el)} (also when focused)`;
                    el.blur();
                    if (before && before.focus) before.focus({ preventScroll: true });
                }
                if (o) {
                    // A control in a panel that scrolls (a long list of
                    // people) is reached by scrolling that panel, not the
                    // page: measured scrolled to.
                    let sc = el.parentElement;
                    while (sc && !(/(auto|scroll)/.test(getComputedStyle(sc).overflowY + getComputedStyle(sc).overflowX) &&
                        (sc.scrollHeight > sc.clientHeight || sc.scrollWidth > sc.clientWidth))) sc = sc.parentElement;
                    if (sc && sc !== document.body && sc !== document.documentElement) {
                        const keep = [sc.scrollTop, sc.scrollLeft, window.scrollX, window.scrollY];
                        el.scrollIntoView({ block: 'nearest', inline: 'nearest' });
                        const moved = window.scrollX !== keep[2] || window.scrollY !== keep[3];
                        o = (moved || outside(el)) ? `${o} (also with its panel scrolled to it${moved ? ': the page scrolled' : ''})` : null;
                        [sc.scrollTop, sc.scrollLeft] = [keep[0], keep[1]];
                        window.scrollTo(keep[2], keep[3]);
                    }
                }
                if (o) problems.push(o);
            }
        }
        return problems;
    }, [required, allControls, noScroll]);
}

/* Overlaps of the self view (the [data-testid=self-view] container, or
 * self-video without it, and every shown element inside) with any shown
 * remote video's box: "no remote video is covered by the self view".
 * Returns the problems; also how many remote videos were measured. */
export async function selfViewOverlaps(page) {
    return page.evaluate(() => {
        const shown = (el) => !el.closest('[hidden]') && el.getBoundingClientRect().width > 0 &&
            getComputedStyle(el).visibility !== 'hidden';
        const self = document.querySelector('[data-testid="self-view"]') || document.querySelector('[data-testid="self-video"]');
        const remotes = Array.from(document.querySelectorAll('[data-testid="remote-video"]')).filter(shown);
        const problems = [];
        if (!self || !shown(self)) return { problems, remotes: remotes.length, self: false };
        const parts = [self, ...self.querySelectorAll('*')].filter(shown);
        for (const v of remotes) {
            const b = v.getBoundingClientRect();
            for (const el of parts) {
                const a = el.getBoundingClientRect();
                const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
                const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
                if (w > 0.5 && h > 0.5) {
                    const who = v.closest('[data-participant]');
                    problems.push(`self view ${el.dataset.testid || el.tagName.toLowerCase()} covers ${Math.round(w)}x${Math.round(h)} px of ` +
                        `the remote video of ${who ? who.dataset.participant : '?'}`);
                    break;
                }
            }
        }
        return { problems, remotes: remotes.length, self: true };
    });
}

/* Clicks a call control wherever the page keeps it: since issue 14 the
 * secondary ones (settings, audio-only, camera-back, fullscreen, pip) are
 * in the "more" menu (more-menu), opened by `more` first when it is
 * closed. Other controls: click() as before. */
export async function clickControl(page, testid) {
    const inMenu = await page.evaluate((id) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        const menu = el && el.closest('[data-testid="more-menu"]');
        return !!menu && menu.hidden;
    }, testid);
    if (inMenu) await click(page, 'more');
    await click(page, testid);
}
