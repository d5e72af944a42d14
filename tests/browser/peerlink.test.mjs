// Unit tests, no browser: when the web client restarts ICE by itself
// because no media comes from a peer (PeerLink.onQuality in peers.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const { PeerLink } = await import(path.join(repo, 'signaling', 'web', 'peers.js'));

/* A PeerLink without an RTCPeerConnection: the state onQuality reads, and
 * restartIce counted. */
function fakeLink(ice = 'connected') {
    const link = Object.create(PeerLink.prototype);
    Object.assign(link, {
        id: 'p2', pc: { iceConnectionState: ice }, everConnected: true, waitingRelay: false,
        stalledSamples: 0, lastStallRestart: 0, stallRestarts: 0, stallRestartsInRow: 0, mediaSeen: false,
        restarts: 0, log: () => {},
    });
    link.restartIce = () => { link.restarts++; };
    return link;
}

const stalled = { stalled: true }, flowing = { stalled: false }, unknown = { stalled: null };

test('two stalled samples in a row while connected restart ICE, once per 10 s', () => {
    const l = fakeLink();
    assert.equal(l.onQuality(flowing, 98000), false);
    assert.equal(l.onQuality(stalled, 100000), false);
    assert.equal(l.onQuality(stalled, 102000), true);
    assert.equal(l.restarts, 1);
    // Still nothing: not again before 10 s have passed.
    assert.equal(l.onQuality(stalled, 104000), false);
    assert.equal(l.onQuality(stalled, 106000), false);
    assert.equal(l.onQuality(stalled, 112000), true);
    assert.equal(l.restarts, 2);
    assert.equal(l.stallRestarts, 2);
    // Two restarts brought nothing back: no more, until media flows again.
    for (let t = 114000; t < 160000; t += 2000) assert.equal(l.onQuality(stalled, t), false);
    assert.equal(l.restarts, 2);
    l.onQuality(flowing, 160000);
    l.onQuality(stalled, 162000);
    assert.equal(l.onQuality(stalled, 164000), true);
});

test('a peer that never sent anything (no camera, no microphone) is not a stall', () => {
    const l = fakeLink();
    for (let t = 0; t < 60000; t += 2000) assert.equal(l.onQuality(stalled, 100000 + t), false);
    assert.equal(l.restarts, 0);
});

test('media between stalled samples starts the count again', () => {
    const l = fakeLink();
    l.mediaSeen = true;
    for (const [q, t] of [[stalled, 0], [flowing, 2000], [stalled, 4000], [unknown, 6000], [stalled, 8000]]) {
        assert.equal(l.onQuality(q, 100000 + t), false);
    }
    assert.equal(l.restarts, 0);
});

test('no restart while ICE itself is not connected, before the first connection, or while waiting for a relay', () => {
    for (const ice of ['checking', 'disconnected', 'failed', 'new']) {
        const l = fakeLink(ice);
        l.mediaSeen = true;
        l.onQuality(stalled, 100000);
        assert.equal(l.onQuality(stalled, 102000), false, ice);
    }
    const fresh = fakeLink();
    fresh.mediaSeen = true;
    fresh.everConnected = false;
    fresh.onQuality(stalled, 100000);
    assert.equal(fresh.onQuality(stalled, 102000), false);
    const waiting = fakeLink('completed');
    waiting.mediaSeen = true;
    waiting.waitingRelay = true;
    waiting.onQuality(stalled, 100000);
    assert.equal(waiting.onQuality(stalled, 102000), false);
    waiting.waitingRelay = false;
    assert.equal(waiting.onQuality(stalled, 104000), true);
});
