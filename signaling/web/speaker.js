/* Who is speaking, from the audio this page receives: a Web Audio analyser
 * per remote audio track (one AudioContext for all). The relay never learns
 * it; nothing is sent. A tile counts as speaking after its level stayed
 * above the threshold for ON_MS, and stops after OFF_MS of quiet, so that a
 * breath or a pause between words does not make the outline flicker. */

const THRESHOLD = 0.02;   // RMS of the samples, 0..1; Chromium's fake beep is 0.07..0.4
const ON_MS = 300;
const OFF_MS = 800;
const TICK_MS = 50;
// The level falls by this factor per tick instead of at once: speech (and
// Chromium's fake microphone, a short beep twice a second) has gaps between
// syllables that must not count as quiet.
const DECAY = 0.92;

export class SpeakerDetector {
    /* onChange(id, speaking) */
    constructor(onChange) {
        this.onChange = onChange;
        this.ctx = null;
        this.peers = new Map();     // id -> {track, source, analyser, buf, loudSince, quietSince, speaking}
        this.timer = null;
    }

    context() {
        if (this.ctx) return this.ctx;
        const Ctx = window.AudioContext || window.webkitAudioContext;
        if (!Ctx) return null;
        this.ctx = new Ctx();
        return this.ctx;
    }

    /* Follows the audio track of `stream` for participant id (again if the
     * track changed). */
    watch(id, stream) {
        const track = stream.getAudioTracks()[0] || null;
        const cur = this.peers.get(id);
        if (cur && cur.track === track) return;
        this.unwatch(id);
        const ctx = track && this.context();
        if (!ctx) return;
        if (ctx.state === 'suspended') ctx.resume().catch(() => {});
        const source = ctx.createMediaStreamSource(new MediaStream([track]));
        const analyser = ctx.createAnalyser();
        analyser.fftSize = 2048;   // ~43 ms at 48 kHz: each tick sees nearly all of its 50 ms
        source.connect(analyser);
        this.peers.set(id, { track, source, analyser, buf: new Float32Array(analyser.fftSize), level: 0, loudSince: 0, quietSince: 0, speaking: false });
        if (!this.timer) this.timer = setInterval(() => this.tick(), TICK_MS);
    }

    /* A page that joined without a click (a reload's resume) may have been
     * given a suspended context: its analysers read silence until a
     * gesture lets it run. */
    resume() {
        if (this.ctx && this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    }

    unwatch(id) {
        const p = this.peers.get(id);
        if (!p) return;
        try { p.source.disconnect(); } catch (e) { /* gone */ }
        this.peers.delete(id);
        if (p.speaking) this.onChange(id, false);
        if (!this.peers.size) { clearInterval(this.timer); this.timer = null; }
    }

    isSpeaking(id) {
        const p = this.peers.get(id);
        return !!(p && p.speaking);
    }

    tick(now = performance.now()) {
        for (const [id, p] of this.peers) {
            p.analyser.getFloatTimeDomainData(p.buf);
            let sum = 0;
            for (let i = 0; i < p.buf.length; i++) sum += p.buf[i] * p.buf[i];
            p.level = Math.max(Math.sqrt(sum / p.buf.length), p.level * DECAY);
            const loud = p.level > THRESHOLD;
            if (loud) { p.quietSince = 0; if (!p.loudSince) p.loudSince = now; } else { p.loudSince = 0; if (!p.quietSince) p.quietSince = now; }
            const next = p.speaking ? !(p.quietSince && now - p.quietSince >= OFF_MS) : !!(p.loudSince && now - p.loudSince >= ON_MS);
            if (next !== p.speaking) {
                p.speaking = next;
                this.onChange(id, next);
            }
        }
    }

    close() {
        for (const id of Array.from(this.peers.keys())) this.unwatch(id);
        if (this.ctx) { this.ctx.close().catch(() => {}); this.ctx = null; }
    }
}
