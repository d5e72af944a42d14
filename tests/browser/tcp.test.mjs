// ICE-TCP through the relay (issue 13): browsers in network namespaces
// (lib/netns.mjs). In `tcp` nftables drops every UDP packet to the relay's
// address; `udp` lets it through. The relay listens for UDP and ICE-TCP
// (--listen-tcp), and signaling (HTTPS, a self-signed certificate) on the
// root side of the first veth pair, so signaling offers the relay's passive
// TCP candidate beside its UDP one. Each call checks, besides video decoded
// both ways: the transport of each page's selected candidate pair
// (getStats), the transport of each leg at the relay (quietroomctl session)
// and its TCP counters, and the namespaces' nftables counters (the UDP that
// was dropped, the TCP that went instead). Needs root, iproute2, nftables.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Quietroom, sleep, waitFor } from './lib/servers.mjs';
import {
    launchChromium, chromiumPage, waitState, waitVisible, click, assertMediaFlowing, mediaStats, icePairs, checkWire,
    checkRelayOnlySdp, KEEP_SENDING,
} from './lib/browsers.mjs';
import { TestNet } from './lib/netns.mjs';

/* Signaling needs TLS to listen on a non-loopback address; it offers
 * HTTP/1.1 only (ALPN), so both browsers use their defaults here: before it
 * did, libwebsockets offered HTTP/2 and WebSockets over it failed. */
const SKIP_FIREFOX = process.env.QR_SKIP_FIREFOX === '1' ? 'QR_SKIP_FIREFOX=1' : false;

let net, nsTcp, nsUdp, q;
let seq = 0;
const tokensMinted = [];

before(async () => {
    net = await TestNet.create();
    nsTcp = await net.add('tcp', { dropUdp: true });
    nsUdp = await net.add('udp');
    q = await Quietroom.start({ host: net.serverAddr, label: 'tcp', tls: true, tcp: true });
    for (const ns of [nsTcp, nsUdp]) await ns.relayRules({ host: q.mediaHost, udpPort: q.mediaPort, tcpPort: q.tcpPort });
});

after(async () => {
    try {
        if (q) await q.stop();
    } finally {
        if (net) await net.destroy();
    }
});

/* A browser of `kind` ('chromium' or 'firefox') in namespace `ns`, with
 * newPage(name) giving pages that the helpers of browsers.mjs accept. */
async function launch(kind, ns) {
    if (kind === 'chromium') {
        const browser = await launchChromium({
            executablePath: await ns.chromiumWrapper(),
            // Signaling's self-signed certificate, and no other; HTTP/1.1
            // (H2_WEBSOCKETS above).
            args: [`--ignore-certificate-errors-spki-list=${q.tls.spki}`],
        });
        return {
            kind, ns,
            newPage: async (name) => (await chromiumPage(browser, name, { initScript: KEEP_SENDING })).page,
            close: () => browser.close(),
        };
    }
    const ff = await ns.firefox({ acceptInsecureCerts: true });
    return {
        kind, ns,
        newPage: async (name) => {
            const page = await ff.newPage();
            page.qrName = name;
            await page.setViewport({ width: 1280, height: 800 });
            return page;
        },
        close: () => ff.close(),
    };
}

/* The selected candidate pair of each of the page's peer connections:
 * transport and address of both ends. Chromium names it in its transport
 * stats; Firefox marks the pair `selected`. */
async function selectedPairs(page) {
    return page.evaluate(async () => {
        const out = [];
        for (const [, pc] of window.quietroom.peerConnections) {
            const report = await pc.getStats();
            const byId = new Map();
            let selectedId = null;
            report.forEach((s) => {
                byId.set(s.id, s);
                if (s.type === 'transport' && s.selectedCandidatePairId) selectedId = s.selectedCandidatePairId;
            });
            let pair = selectedId ? byId.get(selectedId) : null;
            if (!pair) report.forEach((s) => { if (s.type === 'candidate-pair' && s.selected) pair = s; });
            if (!pair) { out.push(null); continue; }
            const end = (c) => c && {
                protocol: c.protocol, address: c.address, port: c.port,
                candidateType: c.candidateType, tcpType: c.tcpType || null,
            };
            out.push({
                state: pair.state,
                bytesSent: pair.bytesSent,
                bytesReceived: pair.bytesReceived,
                local: end(byId.get(pair.localCandidateId)),
                remote: end(byId.get(pair.remoteCandidateId)),
            });
        }
        return out;
    });
}

/* Everything the page received from signaling names only the relay, its
 * UDP and its passive TCP candidate (TCP below UDP). Chromium: every SDP of
 * every socket (checkWire); Firefox: the last offer and answer. */
async function checkSdps(page, kind) {
    if (kind === 'chromium') {
        const n = checkWire(page, { relayHost: q.mediaHost, relayPort: q.mediaPort, tcpPort: q.tcpPort, tokens: tokensMinted });
        assert.ok(n >= 1, `${page.qrName} received no SDP`);
        return;
    }
    const got = await page.evaluate(() => [window.quietroom.lastSdp.offer, window.quietroom.lastSdp.answer]);
    const sdps = got.filter(Boolean);
    assert.ok(sdps.length >= 1, `${page.qrName} received no SDP`);
    for (const sdp of sdps) checkRelayOnlySdp(sdp, q.mediaHost, q.mediaPort, { tcpPort: q.tcpPort });
}

/* The pre-join preview shows the camera. The page is in `precall` while it
 * still asks for camera and microphone, and a click on Join then joins
 * without them (receive only): under load that took seconds here. */
async function cameraOn(page) {
    await waitFor(`the camera preview of the ${page.qrName}`,
        () => page.evaluate(() => document.getElementById('preview').videoWidth > 0), { timeout: 20000 });
}

/* Therapist (browser a) joins, patient (browser b) joins and waits,
 * therapist admits; both decode video and receive audio. */
async function join(a, b, sid) {
    const therapist = await q.token({ sid, role: 'clinician', sub: `doc-${seq}`, name: 'Dr. Rivera' });
    const patient = await q.token({ sid, role: 'patient', sub: `pat-${seq}`, name: 'Sam Patient' });
    tokensMinted.push(therapist, patient);
    const doc = await a.newPage(`therapist (${a.kind} in ${a.ns.tag})`);
    const pat = await b.newPage(`patient (${b.kind} in ${b.ns.tag})`);
    try {
        await doc.goto(q.link(therapist));
        await waitState(doc, 'precall', 20000);
        await cameraOn(doc);
        await click(doc, 'join');
        await waitState(doc, 'in-call');
        await pat.goto(q.link(patient));
        await waitState(pat, 'precall', 20000);
        await cameraOn(pat);
        await click(pat, 'join');
        await waitState(pat, 'waiting');
        const patId = await pat.evaluate(() => window.quietroom.participant);
        await waitVisible(doc, `admit-${patId}`);
        await click(doc, `admit-${patId}`);
        await waitState(pat, 'in-call');
        const [d1, d2] = await assertMediaFlowing(doc, { timeout: 30000 });
        const [p1, p2] = await assertMediaFlowing(pat, { timeout: 30000 });
        return { doc, pat, frames: { therapist: [d1.framesDecoded, d2.framesDecoded], patient: [p1.framesDecoded, p2.framesDecoded] } };
    } catch (e) {
        // What each page went through, for the failure's message.
        for (const page of [doc, pat]) {
            const ev = await page.evaluate(() => window.quietroom && window.quietroom.events.join('\n      ')).catch((x) => x.message);
            const con = page.consoleLines ? await page.consoleLines().catch(() => []) : page.qrConsole;
            const media = await mediaStats(page).catch((x) => x.message);
            const ice = await icePairs(page).catch((x) => [x.message]);
            const out = await page.evaluate(async () => {
                const o = [];
                for (const [id, pc] of window.quietroom.peerConnections) {
                    (await pc.getStats()).forEach((st) => {
                        if (st.type === 'outbound-rtp') {
                            o.push(`${id} ${st.kind} sent ${st.packetsSent} pkts ${st.bytesSent} B active ${st.active} limit ${st.qualityLimitationReason}`);
                        }
                    });
                    o.push(`${id} senders ${pc.getSenders().map((x) => (x.track ? `${x.track.kind}:${x.track.readyState}:${x.track.enabled}` : 'none')).join(',')}` +
                        ` transceivers ${pc.getTransceivers().map((t) => `${t.mid}:${t.direction}/${t.currentDirection}`).join(',')}`);
                }
                return o;
            }).catch((x) => [x.message]);
            ice.push(...out);
            e.message += `\n  ${page.qrName} events:\n      ${ev}\n  console:\n      ${(con || []).slice(-20).join('\n      ')}` +
                `\n  media: ${JSON.stringify(media)}\n  ICE:\n      ${ice.join('\n      ')}`;
        }
        throw e;
    }
}

const delta = (a, b, name) => ({ packets: b[name].packets - a[name].packets, bytes: b[name].bytes - a[name].bytes });

/* One call: therapist = [kind, ns, transport], patient = [kind, ns,
 * transport], transport the one that browser's leg must end up on. */
async function tcpCall(label, therapist, patient) {
    const sid = `${label}-${process.pid}-${++seq}`;
    const launched = [];
    const browserFor = async (kind, ns) => {
        let b = launched.find((x) => x.kind === kind && x.ns === ns);
        if (!b) {
            b = await launch(kind, ns);
            launched.push(b);
        }
        return b;
    };
    try {
        const a = await browserFor(therapist[0], therapist[1]);
        const b = await browserFor(patient[0], patient[1]);
        const nets = [...new Set([therapist[1], patient[1]])];
        const c0 = await Promise.all(nets.map((ns) => ns.counters()));
        const s0 = await q.stats();
        const audit0 = (await q.relayAudit()).length;
        const { doc, pat, frames } = await join(a, b, sid).catch(async (e) => {
            // The relay's counters since the call began, for the message.
            const s = await q.stats().catch(() => null);
            if (s) {
                const diff = {};
                for (const g of ['packets', 'dropped', 'tcp', 'tcp_connections', 'tcp_closed', 'legs']) {
                    for (const [k, v] of Object.entries(s[g] || {})) {
                        const d = typeof v === 'number' ? v - ((s0[g] || {})[k] || 0) : v;
                        if (d) diff[`${g}.${k}`] = d;
                    }
                }
                e.message += `\n  relay counters since the call began: ${JSON.stringify(diff)}`;
            }
            // The relay's leg records meanwhile: which address and transport
            // each leg was bound to, and when it moved.
            const recs = (await q.relayAudit().catch(() => [])).slice(audit0).filter((r) => /^leg\./.test(r.type));
            // (An earlier call's legs may go down meanwhile: their session differs.)
            e.message += `\n  relay leg records:\n      ${recs.map((r) => `${r.time} ${r.type} ${(r.agents || []).map((x) => `${x.role}=${x.address}`).join(' ')} ` +
                `${JSON.stringify(r.detail)}${r.reason ? ` reason ${JSON.stringify(r.reason)}` : ''}`).join('\n      ')}`;
            throw e;
        });

        // Media keeps flowing over the chosen transports for a while.
        const s1 = await q.stats();
        const c1 = await Promise.all(nets.map((ns) => ns.counters()));
        await sleep(2000);
        const s2 = await q.stats();
        const c2 = await Promise.all(nets.map((ns) => ns.counters()));
        const pairs = { therapist: await selectedPairs(doc), patient: await selectedPairs(pat) };
        // Each leg's transport at the relay, by the address it is bound to:
        // its latest leg.up, leg.moved or leg.down record (relay audit log,
        // written by a thread of its own: it may lag a little). This call's
        // relay session is the one whose legs came up meanwhile (an earlier
        // call's legs go down 30 s after its browsers closed).
        const legs = await waitFor('two legs in the relay\'s audit log', async () => {
            const recs = (await q.relayAudit()).slice(audit0);
            const ours = new Set(recs.filter((r) => r.type === 'leg.up').map((r) => r.session));
            const l = {};
            for (const r of recs) {
                if (!['leg.up', 'leg.moved', 'leg.down'].includes(r.type) || !ours.has(r.session)) continue;
                const agent = (r.agents || []).find((x) => /^leg-/.test(x.role));
                l[`${r.session}/${r.detail.link}/${agent && agent.role}`] = {
                    transport: r.type === 'leg.down' ? `down (${r.reason})` : r.detail.transport,
                    address: agent && agent.address,
                };
            }
            return Object.keys(l).length >= 2 && l;
        }, { timeout: 5000 });
        const report = {
            frames, pairs, legs,
            relay: {
                forwarded: s2.packets.forwarded - s1.packets.forwarded,
                tcpForwarded: s2.tcp.packets_forwarded - s1.tcp.packets_forwarded,
                tcpReceived: s2.tcp.packets_received - s1.tcp.packets_received,
                tcpAccepted: s2.tcp_connections.accepted - s0.tcp_connections.accepted,
                tcpOpen: s2.tcp_connections.open,
            },
            nft: Object.fromEntries(nets.map((ns, i) => [ns.tag, {
                call: { udp: delta(c0[i], c2[i], 'relay_udp'), otherUdp: delta(c0[i], c2[i], 'other_udp'), tcp: delta(c0[i], c2[i], 'relay_tcp') },
                window: { udp: delta(c1[i], c2[i], 'relay_udp'), tcp: delta(c1[i], c2[i], 'relay_tcp') },
            }])),
        };
        process.stderr.write(`  ${label}: ${JSON.stringify(report)}\n`);

        // Each page: the selected pair runs over the expected transport to
        // the relay's address for it.
        for (const [who, page, [, , transport]] of [['therapist', doc, therapist], ['patient', pat, patient]]) {
            assert.equal(pairs[who].length, 1, `${page.qrName}: one peer connection`);
            const p = pairs[who][0];
            assert.ok(p, `${page.qrName}: no selected candidate pair`);
            assert.equal(p.remote.protocol, transport, `${page.qrName}: selected remote candidate ${JSON.stringify(p.remote)}`);
            assert.equal(p.local.protocol, transport, `${page.qrName}: selected local candidate ${JSON.stringify(p.local)}`);
            assert.equal(p.remote.address, q.mediaHost);
            assert.equal(p.remote.port, transport === 'tcp' ? q.tcpPort : q.mediaPort);
            if (transport === 'tcp' && p.local.tcpType) assert.equal(p.local.tcpType, 'active', `${page.qrName}: local ${JSON.stringify(p.local)}`);
            await checkSdps(page, who === 'therapist' ? therapist[0] : patient[0]);
        }

        // The relay: two legs, each bound over the transport expected of the
        // namespace its address is in.
        // A patient's page checks its connection through the relay while it
        // waits (issue 18), on a relay session of its own that ends when the
        // check reports or the patient is admitted (revoked, or its TCP
        // connections closed by the page first): the live legs are the call's.
        const want = [therapist, patient].map(([, ns, transport]) => `${ns.addr} ${transport}`).sort();
        const live = Object.values(legs).filter((l) => !l.transport.startsWith('down'));
        const got = live.map((l) => `${l.address.slice(0, l.address.lastIndexOf(':'))} ${l.transport}`).sort();
        assert.deepEqual(got, want, `the relay's legs (audit log): ${JSON.stringify(legs)}`);
        const tcpLegs = [therapist[2], patient[2]].filter((t) => t === 'tcp').length;
        if (tcpLegs) {
            assert.ok(report.relay.tcpForwarded >= 50 * tcpLegs, `the relay forwarded only ${report.relay.tcpForwarded} packets over TCP in 2 s`);
            assert.ok(report.relay.tcpAccepted >= tcpLegs, `the relay accepted ${report.relay.tcpAccepted} TCP connections`);
        } else {
            // Both legs on UDP: not a packet of media goes over TCP.
            assert.equal(report.relay.tcpForwarded, 0, 'media forwarded over TCP although both legs are on UDP');
        }
        assert.ok(report.relay.forwarded >= 100, `the relay forwarded ${report.relay.forwarded} packets in 2 s`);

        // The namespaces: where UDP is dropped, the browser did try UDP (the
        // rule dropped it) and sent its media over TCP; where it is not, the
        // media went over UDP.
        for (const ns of nets) {
            const n = report.nft[ns.tag];
            if (ns.dropUdp) {
                assert.ok(n.call.udp.packets > 0, `${ns.tag}: the nftables rule dropped no UDP to the relay`);
                assert.ok(n.window.tcp.packets >= 50, `${ns.tag}: only ${n.window.tcp.packets} TCP packets to the relay in 2 s`);
            } else {
                assert.ok(n.window.udp.packets >= 50, `${ns.tag}: only ${n.window.udp.packets} UDP packets to the relay in 2 s`);
            }
        }
        return report;
    } finally {
        await Promise.allSettled(launched.map((b) => b.close()));
    }
}

test('Chromium ↔ Chromium, UDP to the relay dropped: both legs on ICE-TCP, video decoded both ways', async () => {
    await tcpCall('tcp-cc', ['chromium', nsTcp, 'tcp'], ['chromium', nsTcp, 'tcp']);
});

test('Chromium ↔ Firefox ESR, UDP to the relay dropped: both legs on ICE-TCP, video decoded both ways', { skip: SKIP_FIREFOX }, async () => {
    await tcpCall('tcp-cf', ['chromium', nsTcp, 'tcp'], ['firefox', nsTcp, 'tcp']);
});

test('one browser on ICE-TCP, the other on UDP: the relay forwards between them', async () => {
    await tcpCall('tcp-udp', ['chromium', nsTcp, 'tcp'], ['chromium', nsUdp, 'udp']);
});

test('Firefox ESR on ICE-TCP, Chromium on UDP: the relay forwards between them', { skip: SKIP_FIREFOX }, async () => {
    await tcpCall('udp-tcp-f', ['chromium', nsUdp, 'udp'], ['firefox', nsTcp, 'tcp']);
});

test('with UDP allowed, Chromium and Firefox ESR choose UDP although the relay offers TCP', async () => {
    // Without Firefox (QR_SKIP_FIREFOX=1) Chromium and Chromium.
    await tcpCall('udp-cf', ['chromium', nsUdp, 'udp'], [SKIP_FIREFOX ? 'chromium' : 'firefox', nsUdp, 'udp']);
});
