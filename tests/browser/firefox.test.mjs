// Firefox ESR as the patient, Chromium as the therapist. Firefox does not pair
// a non-loopback local candidate with a loopback remote one and gathers
// nothing without a default route, so this test creates a network namespace
// (lo up, a veth pair with 198.18.0.1/24, a default route over it), runs the
// whole call inside it (firefox-inner.mjs, under `ip netns exec`) and always
// deletes the namespace afterwards. Needs root (CAP_NET_ADMIN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const NS = `qrbt-${process.pid}`;
const ADDR = '198.18.0.1';
const ip = (...args) => run('ip', args, { timeout: 5000 });
const inNs = (...args) => ip('netns', 'exec', NS, 'ip', ...args);

/* Namespaces left by an earlier run that was killed: qrbt-<pid> of a dead pid. */
async function removeStale() {
    const { stdout } = await ip('netns', 'list');
    for (const line of stdout.split('\n')) {
        const m = /^(qrbt-(\d+))\b/.exec(line.trim());
        if (m && !existsSync(`/proc/${m[2]}`)) await ip('netns', 'del', m[1]).catch(() => {});
    }
}

async function createNamespace() {
    await ip('netns', 'add', NS);
    await inNs('link', 'set', 'lo', 'up');
    await inNs('link', 'add', 'qr0a', 'type', 'veth', 'peer', 'name', 'qr0b');
    await inNs('addr', 'add', `${ADDR}/24`, 'dev', 'qr0a');
    await inNs('link', 'set', 'qr0a', 'up');
    await inNs('link', 'set', 'qr0b', 'up');
    await inNs('route', 'add', 'default', 'dev', 'qr0a');
}

async function killNamespaceProcesses() {
    try {
        const { stdout } = await ip('netns', 'pids', NS);
        for (const pid of stdout.split(/\s+/).filter(Boolean)) {
            try { process.kill(Number(pid), 'SIGKILL'); } catch (e) { /* gone */ }
        }
    } catch (e) { /* no namespace */ }
}

async function deleteNamespace() {
    await killNamespaceProcesses();
    await ip('netns', 'del', NS).catch(() => {});
}

function runInner(timeoutMs) {
    return new Promise((resolve) => {
        const child = spawn('ip', ['netns', 'exec', NS, process.execPath, path.join(here, 'firefox-inner.mjs')], {
            cwd: here,
            env: { ...process.env, QR_NS_ADDR: ADDR },
            stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (d) => { out += d; });
        const timer = setTimeout(async () => {
            out += '\n(timed out: killing everything in the namespace)\n';
            await killNamespaceProcesses();
        }, timeoutMs);
        child.on('exit', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, out });
        });
    });
}

test('Firefox ESR patient and Chromium therapist: admitted, media both ways through the relay, ended', {
    timeout: 200000,
    skip: process.env.QR_SKIP_FIREFOX === '1' ? 'QR_SKIP_FIREFOX=1' : false,
}, async () => {
    await removeStale();
    try {
        await createNamespace();
        const { code, signal, out } = await runInner(170000);
        const line = out.split('\n').find((l) => l.startsWith('QR_RESULT '));
        assert.ok(line, `no result from the namespace run (exit ${code} ${signal || ''}):\n${out}`);
        const r = JSON.parse(line.slice('QR_RESULT '.length));
        if (!r.ok) {
            const logs = r.logs ? `\n--- relay log ---\n${r.logs.relay}\n--- signaling log ---\n${r.logs.signal}` : '';
            assert.fail(`${r.error}\nsteps: ${r.steps.join(' | ')}${logs}`);
        }
        assert.equal(code, 0);
        assert.ok(r.firefox.framesDecoded[1] > r.firefox.framesDecoded[0], 'Firefox decodes rising video frames');
        assert.ok(r.firefox.audioPackets[1] > r.firefox.audioPackets[0], 'Firefox receives rising audio');
        assert.ok(r.chromium.framesDecoded[1] > r.chromium.framesDecoded[0], 'Chromium decodes rising video frames');
        assert.ok(r.chromium.audioPackets[1] > r.chromium.audioPackets[0], 'Chromium receives rising audio');
        assert.equal(r.relay.legsActive, 2);
        assert.ok(r.relay.forwarded[1] > r.relay.forwarded[0]);
        for (const c of [...r.candidates.firefoxGot, ...r.candidates.chromiumGot]) {
            assert.match(c, new RegExp(` ${ADDR.replace(/\./g, '\\.')} \\d+ typ host$`));
        }
        // The relay stopped forwarding although the therapist's page kept sending.
        assert.equal(r.afterEnd.forwarded, 0);
        assert.ok(r.afterEnd.arrived >= 30, `${r.afterEnd.arrived} packets arrived after the end`);
    } finally {
        await deleteNamespace();
        const { stdout } = await ip('netns', 'list');
        assert.ok(!stdout.includes(NS), `namespace ${NS} was not removed`);
    }
});
