/* One RTCPeerConnection per peer. The server tells which side is the
 * `initiator` (it sends the first offer). Offers and answers go through the
 * server, which rewrites them: the relay's ICE credentials and candidates
 * replace the browser's, so local candidates are never sent at all.
 *
 * Renegotiation (ICE restart after a network drop, a track appearing) may be
 * started by either side. If both offer at once, the initiator is
 * "impolite" (ignores the colliding offer) and the other side drops its own
 * offer and answers; an offer left unanswered is made again after a few
 * seconds, which also covers an offer the server could not deliver while the
 * peer was away (the server keeps no offer). */

import { CHANNEL } from './channel.js';

export const RTC_CONFIG = Object.freeze({
    bundlePolicy: 'max-bundle',
    rtcpMuxPolicy: 'require',
    iceServers: [],
});

const ANSWER_WAIT_MS = 5000;
const MAX_OFFER_RETRIES = 4;
const DISCONNECTED_GRACE_MS = { initiator: 1500, other: 4000 };
// Quality samples (2 s each) without one RTP packet from the peer, while ICE
// says connected, before the page restarts ICE; the least time between two
// such restarts; and how many in a row may bring nothing back before the
// page stops trying (a peer with neither camera nor microphone sends
// nothing, and that is not a broken path).
const STALL_SAMPLES = 2;
const STALL_RESTART_GAP_MS = 10000;
const STALL_RESTARTS_MAX = 2;

/* The DTLS identity in an SDP (the first a=fingerprint line), lower-cased. */
export function fingerprintOf(sdp) {
    const m = /^a=fingerprint:(.+)$/m.exec(sdp || '');
    return m ? m[1].trim().toLowerCase() : '';
}

export class PeerLink {
    /* opts: id, role, name, initiator, stream (local MediaStream), send(msg),
     *       onRemoteStream(stream), onChange(), onSdp(kind, text),
     *       onChannel(kind, event, data): kind 'main' | 'hb', event
     *       'open' | 'message' | 'close', trackFor(kind): the track to
     *       send (default: the stream's) */
    constructor(opts) {
        this.log = opts.log || (() => {});
        Object.assign(this, {
            id: opts.id, role: opts.role, name: opts.name || '', initiator: !!opts.initiator,
        });
        this.opts = opts;
        this.pc = new RTCPeerConnection(RTC_CONFIG);
        this.remoteStream = new MediaStream();
        this.makingOffer = false;
        this.sentOffer = null;          // sent, applied when the answer comes
        this.offerTimer = null;
        this.offerRetries = 0;
        this.pendingOffer = false;      // a negotiation to start once stable
        this.pendingRestart = false;    // ...and whether it restarts ICE
        this.remoteFingerprint = '';
        this.closed = false;
        this.discTimer = null;
        this.everConnected = false;
        // The server has no relay for this pair yet (or lost it): offers
        // wait for its "renegotiate" (see waitForRelay and relayReady).
        this.waitingRelay = !!opts.waitingRelay;
        this.stalledSamples = 0;
        this.lastStallRestart = 0;
        this.stallRestarts = 0;
        this.mediaSeen = false;         // RTP from the peer was ever received
        this.stallRestartsInRow = 0;    // stall restarts with no media since

        const pc = this.pc;
        // Candidates are deliberately not sent: the server would drop them, and
        // the relay's candidates reach the peer in the rewritten SDP.
        pc.onicecandidate = null;
        pc.ontrack = (ev) => {
            if (!this.remoteStream.getTracks().includes(ev.track)) {
                for (const old of this.remoteStream.getTracks()) {
                    if (old.kind === ev.track.kind) this.remoteStream.removeTrack(old);
                }
                this.remoteStream.addTrack(ev.track);
            }
            this.opts.onRemoteStream(this.remoteStream);
        };
        this.openChannels();
        pc.oniceconnectionstatechange = () => this.onIceState();
        pc.onconnectionstatechange = () => {
            if (pc.connectionState === 'connected') this.everConnected = true;
            this.opts.onChange();
        };
    }

    /* The two negotiated data channels (chat and state; heartbeats), made
     * before any offer so that the first one already has its m=application
     * line: negotiated channels need no in-band handshake, and both sides
     * create them alike whoever offers. A new PeerLink makes new ones. */
    openChannels() {
        this.channels = {};
        for (const kind of Object.keys(CHANNEL)) {
            let ch;
            try {
                ch = this.pc.createDataChannel(CHANNEL[kind].label, CHANNEL[kind].init);
            } catch (e) {
                this.log(`data channel ${kind} to ${this.id} failed: ${e.name}`);
                continue;
            }
            const tell = (event, data) => { if (this.opts.onChannel) this.opts.onChannel(kind, event, data); };
            ch.onopen = () => tell('open');
            ch.onclose = () => tell('close');
            ch.onmessage = (ev) => tell('message', ev.data);
            this.channels[kind] = ch;
        }
    }

    channelState(kind = 'main') {
        const ch = this.channels && this.channels[kind];
        if (!ch) return 'closed';
        return ch.readyState === 'open' ? 'open' : ch.readyState === 'connecting' ? 'connecting' : 'closed';
    }

    /* Sends text on a channel if it is open; false if it could not. */
    sendOn(kind, text) {
        const ch = this.channels && this.channels[kind];
        if (!ch || ch.readyState !== 'open') return false;
        try {
            ch.send(text);
            return true;
        } catch (e) {
            return false;
        }
    }

    get polite() {
        return !this.initiator;
    }

    /* Attaches the local tracks and, on the initiator side (or when asked,
     * after this page was reloaded), sends the first offer: at once, or when
     * the server has a relay for the pair. */
    start(offer = this.initiator) {
        const stream = this.opts.stream;
        // What this page sends now (a shared screen instead of the camera):
        // one sender per kind from the start, never a second one added later.
        const pick = (kind) => (this.opts.trackFor ? this.opts.trackFor(kind)
            : stream.getTracks().find((t) => t.kind === kind)) || null;
        if (offer) {
            for (const kind of ['audio', 'video']) {
                const track = pick(kind);
                if (track) this.pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
                else this.pc.addTransceiver(kind, { direction: 'recvonly' });
            }
            this.builtToOffer = true;
            if (!this.waitingRelay) this.negotiate(false);
        } else {
            // addTrack'ed transceivers are matched to the m-lines of the coming offer.
            for (const kind of ['audio', 'video']) {
                const track = pick(kind);
                if (track) this.pc.addTrack(track, stream);
            }
        }
    }

    /* Creates an offer and sends it, but applies it (setLocalDescription) only
     * when the answer arrives. The relay hands out new credentials for every
     * offer; a browser that applied an ICE-restart offer at once would start
     * checking from its new sockets with the *old* relay credentials while the
     * answer is in flight, and could nominate such a pair, binding the old relay
     * link to the new socket while its peer moves to the new link (seen with
     * Chromium 156: media then stops in one direction). Applying offer and
     * answer back to back leaves no such window. */
    async negotiate(iceRestart) {
        if (this.closed || this.waitingRelay) return; // relayReady offers

        if (this.makingOffer || this.sentOffer || this.pc.signalingState !== 'stable') {
            this.pendingRestart = this.pendingRestart || iceRestart;
            this.pendingOffer = true;
            return;
        }
        this.makingOffer = true;
        try {
            const offer = await this.pc.createOffer({ iceRestart: !!iceRestart });
            if (this.closed) return;
            if (this.pc.signalingState !== 'stable') { // an offer arrived meanwhile
                this.pendingOffer = true;
                this.pendingRestart = this.pendingRestart || iceRestart;
                return;
            }
            this.sentOffer = { type: 'offer', sdp: offer.sdp, iceRestart: !!iceRestart };
            const sent = this.opts.send({ type: 'offer', to: this.id, sdp: offer.sdp });
            this.log(`offer ${sent ? 'sent' : 'NOT sent (signaling down)'} to ${this.id}${iceRestart ? ' (ICE restart)' : ''}`);
            this.armOfferTimer();
        } catch (e) {
            this.log(`offer to ${this.id} failed: ${e.name}`);
            this.opts.onChange();
        } finally {
            this.makingOffer = false;
        }
    }

    /* An offer left unanswered (lost while the peer was away, refused in a
     * collision) is dropped and made again after a few seconds. */
    armOfferTimer() {
        clearTimeout(this.offerTimer);
        this.offerTimer = setTimeout(() => {
            this.offerTimer = null;
            const stale = this.sentOffer;
            if (this.closed || !stale) return;
            this.sentOffer = null;
            if (this.offerRetries >= MAX_OFFER_RETRIES) return;
            this.offerRetries++;
            this.log(`no answer from ${this.id}: offering again`);
            this.negotiate(stale.iceRestart || this.everConnected);
        }, ANSWER_WAIT_MS + Math.floor(Math.random() * 1000));
    }

    /* True if this offer comes from a different browser session of the peer
     * (it reloaded and resumed): a new DTLS identity needs a new connection. */
    isNewPeerSession(sdp) {
        const fp = fingerprintOf(sdp);
        return !!(this.remoteFingerprint && fp && fp !== this.remoteFingerprint);
    }

    /* True if an offer cannot be answered here: the link was built to make
     * the first offer (its transceivers are not ones a remote offer takes
     * over, JSEP §5.10) and never negotiated; the peer offered first (a
     * relay came while this page had reloaded). A new link answers. */
    cannotAnswerFirst() {
        return !!this.builtToOffer && !this.pc.currentRemoteDescription;
    }

    async onOffer(sdp) {
        if (this.closed) return;
        // Offers reach us only through a relay the server has for the pair.
        this.waitingRelay = false;
        this.opts.onSdp('offer', sdp);
        const collision = this.makingOffer || !!this.sentOffer || this.pc.signalingState !== 'stable';
        this.log(`offer from ${this.id}${collision ? (this.polite ? ' (collision: ours dropped)' : ' (collision: ignored)') : ''}`);
        if (collision && !this.polite) return; // ours wins; the server refuses their answer, they retry
        try {
            if (collision) {
                // Every offer the server forwards carries fresh relay credentials,
                // so answering it restarts ICE anyway; a dropped offer is made
                // again only if it was for something else (a track change).
                if (this.sentOffer && !this.sentOffer.iceRestart) this.pendingOffer = true;
                this.sentOffer = null;
                clearTimeout(this.offerTimer);
                this.offerTimer = null;
                if (this.pc.signalingState === 'have-local-offer') {
                    await this.pc.setLocalDescription({ type: 'rollback' });
                }
            }
            await this.pc.setRemoteDescription({ type: 'offer', sdp });
            this.remoteFingerprint = fingerprintOf(sdp) || this.remoteFingerprint;
            await this.pc.setLocalDescription(await this.pc.createAnswer());
            const sent = this.opts.send({ type: 'answer', to: this.id, sdp: this.pc.localDescription.sdp });
            this.log(`answer ${sent ? 'sent' : 'NOT sent (signaling down)'} to ${this.id}`);
            this.offerRetries = 0;
        } catch (e) {
            this.log(`offer from ${this.id} failed: ${e.name}`);
            this.opts.onChange();
        }
        this.afterStable();
    }

    async onAnswer(sdp) {
        if (this.closed) return;
        this.opts.onSdp('answer', sdp);
        const offer = this.sentOffer;
        this.log(`answer from ${this.id}${offer ? '' : ' (unexpected, ignored)'}`);
        if (!offer) return;
        if (this.isNewPeerSession(sdp)) {
            // The peer reloaded and answered from a new DTLS identity: this
            // connection cannot carry it; a new one offers again.
            this.sentOffer = null;
            clearTimeout(this.offerTimer);
            this.offerTimer = null;
            this.log(`answer from a new session of ${this.id}: a new connection`);
            if (this.opts.onPeerReloaded) this.opts.onPeerReloaded();
            return;
        }
        this.sentOffer = null;
        clearTimeout(this.offerTimer);
        this.offerTimer = null;
        try {
            await this.pc.setLocalDescription({ type: 'offer', sdp: offer.sdp });
            await this.pc.setRemoteDescription({ type: 'answer', sdp });
            this.remoteFingerprint = fingerprintOf(sdp) || this.remoteFingerprint;
            this.offerRetries = 0;
        } catch (e) {
            this.log(`answer from ${this.id} failed: ${e.name}`);
            if (this.pc.signalingState === 'have-local-offer') {
                try { await this.pc.setLocalDescription({ type: 'rollback' }); } catch (e2) { /* closed */ }
            }
            this.pendingOffer = true;
            this.pendingRestart = this.pendingRestart || offer.iceRestart;
            this.opts.onChange();
        }
        this.afterStable();
    }

    afterStable() {
        if (this.pendingOffer && this.pc.signalingState === 'stable' && !this.sentOffer && !this.closed) {
            const restart = this.pendingRestart;
            this.pendingOffer = false;
            this.pendingRestart = false;
            setTimeout(() => this.negotiate(restart), 0);
        }
    }

    /* A fresh offer with new ICE credentials: the relay hands out new ones per
     * offer and binds the leg again on the next nominated check. */
    restartIce() {
        if (this.closed) return;
        this.offerRetries = 0;
        if (this.sentOffer) {
            // An offer that got no answer (perhaps never left while signaling
            // was down) is replaced by this one.
            this.sentOffer = null;
            clearTimeout(this.offerTimer);
            this.offerTimer = null;
        }
        this.negotiate(true);
    }

    /* The server lost the pair's relay and has no other yet: nothing to
     * offer until it says "renegotiate". The call's DTLS and tracks stay. */
    waitForRelay() {
        this.waitingRelay = true;
        this.sentOffer = null;
        clearTimeout(this.offerTimer);
        this.offerTimer = null;
        this.opts.onChange();
    }

    /* "renegotiate": the pair has a relay (a new one, or its first): offer
     * with an ICE restart, on the relay credentials the server derives. */
    relayReady() {
        this.waitingRelay = false;
        this.restartIce();
        this.opts.onChange();
    }

    /* One sample of the quality loop. Nothing at all from the peer for
     * STALL_SAMPLES samples while ICE says connected means the path is broken
     * where ICE cannot see it (the relay forwards our peer's media to an
     * address we no longer read, or the peer's to one it no longer sends
     * from): a fresh ICE restart binds both legs again. Rare; counted in
     * stallRestarts and logged. Returns true if it restarted. */
    onQuality(q, now = Date.now()) {
        if (!q || q.stalled !== true) {
            this.stalledSamples = 0;
            if (q && q.stalled === false) {
                this.mediaSeen = true;
                this.stallRestartsInRow = 0;
            }
            return false;
        }
        this.stalledSamples++;
        const ice = this.pc.iceConnectionState;
        // Only media that flowed and stopped: a peer that never sent is not stalled.
        if (this.stalledSamples < STALL_SAMPLES || this.waitingRelay || !this.everConnected || !this.mediaSeen ||
            this.stallRestartsInRow >= STALL_RESTARTS_MAX ||
            (ice !== 'connected' && ice !== 'completed') || now - this.lastStallRestart < STALL_RESTART_GAP_MS) {
            return false;
        }
        this.stallRestartsInRow++;
        this.stalledSamples = 0;
        this.lastStallRestart = now;
        this.stallRestarts++;
        this.log(`no media from ${this.id} for ${STALL_SAMPLES * 2} s while ICE is ${ice}: ICE restart`);
        this.restartIce();
        return true;
    }

    onIceState() {
        const st = this.pc.iceConnectionState;
        this.log(`ice ${this.id}: ${st}`);
        clearTimeout(this.discTimer);
        this.discTimer = null;
        if (this.waitingRelay) {
            // No relay to restart towards: "renegotiate" will come.
        } else if (st === 'failed') {
            this.restartIce();
        } else if (st === 'disconnected') {
            const wait = this.initiator ? DISCONNECTED_GRACE_MS.initiator : DISCONNECTED_GRACE_MS.other;
            this.discTimer = setTimeout(() => {
                const now = this.pc.iceConnectionState;
                if (now === 'disconnected' || now === 'failed') this.restartIce();
            }, wait);
        }
        this.opts.onChange();
    }

    /* Puts `track` (or nothing) on the sender of that kind; renegotiates if the
     * connection was set up without sending that kind. */
    async setTrack(kind, track) {
        if (this.closed) return;
        const tr = this.pc.getTransceivers().find((t) =>
            !t.stopped && t.receiver && t.receiver.track && t.receiver.track.kind === kind);
        if (!tr) {
            if (track) {
                this.pc.addTrack(track, this.opts.stream);
                this.negotiate(false);
            }
            return;
        }
        try {
            await tr.sender.replaceTrack(track);
            await this.setSending(tr.sender, !!track);
        } catch (e) {
            return;
        }
        if (track && tr.direction !== 'sendrecv' && tr.direction !== 'sendonly') {
            tr.direction = 'sendrecv';
            try { tr.sender.setStreams && tr.sender.setStreams(this.opts.stream); } catch (e) { /* optional */ }
            this.negotiate(false);
        }
    }

    /* Without a track, Firefox ESR still encodes about a frame a second
     * (audio-only would still send video): the encodings are switched off
     * too, and on again with a track. */
    async setSending(sender, on) {
        const p = sender.getParameters();
        if (!p.encodings || !p.encodings.length || p.encodings.every((e) => e.active === on)) return;
        for (const e of p.encodings) e.active = on;
        try { await sender.setParameters(p); } catch (e) { /* not before negotiation: the track decides */ }
    }

    /* lingerMs: keep the connection that long after the last message (a
     * "bye" just sent must leave before the connection goes). */
    close(lingerMs = 0) {
        if (this.closed) return;
        this.closed = true;
        clearTimeout(this.offerTimer);
        clearTimeout(this.discTimer);
        const pc = this.pc;
        const shut = () => { try { pc.close(); } catch (e) { /* closed */ } };
        if (lingerMs > 0) setTimeout(shut, lingerMs); else shut();
        for (const t of this.remoteStream.getTracks()) t.stop();
    }
}

/* Connection quality from getStats, per peer, over the interval between two
 * samples:
 * - loss: the worse direction. What we lost of theirs (inbound-rtp
 *   packetsLost) and what they lost of ours (remote-inbound-rtp fractionLost,
 *   from their RTCP receiver reports): a patient whose picture freezes for the
 *   clinician has a bad connection even if what they receive is fine.
 * - delay: the round trip to the *other browser* (remote-inbound-rtp, RTCP
 *   through the relay); the ICE pair's round trip only reaches the relay, and
 *   is the fallback until the first receiver report.
 * - bitrate: what we receive.
 * No media received over a whole interval counts as poor. */
export class QualityMeter {
    constructor() {
        this.prev = new Map();
    }

    async sample(link) {
        const now = performance.now();
        const report = await link.pc.getStats();
        let recvPackets = 0, lost = 0, bytesIn = 0, bytesOut = 0;
        let e2eRtt = null, pairRtt = null, outLoss = null;
        const pairs = new Map();
        let selectedPairId = null;
        report.forEach((s) => {
            if (s.type === 'inbound-rtp') {
                recvPackets += s.packetsReceived || 0;
                lost += Math.max(0, s.packetsLost || 0);
                bytesIn += s.bytesReceived || 0;
            } else if (s.type === 'outbound-rtp') {
                bytesOut += s.bytesSent || 0;
            } else if (s.type === 'remote-inbound-rtp') {
                if (Number.isFinite(s.roundTripTime)) e2eRtt = Math.max(e2eRtt || 0, s.roundTripTime);
                if (Number.isFinite(s.fractionLost)) outLoss = Math.max(outLoss || 0, s.fractionLost);
            } else if (s.type === 'candidate-pair') {
                pairs.set(s.id, s);
                if (s.selected) selectedPairId = s.id; // Firefox
            } else if (s.type === 'transport' && s.selectedCandidatePairId) {
                selectedPairId = s.selectedCandidatePairId; // Chromium
            }
        });
        const pair = selectedPairId ? pairs.get(selectedPairId) : null;
        if (pair && Number.isFinite(pair.currentRoundTripTime)) pairRtt = pair.currentRoundTripTime;
        const rtt = e2eRtt !== null ? e2eRtt : pairRtt;
        const cur = { t: now, recvPackets, lost, bytesIn, bytesOut };
        const prev = this.prev.get(link);
        this.prev.set(link, cur);
        const out = {
            rttMs: rtt === null ? null : Math.round(rtt * 1000),
            lossPct: null, kbpsIn: null, kbpsOut: null, stalled: null,
        };
        if (!prev) return out; // the first sample only starts an interval
        const dt = (now - prev.t) / 1000;
        const dRecv = recvPackets - prev.recvPackets, dLost = Math.max(0, lost - prev.lost);
        const inLoss = dRecv + dLost > 0 ? (100 * dLost) / (dRecv + dLost) : 0;
        out.lossPct = Math.max(inLoss, outLoss === null ? 0 : 100 * outLoss);
        if (dt > 0) {
            out.kbpsIn = Math.round(((bytesIn - prev.bytesIn) * 8) / dt / 1000);
            out.kbpsOut = Math.round(((bytesOut - prev.bytesOut) * 8) / dt / 1000);
        }
        out.stalled = dRecv === 0;
        return out;
    }

    forget(link) {
        this.prev.delete(link);
    }

    /* unknown until a whole interval was measured; then good, fair or poor. */
    static level(q) {
        if (!q || q.stalled === null || q.stalled === undefined) return 'unknown';
        if (q.stalled) return 'poor';
        const loss = q.lossPct || 0, rtt = q.rttMs || 0;
        if (loss < 2 && rtt < 250) return 'good';
        if (loss < 8 && rtt < 500) return 'fair';
        return 'poor';
    }
}
