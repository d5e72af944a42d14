/* The connection check (issue 18 item 4, /docs/protocol.md "Connection
 * check"): a short loopback call through the relay this person's visit
 * will use. Two RTCPeerConnections in this page; PC1 sends a generated
 * picture (a canvas with a moving pattern, 640x360 at 30 fps: no camera
 * needed) and a tone (an OscillatorNode) through the relay to PC2. The
 * server rewrites both SDPs exactly as for a call (relay credentials of a
 * session of this seat's own, relay candidates only), so the check takes
 * the same path and transport (UDP, or ICE-TCP where UDP is blocked) as the
 * visit would.
 *
 *   -> check_offer  {sdp: PC1's offer}     <- check_offer  {sdp} (PC2's remote offer)
 *   -> check_answer {sdp: PC2's answer}    <- check_answer {sdp} (PC1's remote answer)
 *   ... ICE + DTLS connect, durationMs of getStats sampling ...
 *   -> check_result {video, transport, loss_pct, rtt_ms, kbps}
 *
 * Never throws: every failure is a result with video "none" and a reason.
 * Logs nothing (no SDP, no addresses). Everything it creates (peer
 * connections, generated tracks, the audio context, the drawing timer, the
 * message subscription) is released before it returns. */

import { RTC_CONFIG } from './peers.js';

/* How long each phase may take. Signaling answers in milliseconds; ICE
 * through a reachable relay connects in well under a second on UDP, and in
 * one to three seconds where the browser must fall back to ICE-TCP after its
 * UDP checks went unanswered. 10 s without a connection means the visit
 * would not connect either. */
const SIGNAL_WAIT_MS = 10000;
const CONNECT_WAIT_MS = 10000;
const SAMPLE_EVERY_MS = 500;
/* The bitrate reached is the best rate held over this long (a keyframe's
 * burst over 500 ms says nothing about what the path carries). */
const RATE_WINDOW_MS = 2000;
/* The sender's bandwidth estimate counts after this much media: a path that
 * carries less than the browser's starting estimate has brought it down by
 * then (delay-based congestion control reacts within a second or two). */
const ESTIMATE_AFTER_MS = 3000;

/* The verdict, in plain terms:
 *  - "none": no connection to the relay within CONNECT_WAIT_MS (or the
 *    server refused the check: no relay, too many checks, an SDP it could
 *    not make safe), or connected but not one video packet arrived. Video
 *    (and audio) will not work.
 *  - "good": all of
 *      kbps >= GOOD_KBPS (250). A 640x360 picture at 30 fps is watchable
 *        from about 250-300 kbit/s with VP8/H.264; below that the encoder
 *        drops resolution and frame rate. Browsers start their bandwidth
 *        estimate at about 300 kbit/s, so a path that delivers less than
 *        250 within the check is really limiting, not merely ramping up.
 *        (What arrived, or the sender's estimate of the path where it is
 *        higher: see verdictOf.)
 *      loss_pct < GOOD_LOSS_PCT (5). Retransmissions and error concealment
 *        hide a few percent; beyond 5 % the picture freezes and smears
 *        visibly, while Opus audio is still intelligible up to 10-20 %.
 *      rtt_ms < GOOD_RTT_MS (400). This is one leg (browser to relay and
 *        back); the other person's leg adds to it. ITU-T G.114 puts
 *        conversation at ease below about 150 ms one way (300 ms round
 *        trip) end to end, and a leg of 400 ms already makes talking over
 *        each other likely and slows the recovery of lost video.
 *  - "weak": connected, video arrived, but below one of those: audio will
 *    be fine (it needs ~40 kbit/s and tolerates loss), video may be poor
 *    (the page may suggest audio-only). */
export const GOOD_KBPS = 250;
export const GOOD_LOSS_PCT = 5;
export const GOOD_RTT_MS = 400;

/* The sentence for the person, as a key of the page's message catalogue
 * (i18n.js): the verdict's, or, when the check could not run at all (the
 * server refused it or did not answer, the page is leaving, the browser
 * lacks what it needs), one that says so: that is not the network's fault
 * and says nothing about video. */
export const CHECK_SENTENCE = Object.freeze({
    good: 'check.good',             // "Your connection is good for video."
    weak: 'check.weak',             // "Video may be choppy on this connection; sound should work."
    none: 'check.none',             // "Video will not work on this connection. …"
    failed: 'check.failed',         // "The connection check could not run. You can still join."
    check_limit: 'err.checkLimit',  // "The connection check was run as many times as allowed for this visit."
});
/* Reasons for "none" that are about this network: no connection to the
 * relay, or no video through it. Any other reason means the check did not
 * run (CHECK_SENTENCE.failed). */
const NETWORK_REASONS = new Set(['timeout', 'ice_failed', 'no_video']);

const TIMEOUT = 'timeout';       // ICE did not connect in time
const NO_ANSWER = 'no_answer';   // signaling did not answer a check message

function clampInt(v, lo, hi) {
    if (!Number.isFinite(v)) return lo;
    return Math.min(hi, Math.max(lo, Math.round(v)));
}

/* The moving test picture: a drifting gradient, moving bars and a band of
 * changing blocks, so that the encoder has real work (a still or flat
 * picture would need a few kbit/s and show nothing about the path). */
function makePicture() {
    const W = 640, H = 360;
    const canvas = document.createElement('canvas');
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext('2d');
    let frame = 0;
    let seed = 12345;
    const rnd = () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed / 0x7fffffff;
    };
    const draw = () => {
        frame++;
        const x = (frame * 7) % W;
        const g = ctx.createLinearGradient(x - W, 0, x + W, H);
        g.addColorStop(0, '#1d3557');
        g.addColorStop(0.5, '#a8dadc');
        g.addColorStop(1, '#457b9d');
        ctx.fillStyle = g;
        ctx.fillRect(0, 0, W, H);
        for (let i = 0; i < 6; i++) {
            ctx.fillStyle = `hsl(${(frame * 3 + i * 60) % 360} 70% 55%)`;
            ctx.fillRect((frame * (3 + i) + i * 97) % W, 30 + i * 45, 70, 30);
        }
        // Changing detail: 96 blocks of 20x20 in the lower third.
        for (let i = 0; i < 96; i++) {
            const v = Math.floor(rnd() * 255);
            ctx.fillStyle = `rgb(${v},${(v * 7) % 255},${255 - v})`;
            ctx.fillRect((i % 32) * 20, H - 60 + Math.floor(i / 32) * 20, 20, 20);
        }
        ctx.fillStyle = '#fff';
        ctx.font = '28px sans-serif';
        ctx.fillText(String(frame), 20, 40);
    };
    draw();
    // A timer, not requestAnimationFrame: the canvas is not on screen.
    const timer = setInterval(draw, 33);
    const stream = canvas.captureStream(30);
    return { stream, stop: () => clearInterval(timer) };
}

/* A quiet 440 Hz tone as a microphone stand-in (never played here). */
function makeTone() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    const ac = new Ctx();
    const osc = ac.createOscillator();
    const gain = ac.createGain();
    gain.gain.value = 0.1;
    osc.frequency.value = 440;
    const dest = ac.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    // Without a user gesture the context may start suspended.
    if (ac.state === 'suspended') ac.resume().catch(() => {});
    return {
        track: dest.stream.getAudioTracks()[0] || null,
        stop: () => {
            try { osc.stop(); } catch (e) { /* stopped */ }
            ac.close().catch(() => {});
        },
    };
}

class CheckError extends Error {
    constructor(reason) {
        super(reason);
        this.reason = reason;
    }
}

/* Incoming messages, waited for by type. An `error` while a reply is
 * awaited fails the check with its code (no_relay_available, check_limit,
 * sdp_*, not_waiting…): the server answers each check message with either
 * the reply or an error. */
class Inbox {
    constructor() {
        this.waiter = null;
        this.closed = false;
    }

    onMessage(msg) {
        if (!msg || typeof msg !== 'object' || !this.waiter) return;
        const w = this.waiter;
        if (msg.type === w.type && typeof msg.sdp === 'string') {
            this.waiter = null;
            clearTimeout(w.timer);
            w.resolve(msg.sdp);
        } else if (msg.type === 'error') {
            this.waiter = null;
            clearTimeout(w.timer);
            w.reject(new CheckError(typeof msg.code === 'string' && msg.code ? msg.code : 'error'));
        }
    }

    next(type, ms) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.waiter = null;
                reject(new CheckError(NO_ANSWER));
            }, ms);
            this.waiter = { type, resolve, reject, timer };
        });
    }

    cancel() {
        if (!this.waiter) return;
        clearTimeout(this.waiter.timer);
        this.waiter = null;
    }
}

function connected(pc) {
    // connectionState (ICE and DTLS) where there is one; ICE otherwise.
    const st = pc.connectionState !== undefined ? pc.connectionState : pc.iceConnectionState;
    return st === 'connected' || st === 'completed';
}

function failed(pc) {
    return pc.connectionState === 'failed' || pc.iceConnectionState === 'failed' || pc.signalingState === 'closed';
}

function waitConnected(pcs, ms) {
    return new Promise((resolve, reject) => {
        let timer = null, poll = null;
        const done = (err) => {
            clearTimeout(timer);
            clearInterval(poll);
            for (const pc of pcs) {
                pc.removeEventListener('connectionstatechange', check);
                pc.removeEventListener('iceconnectionstatechange', check);
            }
            if (err) reject(err); else resolve();
        };
        const check = () => {
            if (pcs.some(failed)) done(new CheckError('ice_failed'));
            else if (pcs.every(connected)) done(null);
        };
        for (const pc of pcs) {
            pc.addEventListener('connectionstatechange', check);
            pc.addEventListener('iceconnectionstatechange', check);
        }
        timer = setTimeout(() => done(new CheckError(TIMEOUT)), ms);
        // Belt and braces: some versions skip an event when states move fast.
        poll = setInterval(check, 250);
        check();
    });
}

/* What one getStats of each side says: PC2's inbound video, the selected
 * candidate pairs of both. */
async function sample(pc1, pc2) {
    const out = {
        t: performance.now(), bytes: 0, packets: 0, lost: 0, audioPackets: 0,
        pairRtt: null, remoteRtt: null, transports: [], estimate: null,
    };
    const [r1, r2] = await Promise.all([pc1.getStats(), pc2.getStats()]);
    r2.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        const kind = s.kind || s.mediaType;
        if (kind === 'video') {
            out.bytes += s.bytesReceived || 0;
            out.packets += s.packetsReceived || 0;
            out.lost += Math.max(0, s.packetsLost || 0);
        } else if (kind === 'audio') {
            out.audioPackets += s.packetsReceived || 0;
        }
    });
    for (const [i, report] of [r1, r2].entries()) {
        const byId = new Map();
        let selectedId = null;
        report.forEach((s) => {
            byId.set(s.id, s);
            if (s.type === 'transport' && s.selectedCandidatePairId) selectedId = s.selectedCandidatePairId;
        });
        let pair = selectedId ? byId.get(selectedId) : null;
        if (!pair) {
            // Firefox marks the selected pair instead.
            report.forEach((s) => { if (s.type === 'candidate-pair' && s.selected) pair = s; });
        }
        if (pair) {
            let rtt = Number.isFinite(pair.currentRoundTripTime) ? pair.currentRoundTripTime : null;
            if (rtt === null && pair.responsesReceived > 0 && Number.isFinite(pair.totalRoundTripTime)) {
                rtt = pair.totalRoundTripTime / pair.responsesReceived;
            }
            if (rtt !== null) out.pairRtt = Math.max(out.pairRtt || 0, rtt);
            // The sender's bandwidth estimate for the path (Chromium).
            if (i === 0 && Number.isFinite(pair.availableOutgoingBitrate)) out.estimate = pair.availableOutgoingBitrate;
            const local = byId.get(pair.localCandidateId);
            const proto = local && (local.protocol || local.transport);
            if (proto) out.transports.push(String(proto).toLowerCase());
        }
        report.forEach((s) => {
            // PC1's view of PC2's receiver reports: the loop passes the
            // relay twice, so half of it is one leg.
            if (s.type === 'remote-inbound-rtp' && Number.isFinite(s.roundTripTime) && s.roundTripTime > 0) {
                out.remoteRtt = Math.max(out.remoteRtt || 0, s.roundTripTime / 2);
            }
        });
    }
    return out;
}

/* The verdict from the measured numbers (see the thresholds above).
 * estimateKbps: the sender's own estimate of what the path carries
 * (Chromium's availableOutgoingBitrate; 0 where the browser gives none).
 * The bitrate criterion takes the higher of the two: a sender whose CPU
 * could not encode the picture any faster (a busy laptop or phone; Chromium
 * then lowers resolution and frame rate, and with them the bitrate) has not
 * found a network that cannot carry video, while a path that loses packets
 * or queues them lowers the estimate too. */
export function verdictOf({ connectedOk, videoPackets, kbps, lossPct, rttMs, estimateKbps = 0 }) {
    if (!connectedOk || videoPackets <= 0) return 'none';
    if (Math.max(kbps, estimateKbps) >= GOOD_KBPS && lossPct < GOOD_LOSS_PCT && rttMs < GOOD_RTT_MS) return 'good';
    return 'weak';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Runs the check. send(obj) sends a message on the page's authenticated
 * signaling connection (returns false, or throws, if it could not);
 * subscribe(fn) registers fn for every incoming message and returns a
 * function that unregisters it. stream: optional, the person's own camera
 * and microphone to send instead of the generated picture and tone (its
 * tracks are not stopped here). onProgress(phase): optional, 'signaling',
 * 'connecting', 'measuring', 'done'. signal: optional AbortSignal; an
 * aborted check (the page is leaving) stops at once, releases everything
 * and sends no result (reason 'aborted').
 *
 * Resolves to {video, transport, loss_pct, rtt_ms, kbps, sentence, reason,
 * estimate_kbps}: the first five as sent in check_result (integers),
 * estimate_kbps the sender's bandwidth estimate (null: none), sentence a key of the
 * message catalogue (CHECK_SENTENCE), reason null or why video is "none"
 * (about the network: 'timeout' (no ICE connection within 10 s),
 * 'ice_failed', 'no_video'; the check did not run: 'no_answer' (signaling
 * did not answer), 'send_failed', 'aborted', 'unsupported', 'error', or the
 * server's error code, such as 'no_relay_available', 'check_limit',
 * 'sdp_…'). */
export async function runConnectionCheck({ send, subscribe, stream = null, durationMs = 6000, onProgress = null, signal = null } = {}) {
    const progress = (p) => { try { if (onProgress) onProgress(p); } catch (e) { /* the caller's */ } };
    const inbox = new Inbox();
    let unsubscribe = null;
    let pc1 = null, pc2 = null, picture = null, tone = null;
    let result = { video: 'none', transport: 'none', loss_pct: 0, rtt_ms: 0, kbps: 0 };
    let reason = null;
    let estimateKbps = null;
    let serverStarted = false; // the server answered check_offer: a check session exists

    // Every wait below races the caller's abort.
    let onAbort = null;
    const aborted = new Promise((_, reject) => {
        onAbort = () => reject(new CheckError('aborted'));
        if (signal && signal.aborted) onAbort();
        else if (signal && signal.addEventListener) signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => {});
    const guard = (p) => Promise.race([p, aborted]);

    const sendOk = (obj) => {
        let ok;
        try { ok = send(obj); } catch (e) { ok = false; }
        if (ok === false) throw new CheckError('send_failed');
    };

    try {
        if (typeof RTCPeerConnection !== 'function' || typeof send !== 'function' || typeof subscribe !== 'function') {
            throw new CheckError('unsupported');
        }
        unsubscribe = subscribe((msg) => inbox.onMessage(msg));

        // What PC1 sends: the person's own tracks if given, else generated ones.
        let video = stream && stream.getVideoTracks ? stream.getVideoTracks().find((t) => t.readyState === 'live') : null;
        let audio = stream && stream.getAudioTracks ? stream.getAudioTracks().find((t) => t.readyState === 'live') : null;
        const sendStream = new MediaStream();
        if (!video) {
            picture = makePicture();
            video = picture.stream.getVideoTracks()[0];
        }
        if (!audio) {
            try { tone = makeTone(); } catch (e) { tone = null; }
            audio = tone && tone.track;
        }
        if (!video) throw new CheckError('unsupported');
        sendStream.addTrack(video);
        if (audio) sendStream.addTrack(audio);

        pc1 = new RTCPeerConnection({ ...RTC_CONFIG });
        pc2 = new RTCPeerConnection({ ...RTC_CONFIG });
        if (audio) pc1.addTransceiver(audio, { direction: 'sendonly', streams: [sendStream] });
        pc1.addTransceiver(video, { direction: 'sendonly', streams: [sendStream] });

        progress('signaling');
        const offer = await guard(pc1.createOffer());
        await guard(pc1.setLocalDescription(offer));
        const offerBack = inbox.next('check_offer', SIGNAL_WAIT_MS);
        sendOk({ type: 'check_offer', sdp: pc1.localDescription.sdp });
        const remoteOffer = await guard(offerBack);
        serverStarted = true;
        await guard(pc2.setRemoteDescription({ type: 'offer', sdp: remoteOffer }));
        const answer = await guard(pc2.createAnswer());
        await guard(pc2.setLocalDescription(answer));
        const answerBack = inbox.next('check_answer', SIGNAL_WAIT_MS);
        sendOk({ type: 'check_answer', sdp: pc2.localDescription.sdp });
        const remoteAnswer = await guard(answerBack);
        await guard(pc1.setRemoteDescription({ type: 'answer', sdp: remoteAnswer }));

        progress('connecting');
        await guard(waitConnected([pc1, pc2], CONNECT_WAIT_MS));

        progress('measuring');
        const samples = [await guard(sample(pc1, pc2))];
        const end = performance.now() + durationMs;
        while (performance.now() < end) {
            await guard(sleep(SAMPLE_EVERY_MS));
            if (pc1.signalingState === 'closed' || pc2.signalingState === 'closed') break;
            samples.push(await guard(sample(pc1, pc2)));
        }
        const last = samples[samples.length - 1];
        // The best rate held over RATE_WINDOW_MS (or the whole run if shorter).
        let kbps = 0;
        for (let i = 1; i < samples.length; i++) {
            let j = i;
            while (j > 0 && samples[i].t - samples[j - 1].t <= RATE_WINDOW_MS + 50) j--;
            if (j === i) j = i - 1;
            const dt = (samples[i].t - samples[j].t) / 1000;
            if (dt > 0) kbps = Math.max(kbps, ((samples[i].bytes - samples[j].bytes) * 8) / dt / 1000);
        }
        // Loss over the whole check (what is lost while connecting counts too).
        const got = last.packets, lost = Math.max(0, last.lost);
        const lossPct = got + lost > 0 ? (100 * lost) / (got + lost) : 0;
        const rtts = samples.map((s) => (s.pairRtt !== null ? s.pairRtt : s.remoteRtt)).filter((v) => v !== null);
        // The median: one late STUN answer is not the path.
        rtts.sort((a, b) => a - b);
        const rttS = rtts.length ? rtts[Math.floor(rtts.length / 2)] : 0;
        // The pairs selected at the end (a browser may nominate a TCP pair
        // first and move to UDP when its answer comes). Either leg on TCP is
        // what this network allows: UDP did not get through.
        const withPairs = samples.filter((s) => s.transports.length);
        const transports = withPairs.length ? withPairs[withPairs.length - 1].transports : [];
        const transport = transports.includes('tcp') ? 'tcp' : (transports.includes('udp') ? 'udp' : 'none');
        // The estimate at the end of the check, when the sender had the
        // longest to find out what the path carries; not after less than
        // ESTIMATE_AFTER_MS of media, when it is still the browser's
        // starting value (about 300 kbit/s) whatever the path.
        const measured = last.t - samples[0].t;
        const withEstimate = measured >= ESTIMATE_AFTER_MS ? samples.filter((s) => s.estimate !== null) : [];
        estimateKbps = withEstimate.length ? Math.round(withEstimate[withEstimate.length - 1].estimate / 1000) : null;
        const v = verdictOf({ connectedOk: true, videoPackets: last.packets, kbps, lossPct, rttMs: rttS * 1000, estimateKbps: estimateKbps || 0 });
        if (v === 'none') reason = 'no_video';
        result = {
            video: v,
            transport,
            loss_pct: clampInt(lossPct, 0, 100),
            rtt_ms: clampInt(rttS * 1000, 0, 60000),
            kbps: clampInt(kbps, 0, 1000000),
        };
    } catch (e) {
        reason = e instanceof CheckError ? e.reason : 'error';
        result = { video: 'none', transport: 'none', loss_pct: 0, rtt_ms: 0, kbps: 0 };
    } finally {
        if (signal && signal.removeEventListener && onAbort) signal.removeEventListener('abort', onAbort);
        inbox.cancel();
        for (const pc of [pc1, pc2]) {
            if (pc) try { pc.close(); } catch (e) { /* closed */ }
        }
        if (picture) {
            picture.stop();
            for (const t of picture.stream.getTracks()) t.stop();
        }
        if (tone) {
            if (tone.track) tone.track.stop();
            tone.stop();
        }
    }

    // The result goes to the server (the clinician sees it in the lobby)
    // when the check measured this network: also "none" after a connection
    // that never came up. Not when it could not run (refused: check_limit,
    // no_relay_available, an SDP the server could not make safe; no answer;
    // the page leaving): that says nothing about the network. The server
    // ends the check's relay session on the result, or 60 s after the offer.
    if (serverStarted && (reason === null || NETWORK_REASONS.has(reason))) {
        try { send({ type: 'check_result', ...result }); } catch (e) { /* signaling down: the page shows it anyway */ }
    }
    if (unsubscribe) {
        try { unsubscribe(); } catch (e) { /* the caller's */ }
    }
    progress('done');
    let sentence = CHECK_SENTENCE[result.video];
    if (reason && !NETWORK_REASONS.has(reason)) sentence = CHECK_SENTENCE[reason] || CHECK_SENTENCE.failed;
    return { ...result, sentence, reason, estimate_kbps: estimateKbps };
}
