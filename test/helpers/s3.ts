// A real S3 server for tests: s3rver (npm) as its own process on a free loopback port, storing in a
// temp folder; and a TCP proxy that can cut a connection mid-request, to test interrupted uploads.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { projectRoot } from '../../infra/paths';

/** s3rver's fixed credentials (it checks signatures made with them). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3Server {
  endpoint: string;
  /** The folder s3rver stores into. */
  dir: string;
  /** Where s3rver keeps an object's bytes on disk (to corrupt them behind the store's back). */
  objectFile(bucket: string, key: string): string;
  stop(): Promise<void>;
}

export async function startS3rver(buckets: string[]): Promise<S3Server> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'minerflow-s3rver-'));
  const bin = path.join(projectRoot(), 'node_modules', 's3rver', 'bin', 's3rver.js');
  const args = [bin, '--directory', dir, '--address', '127.0.0.1', '--port', '0', '--silent'];
  for (const b of buckets) args.push('--configure-bucket', b);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within 20 s; stderr: ${stderr}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /S3rver listening on [\d.]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with code ${code} before listening; stderr: ${stderr}`));
    });
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    dir,
    objectFile: (bucket, key) => {
      const parts = key.split('/');
      return path.join(dir, bucket, ...parts.slice(0, -1), `${parts.at(-1)}._S3rver_object`);
    },
    stop: async () => {
      await stopChild(child);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export interface CuttingProxy {
  endpoint: string;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Connections accepted so far. */
  readonly connections: number;
  stop(): Promise<void>;
}

/**
 * A TCP proxy to `target` (http://host:port) that resets a connection once `afterBytes` bytes have
 * passed through it in `direction` ('request': client to server, the default; 'response': back):
 * the first `cutTimes` connections that get that far are cut (Infinity: every one), the rest pass.
 * With `flip`, such a connection is not cut: the byte at `afterBytes` is inverted (corruption in transit).
 */
export async function startCuttingProxy(
  target: string,
  opts: { afterBytes: number; cutTimes: number; direction?: 'request' | 'response'; flip?: boolean },
): Promise<CuttingProxy> {
  const url = new URL(target);
  let cuts = 0;
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(Number(url.port), url.hostname);
    sockets.add(client).add(upstream);
    let passed = 0;
    let cutting = false;
    const cut = () => {
      client.resetAndDestroy(); // an RST, as a dropped link or a dying load balancer gives
      upstream.resetAndDestroy();
    };
    /** Forwards `from` → `to`, cutting this connection when the watched direction crosses the limit. */
    const forward = (from: net.Socket, to: net.Socket, watch: boolean) => {
      let watched = watch;
      from.on('data', (chunk: Buffer) => {
        if (cutting) return;
        if (watched && cuts < opts.cutTimes && passed + chunk.length > opts.afterBytes) {
          cuts++; // counted now, so concurrent connections cannot both take the last cut
          if (opts.flip) {
            const at = opts.afterBytes - passed;
            chunk = Buffer.from(chunk);
            chunk[at] ^= 0xff;
            watched = false; // once per connection
            if (!to.write(chunk)) from.pause();
            return;
          }
          cutting = true;
          const keep = Math.max(0, opts.afterBytes - passed);
          passed += keep;
          from.pause();
          to.write(chunk.subarray(0, keep), () => setTimeout(cut, 20)); // let the partial bytes arrive first
          return;
        }
        if (watched) passed += chunk.length;
        if (!to.write(chunk)) from.pause();
      });
      to.on('drain', () => from.resume());
      from.on('end', () => to.end());
    };
    const response = opts.direction === 'response';
    forward(client, upstream, !response);
    forward(upstream, client, response);
    const forget = () => {
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', () => (upstream.destroy(), forget()));
    upstream.on('close', () => (client.destroy(), forget()));
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get cuts() {
      return cuts;
    },
    get connections() {
      return connections;
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
