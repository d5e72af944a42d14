// Starts the real quietroom-relay and quietroom-signal on one address
// (loopback, or a test namespace's address) with fresh development keys in a
// temporary directory, mints EHR tokens with quietroomctl and reads the
// relay's counters. Everything is bounded in time; every process is ours.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile, rm, mkdir, copyFile, rename } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NetPath } from './netpath.mjs';

const execFileP = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
export const BUILD = process.env.QR_BUILD_DIR || path.join(REPO, 'build');
export const BIN = {
    relay: path.join(BUILD, 'relay', 'quietroom-relay'),
    signal: path.join(BUILD, 'signaling', 'quietroom-signal'),
    ctl: path.join(BUILD, 'ctl', 'quietroomctl'),
};
export const WEB_DIR = process.env.QR_WEB_DIR || path.join(REPO, 'signaling', 'web');
/* Every relay's --kernel-forward: "on" as root (CI), so that the calls of
 * every suite go through the kernel path (issue 15) and a relay that cannot
 * load and attach its BPF program fails to start instead of passing on the
 * userspace path; "off" otherwise (without CAP_BPF and CAP_NET_ADMIN "auto"
 * would fall back anyway). QR_KERNEL_FORWARD=on|off|auto overrides. */
export const KERNEL_FORWARD = process.env.QR_KERNEL_FORWARD || (process.getuid() === 0 ? 'on' : 'off');
export const ARTIFACTS = process.env.QR_ARTIFACTS || path.resolve(here, '..', 'artifacts');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls fn until it returns something truthy. A call of fn that hangs (a
 * page.evaluate in a stuck page) counts against the same deadline. */
export async function waitFor(what, fn, { timeout = 10000, interval = 100 } = {}) {
    const until = Date.now() + timeout;
    let last;
    for (;;) {
        let timer;
        try {
            const left = Math.max(1000, until - Date.now());
            last = await Promise.race([fn(), new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`a check took over ${left} ms`)), left);
            })]);
            if (last) return last;
        } catch (e) {
            last = e;
        } finally {
            clearTimeout(timer);
        }
        if (Date.now() > until) {
            const why = last instanceof Error ? `: ${last.message}` : '';
            throw new Error(`timed out after ${timeout} ms waiting for ${what}${why}`);
        }
        await sleep(interval);
    }
}

async function ctl(args, timeout = 5000) {
    const { stdout } = await execFileP(BIN.ctl, args, { timeout });
    return stdout.trim();
}

export async function freePort(host) {
    return new Promise((resolve, reject) => {
        const srv = createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, host, () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

function startProcess(bin, args, logFile) {
    const fd = openSync(logFile, 'a', 0o600);
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.exitInfo = null;
    child.on('exit', (code, signal) => { child.exitInfo = { code, signal }; });
    return child;
}

async function stopProcess(child, ms = 3000) {
    if (!child || child.exitInfo) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => { if (!child.exitInfo) child.kill('SIGKILL'); }, ms);
    await gone;
    clearTimeout(t);
}

/* A self-signed certificate (P-256, 2 days) for an IP address, with openssl:
 * { cert, key, spki } (spki: base64 SHA-256 of the public key, what
 * Chromium's --ignore-certificate-errors-spki-list takes). */
async function selfSigned(dir, ipAddr) {
    const cert = path.join(dir, 'signal.crt');
    const key = path.join(dir, 'signal.key');
    await execFileP('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${ipAddr}`,
        '-addext', `subjectAltName=IP:${ipAddr}`], { timeout: 10000 });
    const { createPublicKey, createHash } = await import('node:crypto');
    const der = createPublicKey(await readFile(cert)).export({ type: 'spki', format: 'der' });
    return { cert, key, spki: createHash('sha256').update(der).digest('base64') };
}

/* nats-server, for a cluster of signaling replicas (QR_NATS_SERVER overrides). */
export const NATS_SERVER = process.env.QR_NATS_SERVER || '/usr/sbin/nats-server';

/* A running relay + signaling pair, or (cluster: N) a relay, one JetStream
 * nats-server and N signaling replicas in front of that relay. */
export class Quietroom {
    /* host: signaling's address (its page origin); mediaHost: the relay's.
     * label: names the daemon logs copied to artifacts/logs/ at stop().
     * paths: names of NetPaths to put in front of signaling (q.paths[name]),
     * each its own origin, for tests that break one browser's network; in a
     * cluster, { name, replica: i } puts that path in front of replica i
     * (0-based; a plain name is replica 0).
     * cluster: N >= 2 starts a nats-server (JetStream, loopback, temporary
     * store) and N replicas (node-id browser-r1…), each with its own port,
     * state-dir, runtime-dir, audit log and log (signal-r1.log…), all
     * sharing the EHR key, relay secret and relay, and all allowing every
     * replica's and every path's origin. q.base is replica 0's;
     * q.replicas[i].base (q.replica(i)) each replica's.
     * relays: how many relays (r1, r2…; one secret), q.relays[i] each
     * ({ name, media, mediaHost, mediaPort, control, proc }); q.relay,
     * q.media, q.control… are the first's. Signaling knows them all.
     * tls: signaling serves HTTPS/WSS with a fresh self-signed certificate
     * for `host` (q.tls: { cert, key, spki }, the SPKI SHA-256 in base64),
     * which it needs to listen anywhere but on loopback; q.base is then
     * https://. Not with cluster or paths.
     * tcp: each relay also listens for ICE-TCP on mediaHost (--listen-tcp,
     * a port of its own: relay.tcp, relay.tcpPort; q.tcp, q.tcpPort the
     * first's), and signaling's relay lines name it (tcp:ADDR:PORT). */
    static async start({ host = '127.0.0.1', mediaHost = host, label = 'run', paths = [], extraSignal = [], cluster = 0, relays = 1, tls = false, tcp = false } = {}) {
        if (tls && (cluster >= 2 || paths.length)) throw new Error('Quietroom.start: tls is for one signaling process without paths');
        const q = new Quietroom();
        q.host = host;
        q.wantTls = tls;
        q.wantTcp = tcp;
        q.label = label;
        q.paths = {};
        q.cluster = cluster >= 2 ? cluster : 0;
        q.nRelays = relays;
        q.dir = await mkdtemp(path.join(tmpdir(), 'qr-browser-'));
        try {
            await q.startAll({ mediaHost, paths, extraSignal });
        } catch (e) {
            // Nothing started here outlives a failed start.
            await q.stop().catch(() => {});
            throw e;
        }
        return q;
    }

    async startAll({ mediaHost, paths, extraSignal }) {
        const q = this;
        const host = q.host;
        q.secret = path.join(q.dir, 'relay.secret');
        q.ehrKey = path.join(q.dir, 'ehr.key');
        await ctl(['secret', '--out', q.secret]);
        await ctl(['secret', '--out', path.join(q.dir, 'audit.key')]);
        await ctl(['keygen', '--type', 'ec', '--out', path.join(q.dir, 'ehr'), '--kid', 'dev']);

        q.relays = [];
        for (let i = 0; i < q.nRelays; i++) q.relays.push(await q.startRelay(i, mediaHost));
        [q.relay, q.media, q.control, q.mediaHost, q.mediaPort, q.tcp, q.tcpPort] =
            [q.relays[0].proc, q.relays[0].media, q.relays[0].control, q.relays[0].mediaHost, q.relays[0].mediaPort,
                q.relays[0].tcp, q.relays[0].tcpPort];
        const relayLines = q.relays.map((r) => `relay = ${r.name} ${r.control} ${r.media}${r.tcp ? ` tcp:${r.tcp}` : ''}`);

        if (!q.cluster) {
            q.port = await freePort(host);
            const tlsLines = [];
            if (q.wantTls) {
                q.tls = await selfSigned(q.dir, host);
                tlsLines.push(`tls-cert = ${q.tls.cert}`, `tls-key = ${q.tls.key}`);
            }
            q.base = `${q.tls ? 'https' : 'http'}://${host}:${q.port}`;
            for (const name of paths) q.paths[name] = await NetPath.open(host, q.port);
            const ini = [
                '[signal]',
                `listen = ${host}:${q.port}`,
                `origin = ${q.base}`,
                ...Object.values(q.paths).map((p) => `origin = ${p.base}`),
                `static-dir = ${WEB_DIR}`,
                `ehr-jwks = ${path.join(q.dir, 'ehr.jwks.json')}`,
                'issuer = quietroom-dev',
                'audience = quietroom',
                ...relayLines,
                `relay-secret-file = ${q.secret}`,
                `audit-log = ${path.join(q.dir, 'signal-audit.jsonl')}`,
                `audit-key-file = ${path.join(q.dir, 'audit.key')}`,
                `node-id = browser-test`,
                `state-dir = ${path.join(q.dir, 'state')}`,
                ...tlsLines,
                ...extraSignal,
                '',
            ].join('\n');
            await writeFile(path.join(q.dir, 'signal.ini'), ini, { mode: 0o600 });
            await q.startSignal();
            return;
        }

        await q.startNats();
        q.replicas = [];
        for (let i = 0; i < q.cluster; i++) {
            const port = await freePort(host);
            const name = `r${i + 1}`;
            q.replicas.push({
                index: i, name, nodeId: `browser-${name}`, port, base: `http://${host}:${port}`,
                ini: path.join(q.dir, `signal-${name}.ini`), logName: `signal-${name}`, signal: null,
            });
        }
        [q.port, q.base] = [q.replicas[0].port, q.replicas[0].base];
        q.base2 = q.replicas[1].base;
        for (const p of paths) {
            const { name, replica = 0 } = typeof p === 'string' ? { name: p } : p;
            q.paths[name] = await NetPath.open(host, q.replicas[replica].port);
        }
        // Each page's Origin is the replica (or path) it was loaded from, and
        // a page may talk to either replica: every replica allows them all.
        const origins = [...q.replicas.map((r) => r.base), ...Object.values(q.paths).map((p) => p.base)];
        for (const r of q.replicas) {
            const ini = [
                '[signal]',
                `listen = ${host}:${r.port}`,
                ...origins.map((o) => `origin = ${o}`),
                `static-dir = ${WEB_DIR}`,
                `ehr-jwks = ${path.join(q.dir, 'ehr.jwks.json')}`,
                'issuer = quietroom-dev',
                'audience = quietroom',
                ...relayLines,
                `relay-secret-file = ${q.secret}`,
                `audit-log = ${path.join(q.dir, `signal-${r.name}-audit.jsonl`)}`,
                `audit-key-file = ${path.join(q.dir, 'audit.key')}`,
                `node-id = ${r.nodeId}`,
                `state-dir = ${path.join(q.dir, `state-${r.name}`)}`,
                `runtime-dir = ${path.join(q.dir, `run-${r.name}`)}`,
                `cluster = ${q.natsUrl}`,
                'cluster-replicas = 1',
                ...extraSignal,
                '',
            ].join('\n');
            await writeFile(r.ini, ini, { mode: 0o600 });
        }
        // One after the other: the first creates the JetStream buckets.
        for (const r of q.replicas) await q.startReplica(r);
        q.signal = q.replicas[0].signal;
    }

    /* Relay i (name r<i+1>, log relay.log for the first, relay-r2.log…),
     * until its ready file names its sockets: on new ports, or on the
     * addresses given (a restart where signaling expects it). */
    async startRelay(i, mediaHost, { media = `${mediaHost}:0`, control = '127.0.0.1:0', tcp = this.wantTcp ? `${mediaHost}:0` : null } = {}) {
        const name = `r${i + 1}`;
        const logName = i === 0 ? 'relay' : `relay-${name}`;
        const ready = path.join(this.dir, `${logName}.ready.json`);
        await rm(ready, { force: true });
        const proc = startProcess(BIN.relay, [
            '--listen', media, '--control', control, '--secret-file', this.secret,
            '--ready-file', ready, '--workers', '2', '--node-id', i === 0 ? 'browser-test' : `browser-test-${name}`,
            '--kernel-forward', KERNEL_FORWARD,
            '--log-level', process.env.QR_RELAY_LOG_LEVEL || 'info',
            '--audit-log', path.join(this.dir, `${logName}-audit.jsonl`),
            '--audit-key-file', path.join(this.dir, 'audit.key'),
            ...(tcp ? ['--listen-tcp', tcp] : []),
        ], path.join(this.dir, `${logName}.log`));
        const info = await waitFor(`relay ${name}'s ready file`, async () => {
            if (proc.exitInfo) throw new Error(`relay ${name} exited: ${JSON.stringify(proc.exitInfo)}\n${await this.log(logName)}`);
            return JSON.parse(await readFile(ready, 'utf8'));
        }, { timeout: 10000, interval: 50 });
        const bound = info.listen[0];
        const boundTcp = tcp ? (info.listen_tcp || [])[0] : null;
        if (tcp && !boundTcp) throw new Error(`relay ${name}'s ready file names no TCP address: ${JSON.stringify(info)}`);
        return {
            name, logName, proc, media: bound, control: info.control,
            mediaHost: bound.slice(0, bound.lastIndexOf(':')), mediaPort: Number(bound.slice(bound.lastIndexOf(':') + 1)),
            tcp: boundTcp, tcpPort: boundTcp ? Number(boundTcp.slice(boundTcp.lastIndexOf(':') + 1)) : null,
        };
    }

    /* kill -9 of relay i: its calls lose their media until signaling moves them. */
    async killRelay(i) {
        const child = this.relays[i].proc;
        if (!child || child.exitInfo) return;
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await gone;
    }

    /* Relay i again after killRelay(i), on the same addresses. */
    async restartRelay(i) {
        const r = this.relays[i];
        this.relays[i] = await this.startRelay(i, r.mediaHost, { media: r.media, control: r.control, tcp: r.tcp });
        if (i === 0) this.relay = this.relays[0].proc;
    }

    /* The relay counters of relay i (stats() is the first's). */
    async relayStats(i) {
        return JSON.parse(await ctl(['stats', '--secret-file', this.secret, '--control', this.relays[i].control]));
    }

    /* One JetStream nats-server on loopback with its store under q.dir,
     * ready when its monitoring port's /healthz answers 200. */
    async startNats() {
        const port = await freePort('127.0.0.1');
        let mon = await freePort('127.0.0.1');
        while (mon === port) mon = await freePort('127.0.0.1');
        const store = path.join(this.dir, 'nats-store');
        await mkdir(store, { recursive: true, mode: 0o700 });
        this.natsUrl = `nats://127.0.0.1:${port}`;
        this.natsMonitor = `http://127.0.0.1:${mon}`;
        this.nats = startProcess(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store,
            '-m', String(mon)], path.join(this.dir, 'nats.log'));
        await waitFor('nats-server /healthz', async () => {
            if (this.nats.exitInfo) throw new Error(`nats-server exited: ${JSON.stringify(this.nats.exitInfo)}\n${await this.log('nats')}`);
            const r = await fetch(`${this.natsMonitor}/healthz`, { signal: AbortSignal.timeout(1000) });
            return r.status === 200;
        }, { timeout: 15000, interval: 100 });
    }

    /* Replica i (0-based) of a cluster: { base, port, nodeId, … }, for
     * q.link(token, q.replica(1)). */
    replica(i) {
        if (!this.replicas) throw new Error('not a cluster (Quietroom.start({ cluster: 2 }))');
        return this.replicas[i];
    }

    async startReplica(r) {
        r.signal = startProcess(BIN.signal, ['--config', r.ini], path.join(this.dir, `${r.logName}.log`));
        await waitFor(`signaling replica ${r.nodeId} with a healthy relay`, async () => {
            if (r.signal.exitInfo) throw new Error(`signaling ${r.nodeId} exited: ${JSON.stringify(r.signal.exitInfo)}\n${await this.log(r.logName)}`);
            const res = await fetch(`${r.base}/healthz`, { signal: AbortSignal.timeout(1000) });
            const j = await res.json();
            return j.relays_healthy === this.nRelays;
        }, { timeout: 15000, interval: 100 });
    }

    /* Signaling from q.dir/signal.ini (its log appended to), until /healthz
     * reports the relay healthy. */
    async startSignal() {
        if (this.replicas) throw new Error('startSignal: a cluster starts its replicas itself');
        this.signal = startProcess(BIN.signal, ['--config', path.join(this.dir, 'signal.ini')],
            path.join(this.dir, 'signal.log'));
        await waitFor('signaling with a healthy relay', async () => {
            if (this.signal.exitInfo) throw new Error(`signaling exited: ${JSON.stringify(this.signal.exitInfo)}\n${await this.log('signal')}`);
            const j = await this.getJson(`${this.base}/healthz`);
            return j.relays_healthy === this.nRelays;
        }, { timeout: 15000, interval: 100 });
    }

    /* kill -9 of signaling: no close frame, no goodbye, nothing flushed. The
     * relay (and the media it carries) goes on. */
    async killSignal() {
        const child = this.signal;
        if (!child || child.exitInfo) return;
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await gone;
    }

    /* Signaling again after killSignal(): same signal.ini, so the same port
     * and state-dir. emptyState: the state-dir is moved aside first, so the
     * new process knows no visit and refuses every resume (resume_invalid). */
    async restartSignal({ emptyState = false } = {}) {
        if (emptyState) {
            const state = path.join(this.dir, 'state');
            await rename(state, `${state}.moved-${Date.now()}`).catch((e) => { if (e.code !== 'ENOENT') throw e; });
        }
        await this.startSignal();
    }

    /* GET url as JSON; over HTTPS trusting q.tls's certificate only. */
    async getJson(url) {
        if (!url.startsWith('https:')) {
            const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
            return r.json();
        }
        const ca = await readFile(this.tls.cert);
        return new Promise((resolve, reject) => {
            const req = httpsRequest(url, { ca, timeout: 1000 }, (res) => {
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (d) => { body += d; });
                res.on('end', () => { try { resolve(JSON.parse(body)); } catch (e) { reject(e); } });
            });
            req.on('timeout', () => req.destroy(new Error(`${url}: no answer in 1 s`)));
            req.on('error', reject);
            req.end();
        });
    }

    async token({ sid, role, sub, name = null, ttl = 3600, extra = [] }) {
        const args = ['token', '--key', this.ehrKey, '--kid', 'dev', '--iss', 'quietroom-dev',
            '--aud', 'quietroom', '--sid', sid, '--role', role, '--sub', sub, '--ttl', String(ttl), ...extra];
        if (name) args.push('--name', name);
        return ctl(args);
    }

    /* The join link, opened directly or through one of q.paths. */
    link(token, via = null) {
        return `${(via || this).base}/#token=${token}`;
    }

    /* The records of relay i's audit log so far (one JSON object a line). */
    async relayAudit(i = 0) {
        const text = await readFile(path.join(this.dir, `${this.relays[i].logName}-audit.jsonl`), 'utf8').catch(() => '');
        return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    }

    async stats() {
        return JSON.parse(await ctl(['stats', '--secret-file', this.secret, '--control', this.control]));
    }

    /* The relay must have stopped forwarding `within` ms after `since` (the
     * click that removed someone or ended the visit) although packets still
     * arrive: a page of the call must be sending regardless (KEEP_SENDING in
     * browsers.mjs), or this would prove nothing. Throws if either fails. */
    async assertForwardingStopped(since, what, { within = 1000, window = 1500, minArriving = 30 } = {}) {
        const wait = since + within - Date.now();
        if (wait > 0) await sleep(wait);
        const a = await this.stats();
        await sleep(window);
        const b = await this.stats();
        const forwarded = b.packets.forwarded - a.packets.forwarded;
        const arrived = b.packets.received - a.packets.received;
        if (forwarded !== 0) {
            throw new Error(`the relay still forwarded ${forwarded} packets between ${within} and ${within + window} ms after ${what}`);
        }
        if (arrived < minArriving) {
            throw new Error(`only ${arrived} packets reached the relay after ${what}: the check needs a sender that keeps going`);
        }
        return { arrived, forwarded };
    }

    async log(which) {
        try {
            const text = await readFile(path.join(this.dir, `${which}.log`), 'utf8');
            return text.split('\n').slice(-40).join('\n');
        } catch (e) {
            return '';
        }
    }

    async stop() {
        for (const p of Object.values(this.paths || {})) await p.close();
        if (this.replicas) {
            for (const r of this.replicas) await stopProcess(r.signal);
        } else {
            await stopProcess(this.signal);
        }
        for (const r of this.relays || []) await stopProcess(r.proc);
        await stopProcess(this.nats);
        if (this.dir) {
            // The daemons' logs, for a failed CI run: metadata only, no token or SDP.
            const logs = path.join(ARTIFACTS, 'logs');
            await mkdir(logs, { recursive: true });
            const relayLogs = (this.relays || []).map((r) => r.logName);
            const which = this.replicas ? [...relayLogs, ...this.replicas.map((r) => r.logName), 'nats'] : [...relayLogs, 'signal'];
            for (const w of which) {
                await copyFile(path.join(this.dir, `${w}.log`), path.join(logs, `${this.label}-${w}.log`)).catch(() => {});
            }
        }
        if (process.env.QR_KEEP_TEST_DIRS === '1') {
            process.stderr.write(`kept ${this.dir}\n`);
        } else if (this.dir) {
            // The nats-server's JetStream store is under it too.
            await rm(this.dir, { recursive: true, force: true });
        }
    }
}
