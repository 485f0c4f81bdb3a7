// The devnet's face: a WebSocket JSON-RPC server on loopback that answers the methods @polkadot/api
// and the Bittensor Python SDK use against subtensor (connect, storage, headers, runtime calls,
// extrinsic submission and its status updates),
// plus two of our own: minerflow_schedule (the phase schedule) and minerflow_validatorReport.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { handleHttp } from './http-routes';
import { DevnetChain, DevnetRpcError, type DevnetBlock, type DevnetChainOptions, type TxStatus } from './devnet-chain';

export interface DevnetOptions extends DevnetChainOptions {
  port?: number; // 0 (default): a free port
  host?: string; // loopback by default: the devnet has no authentication
}

export interface Devnet {
  url: string;
  port: number;
  chain: DevnetChain;
  close(): Promise<void>;
}

type Params = unknown[];
type Handler = (params: Params, conn: Connection) => unknown;

interface Connection {
  socket: WebSocket;
  subscriptions: Map<string, () => void>;
}

/** Starts a devnet (chain + server) and returns its ws:// URL. */
export async function startDevnet(opts: DevnetOptions): Promise<Devnet> {
  const chain = await DevnetChain.create(opts);
  // One port for both: WebSocket JSON-RPC (the chain) and plain HTTP (the services a subnet's
  // owner runs beside the chain, such as Connito's phase service).
  const server = createServer((req, res) => handleHttp(chain, req, res));
  const wss = new WebSocketServer({ server });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve);
  });
  const handlers = rpcHandlers(chain);
  wss.on('connection', (socket) => {
    const conn: Connection = { socket, subscriptions: new Map() };
    socket.on('message', (data) => handleMessage(conn, handlers, data.toString()));
    socket.on('close', () => {
      for (const stop of conn.subscriptions.values()) stop();
      conn.subscriptions.clear();
    });
  });
  chain.start();
  const port = (server.address() as AddressInfo).port;
  return {
    url: `ws://${opts.host ?? '127.0.0.1'}:${port}`,
    port,
    chain,
    async close() {
      chain.stop();
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function handleMessage(conn: Connection, handlers: Record<string, Handler>, text: string): void {
  let req: { id?: unknown; method?: unknown; params?: unknown };
  try {
    req = JSON.parse(text) as typeof req;
  } catch {
    return send(conn, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
  }
  const id = req.id ?? null;
  if (typeof req.method !== 'string')
    return send(conn, { jsonrpc: '2.0', id, error: { code: -32600, message: 'Invalid request: no method' } });
  const handler = handlers[req.method];
  if (!handler)
    return send(conn, { jsonrpc: '2.0', id, error: { code: -32601, message: `Method not found: ${req.method}` } });
  try {
    const params = Array.isArray(req.params) ? req.params : req.params === undefined ? [] : [req.params];
    send(conn, { jsonrpc: '2.0', id, result: handler(params, conn) ?? null });
  } catch (err) {
    if (err instanceof DevnetRpcError)
      return send(conn, {
        jsonrpc: '2.0',
        id,
        error: { code: err.code, message: err.message.split(': ')[0], data: err.data },
      });
    send(conn, {
      jsonrpc: '2.0',
      id,
      error: { code: -32602, message: `Invalid params for ${req.method}: ${(err as Error).message}` },
    });
  }
}

function send(conn: Connection, message: object): void {
  if (conn.socket.readyState === conn.socket.OPEN) conn.socket.send(JSON.stringify(message));
}

let nextSubscription = 1;

/** Registers a subscription: `start` gets an emit function and returns how to stop. */
function subscribe(
  conn: Connection,
  notification: string,
  start: (emit: (result: unknown) => void) => () => void,
): string {
  const id = `minerflow${nextSubscription++}`;
  const emit = (result: unknown) =>
    send(conn, { jsonrpc: '2.0', method: notification, params: { subscription: id, result } });
  conn.subscriptions.set(id, start(emit));
  return id;
}

function unsubscribe(conn: Connection, id: unknown): boolean {
  const stop = conn.subscriptions.get(String(id));
  if (!stop) return false;
  stop();
  conn.subscriptions.delete(String(id));
  return true;
}

function headerJson(block: DevnetBlock) {
  const h = block.header;
  return {
    parentHash: h.parentHash.toHex(),
    number: '0x' + block.number.toString(16),
    stateRoot: h.stateRoot.toHex(),
    extrinsicsRoot: h.extrinsicsRoot.toHex(),
    digest: { logs: h.digest.logs.map((l) => l.toHex()) },
  };
}

function optionalHash(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(v))
    throw new Error(`'${String(v)}' is not a 32-byte block hash`);
  return v;
}

function rpcHandlers(chain: DevnetChain): Record<string, Handler> {
  const mustBlock = (at: unknown): DevnetBlock => {
    const block = chain.block(optionalHash(at));
    if (!block) throw new DevnetRpcError(4003, 'Client error', `block ${String(at)} is unknown or pruned`);
    return block;
  };
  const storageAt = (key: unknown, at: unknown) => {
    if (typeof key !== 'string' || !key.startsWith('0x')) throw new Error(`storage key '${String(key)}' is not hex`);
    return mustBlock(at).storage.get(key.toLowerCase()) ?? null;
  };
  const headSubscription = (notification: string) => (_p: Params, conn: Connection) =>
    subscribe(conn, notification, (emit) => {
      emit(headerJson(chain.head()));
      return chain.onBlock((b) => emit(headerJson(b)));
    });

  const handlers: Record<string, Handler> = {
    system_chain: () => 'Bittensor devnet (minerflow)',
    system_name: () => 'minerflow-devnet',
    system_version: () => '0.1.0',
    system_chainType: () => 'Development',
    system_properties: () => ({ ss58Format: 42, tokenDecimals: 9, tokenSymbol: 'TAO' }),
    system_health: () => ({ peers: 0, isSyncing: false, shouldHavePeers: false }),
    system_accountNextIndex: ([address]) => chain.nextIndex(String(address)),
    // The older names of the same methods, which substrate still serves and the Bittensor SDK calls.
    account_nextIndex: ([address]) => chain.nextIndex(String(address)),
    chain_getHead: ([n]) => (n === undefined || n === null ? chain.head().hash : blockHashAt(chain, n)),

    chain_getBlockHash: ([n]) => (n === undefined || n === null ? chain.head().hash : blockHashAt(chain, n)),
    chain_getHeader: ([at]) => {
      const block = chain.block(optionalHash(at));
      return block ? headerJson(block) : null;
    },
    chain_getBlock: ([at]) => {
      const block = chain.block(optionalHash(at));
      return block
        ? { block: { header: headerJson(block), extrinsics: block.extrinsics }, justifications: null }
        : null;
    },
    chain_getFinalizedHead: () => chain.finalized().hash,
    chain_subscribeNewHeads: headSubscription('chain_newHead'),
    chain_subscribeAllHeads: headSubscription('chain_allHead'),
    chain_subscribeFinalizedHeads: (_p, conn) =>
      subscribe(conn, 'chain_finalizedHead', (emit) => {
        emit(headerJson(chain.finalized()));
        return chain.onBlock(() => emit(headerJson(chain.finalized())));
      }),
    chain_unsubscribeNewHeads: ([id], conn) => unsubscribe(conn, id),
    chain_unsubscribeAllHeads: ([id], conn) => unsubscribe(conn, id),
    chain_unsubscribeFinalizedHeads: ([id], conn) => unsubscribe(conn, id),

    state_getMetadata: ([at]) => (mustBlock(at), chain.metadataHex()),
    state_getRuntimeVersion: ([at]) => (mustBlock(at), chain.runtimeVersion()),
    state_subscribeRuntimeVersion: (_p, conn) =>
      subscribe(conn, 'state_runtimeVersion', (emit) => {
        emit(chain.runtimeVersion()); // no runtime upgrades on the devnet
        return () => undefined;
      }),
    state_unsubscribeRuntimeVersion: ([id], conn) => unsubscribe(conn, id),
    state_call: ([method, data, at]) =>
      chain.runtimeCall(String(method), typeof data === 'string' ? data : '0x', optionalHash(at)),
    state_getStorage: ([key, at]) => storageAt(key, at),
    state_getStorageAt: ([key, at]) => storageAt(key, at),
    state_getKeysPaged: ([prefix, count, startKey, at]) => {
      const keys = chain.keysPaged(
        String(prefix ?? '0x'),
        Number(count ?? 1000),
        startKey ? String(startKey) : undefined,
        optionalHash(at),
      );
      if (!keys) throw new DevnetRpcError(4003, 'Client error', `block ${String(at)} is unknown or pruned`);
      return keys;
    },
    state_queryStorageAt: ([keys, at]) => {
      if (!Array.isArray(keys)) throw new Error('keys must be an array of hex storage keys');
      const block = mustBlock(at);
      return [{ block: block.hash, changes: keys.map((k) => [k, storageAt(k, block.hash)]) }];
    },
    state_subscribeStorage: ([keys], conn) => {
      if (!Array.isArray(keys)) throw new Error('state_subscribeStorage needs an array of storage keys');
      const wanted = keys.map((k) => String(k).toLowerCase());
      return subscribe(conn, 'state_storage', (emit) => {
        let last = new Map(wanted.map((k) => [k, chain.head().storage.get(k) ?? null]));
        emit({ block: chain.head().hash, changes: wanted.map((k) => [k, last.get(k)]) });
        return chain.onBlock((b) => {
          const now = new Map(wanted.map((k) => [k, b.storage.get(k) ?? null]));
          const changes = wanted.filter((k) => now.get(k) !== last.get(k)).map((k) => [k, now.get(k)]);
          last = now;
          if (changes.length) emit({ block: b.hash, changes });
        });
      });
    },
    state_unsubscribeStorage: ([id], conn) => unsubscribe(conn, id),

    author_submitExtrinsic: ([hex]) => chain.submit(hexParam(hex)),
    author_submitAndWatchExtrinsic: ([hex], conn) => {
      let emit: (status: TxStatus) => void = () => undefined;
      // Checked first, so a rejected transaction answers the call itself with the pool's error;
      // statuses come later (the first on the next tick, after this call's answer).
      chain.submit(hexParam(hex), (status) => emit(status));
      return subscribe(conn, 'author_extrinsicUpdate', (e) => {
        emit = e;
        return () => {
          emit = () => undefined;
        };
      });
    },
    author_unwatchExtrinsic: ([id], conn) => unsubscribe(conn, id),
    author_pendingExtrinsics: () => chain.pending(),

    minerflow_schedule: () => chain.schedule(),
    minerflow_validatorReport: ([netuid, address]) => chain.validatorReport(Number(netuid), String(address)),
  };
  handlers.rpc_methods = () => ({ version: 1, methods: Object.keys(handlers).sort() });
  return handlers;
}

function blockHashAt(chain: DevnetChain, n: unknown): string | null {
  const num = typeof n === 'string' ? Number.parseInt(n, n.startsWith('0x') ? 16 : 10) : Number(n);
  return chain.blockAt(num)?.hash ?? null;
}

function hexParam(v: unknown): `0x${string}` {
  if (typeof v !== 'string' || !/^0x([0-9a-fA-F]{2})*$/.test(v))
    throw new DevnetRpcError(1001, 'Extrinsic has invalid format', 'not a hex string');
  return v as `0x${string}`;
}
