// Connito's phase service: our answers equal Connito's own PhaseManager's, the devnet serves them to
// Connito's client model, and our client survives what a remote service does (slow, down, wrong).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { SubtensorChain } from '../infra/chain/subtensor';
import {
  nextPhases,
  phaseAt,
  PhaseService,
  PhaseServiceError,
  previousPhases,
  scheduleFrom,
} from '../subnets/connito/phase-service';
import { CONNITO_PHASES, cycleLength, parsePhases } from '../subnets/connito/phases';
import { useDevnet } from './helpers/devnet';
import { pythonScriptAsync } from './helpers/python';
import { testSettings } from './helpers/settings';

const settings = testSettings();
const devnet = useDevnet(settings);

test("phase answers equal Connito's PhaseManager (connito/sn_owner/cycle.py) at every kind of block", async () => {
  for (const phases of [CONNITO_PHASES, settings.chain.local.phases]) {
    const len = cycleLength(phases);
    // Every phase boundary of three cycles, one block either side, and a far block.
    const blocks = new Set<number>([0, 1, 123_456_789]);
    let at = 0;
    for (let c = 0; c < 3; c++)
      for (const p of phases) {
        for (const b of [at - 1, at, at + 1]) if (b >= 0) blocks.add(b);
        at += p.blocks;
      }
    const list = [...blocks].sort((a, b) => a - b);
    const theirs = JSON.parse(
      await pythonScriptAsync('connito_phases.py', ['reference', JSON.stringify(phases), JSON.stringify(list)]),
    ) as unknown[];
    const ours = list.map((b) => ({
      phase: phaseAt(phases, b),
      next: nextPhases(phases, b),
      previous: previousPhases(phases, b),
    }));
    assert.deepEqual(ours, theirs, `cycle of ${len} blocks`);
  }
});

test("the devnet serves the phase service; Connito's client model reads it and agrees with the chain's head", async () => {
  const url = devnet().url.replace(/^ws/, 'http');
  const before = devnet().chain.head().number;
  const seen = JSON.parse(await pythonScriptAsync('connito_phases.py', ['live', url])) as {
    phase: { block: number; phase_name: string };
    blocks_till_commit1: number;
    prev_commit1: [number, number];
  };
  const after = devnet().chain.head().number;
  assert.ok(seen.phase.block >= before && seen.phase.block <= after, 'the phase is the head of the chain');
  assert.deepEqual(seen.phase, phaseAt(settings.chain.local.phases, seen.phase.block));
  assert.ok(
    seen.blocks_till_commit1 >= 0 && seen.blocks_till_commit1 <= cycleLength(settings.chain.local.phases),
    'seen.blocks_till_commit1 >= 0 && seen.blocks_till_commit1 <= cycleLength(settings.chain.local.phases)',
  );

  const service = new PhaseService(url);
  const schedule = await service.schedule();
  assert.deepEqual(schedule, { origin: 0, phases: settings.chain.local.phases });
  assert.deepEqual(await service.validatorWhitelist(), devnet().chain.validatorWhitelist());
});

test('the chain adapter takes its schedule from the phase service it is given, over its own configuration', async () => {
  const phases = parsePhases(
    'Distribute:3,Train:20,MinerCommit1:4,MinerCommit2:4,Submission:2,Validate:2,Merge:2,ValidatorCommit1:1,ValidatorCommit2:1',
  );
  const owner = await serve((path) => {
    const block = devnet().chain.head().number;
    if (path === '/get_phase') return [200, phaseAt(phases, block)];
    if (path === '/blocks_until_next_phase') return [200, nextPhases(phases, block)];
    return [404, { detail: 'no' }];
  });
  const chain = await SubtensorChain.connect({ url: devnet().url, phases: [], blockMs: 12_000, ownerUrl: owner.url });
  try {
    const s = await chain.schedule();
    assert.deepEqual(s.phases, phases);
    assert.equal(s.origin, 0);
    // The devnet's own service when none is given.
    const own = await SubtensorChain.connect({ url: devnet().url, phases: [], blockMs: 12_000 });
    assert.deepEqual((await own.schedule()).phases, settings.chain.local.phases);
    await own.close();
  } finally {
    await owner.close();
    await chain.close();
  }
});

test('the client retries a failing service, gives up on a 4xx at once, and names the URL and the failure', async () => {
  let calls = 0;
  const flaky = await serve((path) => {
    calls++;
    if (path === '/get_validator_whitelist') return calls < 3 ? [503, { detail: 'busy' }] : [200, ['5Fvalidator']];
    if (path === '/get_phase') return [404, { detail: 'Not Found' }];
    if (path === '/blocks_until_next_phase') return [200, 'not a map'];
    return [200, '<html>'];
  });
  try {
    const client = new PhaseService(flaky.url, { retries: 3, backoffMs: 10 });
    assert.deepEqual(await client.validatorWhitelist(), ['5Fvalidator']);
    assert.equal(calls, 3, 'two 503s, then the answer');

    calls = 0;
    await assert.rejects(
      client.phase(),
      (e: Error) => e instanceof PhaseServiceError && /get_phase failed after 1 try: HTTP 404/.test(e.message),
    );
    assert.equal(calls, 1, 'a 404 is not retried');
    await assert.rejects(client.nextPhases(), /unexpected shape/);
    await assert.rejects(client.previousPhases(), /unexpected shape/);
  } finally {
    await flaky.close();
  }
  const silent = await serve(() => 'hang');
  try {
    const client = new PhaseService(silent.url, { retries: 1, backoffMs: 10, timeoutMs: 200 });
    await assert.rejects(client.phase(), new RegExp(`${silent.url}/get_phase failed after 2 tries: timed out`));
  } finally {
    await silent.close();
  }
  const gone = await serve(() => 'hang');
  await gone.close(); // a port nobody listens on any more
  const down = new PhaseService(gone.url, { retries: 1, backoffMs: 10 });
  await assert.rejects(down.phase(), new RegExp(`${gone.url}/get_phase failed after 2 tries: .*ECONNREFUSED`));
  assert.throws(() => new PhaseService('cycle-api.connito.ai'), /must start with http/);
});

test("a schedule whose phases do not add up to the service's cycle length is refused", () => {
  const now = phaseAt(CONNITO_PHASES, 1234);
  const next = nextPhases(CONNITO_PHASES, 1234);
  assert.deepEqual(scheduleFrom(now, next), { origin: 0, phases: CONNITO_PHASES });
  delete next.Merge;
  assert.throws(() => scheduleFrom(now, next), /do not add up to its cycle length 500/);
});

/** A tiny HTTP service: `answer` gives [status, body], or 'hang' to never answer. */
async function serve(
  answer: (path: string) => [number, unknown] | 'hang',
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const a = answer(new URL(req.url ?? '/', 'http://x').pathname);
    if (a === 'hang') return;
    res.writeHead(a[0], { 'content-type': 'application/json' }).end(JSON.stringify(a[1]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
