// Plain HTTP on the devnet's port, beside its WebSocket JSON-RPC: the services a subnet's owner runs
// next to the chain. Unknown paths are a 404 that names the path.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { nextPhases, phaseAt, previousPhases } from '../../subnets/connito/phase-service';
import type { DevnetChain } from './devnet-chain';

type Route = (chain: DevnetChain, query: URLSearchParams) => unknown;

// Connito's phase service (connito/sn_owner/phase_service.py), answered from the devnet's own
// schedule and head, so the demo and tests time themselves through the real client.
const ROUTES: Record<string, Route> = {
  '/get_phase': (chain) => phaseAt(chain.schedule().phases, chain.head().number),
  '/blocks_until_next_phase': (chain) => nextPhases(chain.schedule().phases, chain.head().number),
  '/previous_phase_blocks': (chain) => previousPhases(chain.schedule().phases, chain.head().number),
  '/get_validator_whitelist': (chain) => chain.validatorWhitelist(),
};

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
