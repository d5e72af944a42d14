// A TCP forwarder between one browser and signaling: the test's stand-in for
// that browser's network. Each path listens on its own loopback port, so it
// is its own page origin (signaling is told to allow it). The test can then
// break the network the way real networks break, for one browser only:
//   cut()        every open connection is reset (RST, no WebSocket close
//                frame), as when a router drops the flow;
//   blackhole()  every open connection silently stops carrying data in both
//                directions while staying open, as when a laptop moves from
//                Wi-Fi to LTE: only a ping that gets no answer finds out.
// New connections always work, so the browser can reconnect.
import { createServer, connect } from 'node:net';

export class NetPath {
    static async open(host, targetPort) {
        const p = new NetPath(host, targetPort);
        await new Promise((resolve, reject) => {
            p.server.once('error', reject);
            p.server.listen(0, host, resolve);
        });
        p.port = p.server.address().port;
        p.base = `http://${host}:${p.port}`;
        return p;
    }

    constructor(host, targetPort) {
        this.host = host;
        this.targetPort = targetPort;
        this.flows = new Set();
        this.server = createServer((client) => this.accept(client));
    }

    accept(client) {
        const upstream = connect(this.targetPort, this.host);
        const flow = { client, upstream, dead: false };
        this.flows.add(flow);
        const forward = (from, to) => {
            from.on('data', (d) => { if (!flow.dead) to.write(d); });
            from.on('end', () => { if (!flow.dead) to.end(); });
        };
        forward(client, upstream);
        forward(upstream, client);
        const gone = () => {
            this.flows.delete(flow);
            client.destroy();
            upstream.destroy();
        };
        client.on('error', gone).on('close', gone);
        upstream.on('error', gone).on('close', gone);
    }

    cut() {
        const n = this.flows.size;
        for (const f of this.flows) {
            f.dead = true;
            f.client.resetAndDestroy();
            f.upstream.resetAndDestroy();
        }
        this.flows.clear();
        return n;
    }

    blackhole() {
        for (const f of this.flows) f.dead = true;
        return this.flows.size;
    }

    async close() {
        this.cut();
        await new Promise((resolve) => this.server.close(resolve));
    }
}
