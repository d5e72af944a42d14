// Network namespaces for browsers that must see a network unlike the test
// machine's: here, one whose nftables rules drop every UDP packet to the
// relay (ICE-TCP), and one that lets UDP through (for comparison). Needs
// root (CAP_NET_ADMIN), iproute2 and nftables.
//
// Each namespace is qrbt-<pid>-<tag> (run.sh removes those of dead pids), with
// `lo` up and a veth pair to the root namespace on a /30 of 10.231.X.0/24 (X
// is a /24 no root interface uses yet): 10.231.X.(4i+1) on the root side,
// 10.231.X.(4i+2) inside, and a default route over it (Firefox gathers no
// candidate without one). The servers listen on the first namespace's root
// side address (serverAddr): every namespace reaches it through its own veth
// (the root namespace owns the address, whichever veth a packet comes in on).
//
// In each namespace an nftables table `qrtest` counts what the namespace sends
// to the relay (UDP to its media port, other UDP to its address, TCP to its
// ICE-TCP port) and, in a `dropUdp` namespace, drops all that UDP: the
// counters show that the rule was hit (the browser did try UDP) and that the
// media then went over TCP.
//
// Browsers run inside: Chromium through a wrapper script
// (`ip netns exec NS chromium "$@"`, Playwright's pipe transport survives the
// exec); Firefox through firefox-agent.mjs, started in the namespace, which
// drives it with puppeteer-core (its WebDriver BiDi endpoint is a TCP port on
// the namespace's own loopback, out of reach from here) and answers page
// calls over a pipe (NsFirefox below: evaluate, click, goto, screenshot).
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM } from './browsers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/* A command with optional stdin; rejects with its stderr. */
function run(cmd, args, { input = null, timeout = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        const child = execFile(cmd, args, { timeout }, (err, stdout, stderr) => {
            if (err) {
                err.message = `${cmd} ${args.join(' ')}: ${err.message.trim()}\n${stderr}`;
                reject(err);
            } else {
                resolve(stdout);
            }
        });
        if (input !== null) child.stdin.end(input);
        else child.stdin.end();
    });
}

const ip = (...args) => run('ip', args);

const PREFIX = 'qrbt-';
const nsPid = (name) => {
    const m = /^qrbt-(\d+)-[a-z0-9]+$/.exec(name);
    return m ? Number(m[1]) : null;
};

/* A zombie nobody reaped counts as gone. */
function alive(pid) {
    try {
        return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch (e) {
        return false;
    }
}

/* Namespaces qrbt-<pid>-<tag> left by a test process that is gone. */
export async function removeStaleNamespaces() {
    const out = await ip('netns', 'list');
    for (const line of out.split('\n')) {
        const name = line.trim().split(/\s+/)[0];
        const pid = name && nsPid(name);
        // (Its browsers, if any are left, run.sh ends by its marker.)
        if (pid && !alive(pid)) await ip('netns', 'del', name).catch(() => {});
    }
}

async function killNamespaceProcesses(name) {
    try {
        const out = await ip('netns', 'pids', name);
        for (const pid of out.split(/\s+/).filter(Boolean)) {
            try { process.kill(Number(pid), 'SIGKILL'); } catch (e) { /* gone */ }
        }
    } catch (e) { /* no namespace */ }
}

/* A /24 of 10.231.0.0/16 that no interface here has an address in. */
async function freeSubnet() {
    const used = await ip('-4', '-o', 'addr', 'show');
    for (let i = 0; i < 256; i++) {
        const x = (process.pid + i) % 256;
        if (!used.includes(` 10.231.${x}.`)) return `10.231.${x}`;
    }
    throw new Error('no free /24 in 10.231.0.0/16');
}

/* The namespaces of one test process: net.add(tag, { dropUdp }) each, then
 * net.destroy() (always: also after a failure). */
export class TestNet {
    static async create() {
        const net = new TestNet();
        await removeStaleNamespaces();
        net.subnet = await freeSubnet();
        net.namespaces = [];
        net.tmp = await mkdtemp(path.join(tmpdir(), 'qr-netns-'));
        return net;
    }

    /* The address the servers listen on (the first namespace's root side). */
    get serverAddr() {
        if (!this.namespaces.length) throw new Error('TestNet: add a namespace first');
        return this.namespaces[0].rootAddr;
    }

    async add(tag, { dropUdp = false } = {}) {
        const i = this.namespaces.length;
        const ns = new Netns(this, tag, i, dropUdp);
        this.namespaces.push(ns);
        await ns.create();
        return ns;
    }

    async destroy() {
        const errors = [];
        for (const ns of this.namespaces.splice(0).reverse()) {
            try { await ns.destroy(); } catch (e) { errors.push(e.message); }
        }
        if (this.tmp) await rm(this.tmp, { recursive: true, force: true });
        const left = (await ip('netns', 'list')).split('\n').filter((l) => l.startsWith(`${PREFIX}${process.pid}-`));
        if (left.length) errors.push(`namespaces left: ${left.join(', ')}`);
        if (errors.length) throw new Error(errors.join('; '));
    }
}

export class Netns {
    constructor(net, tag, index, dropUdp) {
        if (!/^[a-z0-9]{1,8}$/.test(tag)) throw new Error(`namespace tag ${tag}`);
        this.net = net;
        this.tag = tag;
        this.name = `${PREFIX}${process.pid}-${tag}`;
        this.index = index;
        this.dropUdp = dropUdp;
        this.rootAddr = `${net.subnet}.${4 * index + 1}`;
        this.addr = `${net.subnet}.${4 * index + 2}`;
        // Interface names: at most 15 characters, unique on the machine.
        this.vethRoot = `qrt${process.pid}r${index}`;
        this.vethNs = `qrt${process.pid}n${index}`;
        this.rules = null;
    }

    exec(cmd, args, opts) {
        return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
    }

    async create() {
        await ip('netns', 'add', this.name);
        this.created = true;
        await this.exec('ip', ['link', 'set', 'lo', 'up']);
        await ip('link', 'add', this.vethRoot, 'type', 'veth', 'peer', 'name', this.vethNs, 'netns', this.name);
        await ip('addr', 'add', `${this.rootAddr}/30`, 'dev', this.vethRoot);
        await ip('link', 'set', this.vethRoot, 'up');
        await this.exec('ip', ['addr', 'add', `${this.addr}/30`, 'dev', this.vethNs]);
        await this.exec('ip', ['link', 'set', this.vethNs, 'up']);
        await this.exec('ip', ['route', 'add', 'default', 'via', this.rootAddr, 'dev', this.vethNs]);
        // IPv4 only: no link-local IPv6 candidates to wait for.
        await this.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
    }

    /* The nftables table that counts (and, dropUdp, drops) what goes from
     * this namespace to the relay: host, its UDP media port, its ICE-TCP port
     * (or null). Replaces an earlier table of this namespace. */
    async relayRules({ host, udpPort, tcpPort = null }) {
        const verdict = this.dropUdp ? 'drop' : 'accept';
        const lines = [
            'table inet qrtest {',
            '    counter relay_udp { }',
            '    counter other_udp { }',
            '    counter relay_tcp { }',
            '    chain output {',
            '        type filter hook output priority filter; policy accept;',
            `        ip daddr ${host} udp dport ${udpPort} counter name relay_udp ${verdict}`,
            `        ip daddr ${host} meta l4proto udp counter name other_udp ${verdict}`,
            ...(tcpPort ? [`        ip daddr ${host} tcp dport ${tcpPort} counter name relay_tcp accept`] : []),
            '    }',
            '}',
        ];
        await this.exec('nft', ['delete', 'table', 'inet', 'qrtest']).catch(() => {});
        await this.exec('nft', ['-f', '-'], { input: `${lines.join('\n')}\n` });
        this.rules = { host, udpPort, tcpPort };
    }

    /* { relay_udp, other_udp, relay_tcp }: packets and bytes each, so far. */
    async counters() {
        const out = JSON.parse(await this.exec('nft', ['-j', 'list', 'counters', 'table', 'inet', 'qrtest']));
        const c = {};
        for (const o of out.nftables) {
            if (o.counter) c[o.counter.name] = { packets: o.counter.packets, bytes: o.counter.bytes };
        }
        return c;
    }

    /* An executable that starts Chromium in this namespace with the
     * arguments it is given (Playwright's executablePath). */
    async chromiumWrapper(chromium = CHROMIUM) {
        const file = path.join(this.net.tmp, `chromium-${this.tag}`);
        await writeFile(file, `#!/bin/sh\nexec ip netns exec ${this.name} ${chromium} "$@"\n`, { mode: 0o700 });
        return file;
    }

    /* Firefox ESR in this namespace, driven by firefox-agent.mjs. options:
     * launchFirefox's (browsers.mjs). */
    async firefox({ label = this.tag, ...options } = {}) {
        return NsFirefox.launch(this, { options, label });
    }

    async destroy() {
        if (!this.created) return;
        await killNamespaceProcesses(this.name);
        // The veth pair and the nftables table go with the namespace.
        await ip('netns', 'del', this.name);
        this.created = false;
    }
}

/* Firefox in a namespace: a puppeteer-core Browser's and Page's calls that
 * the helpers of browsers.mjs use, forwarded to firefox-agent.mjs over its
 * stdin/stdout (one JSON object per line). Functions given to evaluate go as
 * their source text, as puppeteer sends them anyway: they must not close
 * over variables. */
export class NsFirefox {
    static async launch(ns, { options, label }) {
        const f = new NsFirefox();
        f.ns = ns;
        f.label = label;
        f.pending = new Map();
        f.seq = 0;
        f.stderr = '';
        f.child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, path.join(here, 'firefox-agent.mjs')], {
            cwd: path.resolve(here, '..'),
            env: { ...process.env, QR_FIREFOX_OPTIONS: JSON.stringify(options) },
            stdio: ['pipe', 'pipe', 'pipe'],
        });
        f.exited = new Promise((resolve) => f.child.on('exit', (code, signal) => {
            f.exitInfo = { code, signal };
            for (const { reject } of f.pending.values()) {
                reject(new Error(`firefox-agent (${label}) exited ${code ?? signal}\n${f.stderr.slice(-2000)}`));
            }
            f.pending.clear();
            resolve();
        }));
        f.child.stderr.on('data', (d) => { f.stderr = (f.stderr + d).slice(-20000); });
        let buf = '';
        f.child.stdout.on('data', (d) => {
            buf += d;
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + 1);
                let m;
                try { m = JSON.parse(line); } catch (e) { continue; }
                const p = f.pending.get(m.id);
                if (!p) continue;
                f.pending.delete(m.id);
                if (m.ok) p.resolve(m.value);
                else p.reject(new Error(`${label} firefox: ${m.error}`));
            }
        });
        try {
            f.versionString = await f.call('launch', {}, 60000);
        } catch (e) {
            await f.close();
            throw e;
        }
        return f;
    }

    call(op, args = {}, timeout = 30000) {
        if (this.exitInfo) return Promise.reject(new Error(`firefox-agent (${this.label}) is gone`));
        const id = ++this.seq;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new Error(`${this.label} firefox: ${op} took over ${timeout} ms`));
            }, timeout);
            this.pending.set(id, {
                resolve: (v) => { clearTimeout(timer); resolve(v); },
                reject: (e) => { clearTimeout(timer); reject(e); },
            });
            this.child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
        });
    }

    async version() {
        return this.versionString;
    }

    async newPage() {
        const id = await this.call('newPage');
        return new NsFirefoxPage(this, id);
    }

    async close() {
        if (!this.child || this.exitInfo) return;
        await Promise.race([this.call('close', {}, 15000).catch(() => {}), this.exited]);
        this.child.stdin.end();
        const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
        await this.exited;
        clearTimeout(t);
    }
}

class NsFirefoxPage {
    constructor(browser, id) {
        this.browser = browser;
        this.id = id;
    }

    call(op, args = {}, timeout) {
        return this.browser.call(op, { page: this.id, ...args }, timeout);
    }

    goto(url) { return this.call('goto', { url }, 45000); }
    evaluate(fn, ...args) {
        return this.call('evaluate', { fn: typeof fn === 'function' ? fn.toString() : String(fn), args, isFn: typeof fn === 'function' });
    }
    evaluateOnNewDocument(source) { return this.call('evaluateOnNewDocument', { source: String(source) }); }
    click(selector) { return this.call('click', { selector }); }
    setViewport(viewport) { return this.call('setViewport', { viewport }); }
    screenshot(options) { return this.call('screenshot', { options }); }
    /* Console lines of the page so far. */
    consoleLines() { return this.call('console'); }
    close() { return this.call('closePage'); }
}
