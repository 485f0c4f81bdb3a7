// Plain HTTP on the devnet's port, beside its WebSocket JSON-RPC: the services a subnet's owner runs
// next to the chain. Unknown paths are a 404 that names the path.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DevnetChain } from './devnet-chain';

type Route = (chain: DevnetChain, query: URLSearchParams) => unknown;

const ROUTES: Record<string, Route> = {};

export function handleHttp(chain: DevnetChain, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://devnet');
  const route = req.method === 'GET' ? ROUTES[url.pathname] : undefined;
  if (!route) return reply(res, 404, { detail: `no ${req.method} ${url.pathname} on the devnet` });
  try {
    reply(res, 200, route(chain, url.searchParams));
  } catch (err) {
    reply(res, 500, { detail: (err as Error).message });
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
