// Unit tests, no browser: the SDP parsing in the web client (peers.js) and
// the browser tests' own SDP check (lib/browsers.mjs), on the real Chromium
// and Firefox SDP in tests/fixtures/sdp/. The check must be able to fail: a
// raw browser SDP, or a rewritten one with any single leak put back, is
// refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkRelayOnlySdp } from './lib/browsers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const { fingerprintOf, RTC_CONFIG } = await import(path.join(repo, 'signaling', 'web', 'peers.js'));
const dir = path.join(repo, 'tests', 'fixtures', 'sdp');
const fixtures = {};
for (const f of (await readdir(dir)).filter((n) => n.endsWith('.sdp'))) {
    fixtures[f] = await readFile(path.join(dir, f), 'utf8');
}
const RELAY = ['203.0.113.10', 3478];

/* What signaling does to an SDP (docs/protocol.md §6), done simply, to make
 * a "good" SDP from each fixture for the check to accept. */
function rewriteLikeSignaling(sdp) {
    const out = [];
    let inMedia = false;
    for (const l of sdp.split('\r\n')) {
        if (l === '') continue;
        if (/^a=(candidate:|end-of-candidates|rtcp:)/.test(l)) continue;
        if (/^a=extmap:\d+\S* urn:ietf:params:rtp-hdrext:(ssrc|csrc)-audio-level/.test(l)) continue;
        if (l.startsWith('o=')) {
            out.push(l.split(' ').slice(0, 3).join(' ') + ' IN IP4 0.0.0.0');
        } else if (l.startsWith('c=')) {
            out.push(`c=IN IP4 ${RELAY[0]}`);
            if (inMedia) out.push(`a=candidate:1 1 udp 2130706431 ${RELAY[0]} ${RELAY[1]} typ host`);
        } else {
            if (l.startsWith('m=')) inMedia = true;
            out.push(l);
            if (l.startsWith('t=')) out.push('a=ice-lite');
        }
    }
    return out.join('\r\n') + '\r\n';
}

test('the fixtures are there: three browser offers/answers of each browser', () => {
    assert.deepEqual(Object.keys(fixtures).sort(), [
        'chromium-answer.sdp', 'chromium-offer-gathered.sdp', 'chromium-offer.sdp',
        'firefox-answer.sdp', 'firefox-offer-gathered.sdp', 'firefox-offer.sdp',
    ]);
});

test('the SDP check accepts what signaling delivers and refuses raw browser SDP', () => {
    for (const [name, sdp] of Object.entries(fixtures)) {
        // Raw: host or mDNS candidates, or none at all (trickle), no ice-lite.
        assert.throws(() => checkRelayOnlySdp(sdp, ...RELAY), Error, `${name} raw`);
        const good = rewriteLikeSignaling(sdp);
        const cands = checkRelayOnlySdp(good, ...RELAY);
        assert.ok(cands.length >= 1, name);
    }
});

test('the SDP check refuses each single leak put back into a rewritten SDP', () => {
    const good = rewriteLikeSignaling(fixtures['chromium-offer-gathered.sdp']);
    const hostCand = 'a=candidate:2423832691 1 udp 2122194687 198.18.0.1 56158 typ host generation 0 network-id 2';
    const mdnsCand = 'a=candidate:0 1 UDP 2122252543 0f6a5936-2292-46d1-9df4-0c8b8a0018eb.local 47012 typ host';
    const wrongPort = `a=candidate:1 1 udp 2130706431 ${RELAY[0]} 9 typ host`;
    const afterRelayCand = (extra) => good.replace(/(a=candidate:1 1 udp[^\r]*\r\n)/, `$1${extra}\r\n`);
    const leaks = {
        'a host candidate': afterRelayCand(hostCand),
        'an mDNS candidate': afterRelayCand(mdnsCand),
        'the relay address on another port': afterRelayCand(wrongPort),
        'a client address in c=': good.replace(`c=IN IP4 ${RELAY[0]}`, 'c=IN IP4 198.18.0.1'),
        'a client address in o=': good.replace(/^(o=\S+ \S+ \S+) IN IP4 0\.0\.0\.0$/m, '$1 IN IP4 192.0.2.7'),
        'a client address in a=rtcp:': afterRelayCand('a=rtcp:9 IN IP4 192.0.2.7'),
        'no a=ice-lite': good.replace('a=ice-lite\r\n', ''),
        'an ssrc-audio-level extension': afterRelayCand('a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level'),
        'a csrc-audio-level extension': afterRelayCand('a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level'),
        'no fingerprint': good.replace(/^a=fingerprint:.*\r\n/gm, ''),
    };
    for (const [what, sdp] of Object.entries(leaks)) {
        assert.notEqual(sdp, good, `the mutation "${what}" changed nothing`);
        assert.throws(() => checkRelayOnlySdp(sdp, ...RELAY), Error, what);
    }
});

test('the web client reads the DTLS fingerprint of Chromium and Firefox SDP', () => {
    const chromium = '7c:37:bf:5b:27:74:76:0a:ce:e1:de:57:de:4c:3e:f3:c8:a1:6b:dd:57:36:2f:97:06:c3:51:ee:be:e9:37:61';
    const firefox = '5a:a5:b9:35:c5:33:62:84:8c:92:2c:7b:89:f4:a6:9b:df:8e:fb:fb:09:51:1e:83:c8:ac:bf:f3:f2:1b:a2:43';
    assert.equal(fingerprintOf(fixtures['chromium-offer-gathered.sdp']), `sha-256 ${chromium}`);
    assert.equal(fingerprintOf(fixtures['firefox-offer-gathered.sdp']), `sha-256 ${firefox}`);
    for (const [name, sdp] of Object.entries(fixtures)) {
        const fp = fingerprintOf(sdp);
        assert.match(fp, /^sha-256 ([0-9a-f]{2}:){31}[0-9a-f]{2}$/, name);
        // The rewrite leaves it alone, and so must our reading of it.
        assert.equal(fingerprintOf(rewriteLikeSignaling(sdp)), fp, name);
    }
    assert.equal(fingerprintOf(''), '');
    assert.equal(fingerprintOf(null), '');
});

test('peer connections are configured as docs/protocol.md §6 requires', () => {
    assert.deepEqual({ ...RTC_CONFIG }, { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceServers: [] });
});
