// Helpers for the issue-18 suites (visitlinks*.test.mjs): reusable visit
// links, the waiting room that talks, audio-only, guards against mistakes.
// Driver-neutral where it can be (page.evaluate / click only), so that the
// same helpers serve Chromium (Playwright) and Firefox ESR (lib/netns.mjs).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sleep, waitFor } from './servers.mjs';
import { checkRelayOnlySdp, waitVisible, visible, text } from './browsers.mjs';

/* A page in an existing Chromium context (a second tab of the same browser
 * profile: same localStorage, its own sessionStorage), recorded as
 * chromiumPage() records its pages: console lines, every WebSocket message
 * each way (page.qrSockets), every requested URL. */
export async function tabIn(context, name) {
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
        const socket = { url: ws.url(), sent: [], received: [], closed: false };
        page.qrSockets.push(socket);
        const parse = (f) => { try { return JSON.parse(f.payload); } catch (e) { return { unparsed: String(f.payload) }; } };
        ws.on('framesent', (f) => socket.sent.push(parse(f)));
        ws.on('framereceived', (f) => socket.received.push(parse(f)));
        ws.on('close', () => { socket.closed = true; });
    });
    return page;
}

/* What went over the wire for a Chromium page, with issue 18's link check:
 * a socket begins with `check_link` (the link checked before the camera),
 * `auth` or `resume`; the token goes out only as the first message of a
 * socket (check_link or auth), at most once per socket and at most one auth
 * per page load; never in a URL; no candidate is ever sent; every offer and
 * answer received names only the relay. Returns how many SDPs were checked. */
export function checkVisitWire(page, { relayHost, relayPort, tcpPort = null, tokens }) {
    let sdps = 0;
    const where = page.qrName || 'page';
    const firstTypes = ['check_link', 'auth', 'resume'];
    for (const [i, s] of page.qrSockets.entries()) {
        if (s.sent.length && !firstTypes.includes(s.sent[0].type)) throw new Error(`${where}: socket ${i} began with ${s.sent[0].type}`);
        for (const [j, m] of s.sent.entries()) {
            if (m.type === 'candidate') throw new Error(`${where}: sent a candidate`);
            if ((m.type === 'auth' || m.type === 'check_link') && j !== 0) throw new Error(`${where}: ${m.type} after the first message of socket ${i}`);
            if (j !== 0 && tokens.some((t) => JSON.stringify(m).includes(t))) {
                throw new Error(`${where}: a token in a ${m.type} message (not the first of its socket)`);
            }
            if (j === 0 && m.type === 'resume' && tokens.some((t) => JSON.stringify(m).includes(t))) {
                throw new Error(`${where}: a token in a resume message`);
            }
        }
        for (const m of s.received) {
            if (tokens.some((t) => JSON.stringify(m).includes(t))) throw new Error(`${where}: signaling sent a token back in ${m.type}`);
            if (m.type !== 'offer' && m.type !== 'answer') continue;
            try {
                checkRelayOnlySdp(m.sdp, relayHost, relayPort, { tcpPort });
            } catch (e) {
                throw new Error(`${where}: received ${m.type} from ${m.from}: ${e.message}`);
            }
            sdps++;
        }
    }
    for (const url of page.qrRequests) {
        const sent = url.split('#')[0];
        if (/token/i.test(sent) || tokens.some((t) => sent.includes(t))) throw new Error(`${where}: a token in a requested URL`);
    }
    return sdps;
}

/* Privacy of a page's console: no token, name or SDP; no CSP violation, no
 * script error. */
export function checkConsole(lines, where, secrets) {
    for (const line of lines) {
        for (const s of secrets) if (line.includes(s)) throw new Error(`console of ${where} leaks a secret: ${line.slice(0, 80)}`);
        if (line.includes('v=0') || line.includes('a=candidate')) throw new Error(`console of ${where} shows SDP`);
        if (/Content Security Policy|Refused to/i.test(line)) throw new Error(`CSP violation in ${where}: ${line}`);
        if (line.startsWith('pageerror:')) throw new Error(`script error in ${where}: ${line}`);
    }
}

/* The page's state (window.quietroom.state), or null before the script ran. */
export async function stateOf(page) {
    return page.evaluate(() => (window.quietroom ? window.quietroom.state : null)).catch(() => null);
}

/* page.goto of a visit link (30 s: a shared machine can be slow). A
 * failure's message (Playwright puts the URL in it) never carries the
 * token: test output ends up in CI logs. */
export async function gotoLink(page, url) {
    try {
        await (page.setDefaultNavigationTimeout ? page.goto(url, { timeout: 30000 }) : page.goto(url));
    } catch (e) {
        const redact = (x) => String(x || '').replace(/token=[A-Za-z0-9._~-]+/g, 'token=(redacted)');
        throw new Error(`${page.qrName || 'page'}: opening its visit link failed: ${redact(e.message)}`);
    }
}

/* Opens a visit link and joins: waits for the pre-join screen (after the
 * link check) and the camera preview, presses Join. Returns the state the
 * page then reaches among `until` (default waiting, in-call, ended). */
export async function openAndJoin(page, url, { until = ['waiting', 'in-call', 'ended'], timeout = 20000 } = {}) {
    await gotoLink(page, url);
    const s = await waitFor('the pre-join screen (or an end)', async () => {
        const st = await stateOf(page);
        return (st === 'precall' || st === 'ended') && st;
    }, { timeout });
    if (s === 'ended') return s;
    await waitFor(`the camera preview of ${page.qrName}`, () => page.evaluate(() => {
        const v = document.getElementById('preview');
        return v && v.videoWidth > 0;
    }), { timeout });
    await page.click('[data-testid="join"]');
    return waitFor(`${page.qrName} to reach ${until.join(' or ')}`, async () => {
        const st = await stateOf(page);
        return until.includes(st) && st;
    }, { timeout });
}

/* The page's ended screen names this code (ended-code, and errorCode when
 * the page sets it). */
export async function endedCode(page) {
    return page.evaluate(() => {
        const el = document.querySelector('[data-testid="ended-code"]');
        return { text: el ? el.textContent.trim() : null, errorCode: window.quietroom.errorCode || null, state: window.quietroom.state };
    });
}

/* Counters of the page's own sending and receiving, from getStats over all
 * its peer connections: outbound video bytes, frames encoded and packets,
 * outbound audio packets, inbound audio packets and decoded video frames,
 * and the tracks on its senders. */
export async function sendStats(page) {
    return page.evaluate(async () => {
        const out = {
            videoBytesSent: 0, videoFramesEncoded: 0, videoPacketsSent: 0, audioPacketsSent: 0,
            audioPacketsReceived: 0, audioEnergyIn: 0, framesDecoded: 0, videoSenders: [], audioSenders: [],
        };
        for (const [, pc] of window.quietroom.peerConnections) {
            const report = await pc.getStats();
            report.forEach((s) => {
                if (s.type === 'outbound-rtp' && s.kind === 'video') {
                    out.videoBytesSent += s.bytesSent || 0;
                    out.videoFramesEncoded += s.framesEncoded || 0;
                    out.videoPacketsSent += s.packetsSent || 0;
                } else if (s.type === 'outbound-rtp' && s.kind === 'audio') {
                    out.audioPacketsSent += s.packetsSent || 0;
                } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
                    out.audioPacketsReceived += s.packetsReceived || 0;
                    out.audioEnergyIn += s.totalAudioEnergy || 0;
                } else if (s.type === 'inbound-rtp' && s.kind === 'video') {
                    out.framesDecoded += s.framesDecoded || 0;
                }
            });
            for (const snd of pc.getSenders()) {
                const t = snd.track;
                const d = t ? { kind: t.kind, enabled: t.enabled, readyState: t.readyState } : null;
                const tr = pc.getTransceivers().find((x) => x.sender === snd);
                const kind = t ? t.kind : (tr && tr.receiver && tr.receiver.track ? tr.receiver.track.kind : '?');
                (kind === 'video' ? out.videoSenders : out.audioSenders).push(d);
            }
        }
        return out;
    });
}

/* The local microphone track (the self view's stream), as the page holds it. */
export async function localAudio(page) {
    return page.evaluate(() => {
        const v = document.getElementById('self-video');
        const s = v && v.srcObject;
        const a = s ? s.getAudioTracks() : [];
        return a.map((t) => ({ enabled: t.enabled, readyState: t.readyState, muted: t.muted }));
    });
}

/* The audit log of signaling (one JSON object a line) and its log file,
 * both as text, from the Quietroom's temporary directory. */
export async function signalAuditText(q) {
    const file = q.replicas ? path.join(q.dir, 'signal-r1-audit.jsonl') : path.join(q.dir, 'signal-audit.jsonl');
    return readFile(file, 'utf8').catch(() => '');
}

export async function signalLogText(q) {
    return readFile(path.join(q.dir, q.replicas ? 'signal-r1.log' : 'signal.log'), 'utf8').catch(() => '');
}

export async function relayLogText(q) {
    return readFile(path.join(q.dir, 'relay.log'), 'utf8').catch(() => '');
}

/* /metrics of signaling's ops listener (Bearer token). */
export async function metricsText(opsBase, token) {
    const r = await fetch(`${opsBase}/metrics`, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(3000) });
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    return r.text();
}

/* Waits until the element is visible and its text matches. */
export async function waitText(page, testid, re, timeout = 10000) {
    await waitVisible(page, testid, timeout);
    return waitFor(`[data-testid=${testid}] to match ${re}`, async () => {
        const t = await text(page, testid);
        return re.test(t || '') && t;
    }, { timeout });
}

/* Over `ms`, the element never shows text matching re (polling every 100 ms). */
export async function neverShows(page, testid, re, ms) {
    const until = Date.now() + ms;
    while (Date.now() < until) {
        if (await visible(page, testid) && re.test((await text(page, testid)) || '')) return false;
        await sleep(100);
    }
    return true;
}

/* The page's event log as one string, for a failure's message. */
export async function eventsOf(page) {
    return page.evaluate(() => (window.quietroom ? window.quietroom.events.join('\n    ') : '(no quietroom)')).catch((e) => e.message);
}

/* Audio-only was just turned on in `sender`: after 1 s to settle, over 3 s
 * (sampled each second) the sender's outgoing video bytes (getStats
 * outbound-rtp) must not grow and the receiver must decode no new frame,
 * while the receiver's audio packets keep coming (> 50 in 3 s). Throws with
 * the series; returns the first and last samples of each side. */
export async function audioOnlyWindow(sender, receiver) {
    await sleep(1000);
    const series = [];
    for (let i = 0; i < 4; i++) {
        if (i) await sleep(1000);
        series.push({ s: await sendStats(sender), r: await sendStats(receiver) });
    }
    const [first, last] = [series[0], series[series.length - 1]];
    const show = () => JSON.stringify(series.map(({ s, r }) => ({
        videoBytesSent: s.videoBytesSent, framesEncoded: s.videoFramesEncoded, videoSenders: s.videoSenders,
        peerFramesDecoded: r.framesDecoded, peerAudioPackets: r.audioPacketsReceived,
    })));
    const where = `${sender.qrName} in audio-only, each second`;
    if (last.s.videoBytesSent !== first.s.videoBytesSent) throw new Error(`${where}: still sends video (outbound-rtp bytesSent grows): ${show()}`);
    if (last.r.framesDecoded !== first.r.framesDecoded) throw new Error(`${where}: ${receiver.qrName} still decodes its video: ${show()}`);
    if (!(last.r.audioPacketsReceived > first.r.audioPacketsReceived + 50)) throw new Error(`${where}: ${receiver.qrName} receives too little audio: ${show()}`);
    return { a: first.s, b: last.s, da: first.r, db: last.r };
}
