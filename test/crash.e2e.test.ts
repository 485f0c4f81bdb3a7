// Crashes at the worst moments, on the real Temporal dev server and devnet, with workers in their
// own processes: a control worker SIGKILLed just after its commit 1 reached the chain must not
// cost the round (the retry finds the landed commitment instead of calling the window missed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import type { Devnet } from '../infra/devnet/server';
import { openChain } from '../infra/runtime';
import { loadHotkey } from '../infra/wallet';
import { decodeSignatureCommit } from '../subnets/connito/commitments';
import { parsePhases, phaseWindow } from '../subnets/connito/phases';
import { miningCycle, statusQuery } from '../workflows';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { spawnWorker, useTemporal, waitFor, withWorkers } from './helpers/temporal';

// 200 ms blocks; commit windows of 20 s (finney: 10 blocks of 12 s), room for a kill, a 5 s outage,
// a new worker starting up and a retry.
const PHASES =
  'Distribute:2,Train:60,MinerCommit1:100,MinerCommit2:100,Submission:4,Validate:4,Merge:4,ValidatorCommit1:2,ValidatorCommit2:2';
const settings = testSettings({ MINERFLOW_LOCAL_PHASES: PHASES, MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
let devnet: Devnet;

useTemporal(settings, (t) => {
  env = t.env;
  bundle = t.bundle;
  devnet = t.devnet!;
});

/** Every set_commitment this hotkey signed, with the block it landed in, from the devnet's blocks. */
function commitmentsSigned(address: string): { block: number; payload: string }[] {
  const out: { block: number; payload: string }[] = [];
  for (let b = devnet.chain.head(); b && b.number > 0; b = devnet.chain.block(b.header.parentHash.toHex())!) {
    for (const hex of b.extrinsics) {
      const x = devnet.chain.registry.createType('Extrinsic', hex);
      if (
        x.isSigned &&
        x.signer.toString() === address &&
        x.method.section === 'commitments' &&
        x.method.method === 'setCommitment'
      ) {
        const info = (x.method.args[1] as unknown as { fields: { value: { toU8a(bare: boolean): Uint8Array } }[] })
          .fields;
        out.unshift({
          block: b.number,
          payload: Buffer.concat(info.map((f) => Buffer.from(f.value.toU8a(true)))).toString('utf8'),
        });
      }
    }
  }
  return out;
}

test(
  'a control worker SIGKILLed just after commit 1 landed, replaced 5 s later: commit 1 counted once, inside its window, and the round is not lost',
  { timeout: 360_000 },
  async () => {
    const input = {
      ...SMALL_CYCLE,
      corpus: { path: 'sample:brown:ar' },
      curate: { heldOutFraction: 0.1 },
      commit: { minTrainSeconds: 4, reserveSeconds: 1 },
    };
    const { address } = await loadHotkey(settings.walletsDir, 'default', 'default');
    let control = spawnWorker('control', env, settings);
    try {
      const result = await withWorkers(
        env,
        bundle,
        settings,
        async () => {
          const handle = await env.client.workflow.start(miningCycle, {
            taskQueue: TASK_QUEUES.control,
            workflowId: `crash-commit1-${Date.now()}`,
            args: [input],
          });
          const plan = await waitFor(
            'the commit-1 phase',
            async () => {
              const s = await handle.query(statusQuery);
              return s.phase === 'commit1' ? s.plan! : undefined;
            },
            120_000,
          );
          const round = plan.round;
          const chain = await openChain(settings);
          const landed = await waitFor(
            'commit 1 on chain',
            async () => {
              const c = await chain.commitment(address, 102);
              return c && decodeSignatureCommit(c.payload) ? c : undefined;
            },
            // A cycle whose training ends early waits for its window, up to a round away: the wait is
            // the window's close as planned, plus room for a slow machine.
            Math.max(0, plan.commit1.closesAt - Date.now()) + 60_000,
          );
          control.kill('SIGKILL'); // its activity had sent the transaction: the worst moment to die
          await new Promise((r) => setTimeout(r, 5000));
          control = spawnWorker('control', env, settings);
          return { round, landed, result: await handle.result() };
        },
        { control: false },
      );
      const c1 = phaseWindow({ origin: 0, phases: parsePhases(PHASES) }, result.round, 'MinerCommit1');
      assert.deepEqual(result.result.missedWindows, [], 'no window reported missed');
      assert.equal(result.result.score.status, 'scored', JSON.stringify(result.result.score));
      assert.equal(
        result.result.commits[0].block,
        result.landed.block,
        'the receipt is the commitment that landed before the kill',
      );
      assert.ok(
        result.landed.block >= c1.start && result.landed.block < c1.end,
        `commit 1 at block ${result.landed.block}, window [${c1.start}, ${c1.end})`,
      );
      const signed = commitmentsSigned(address).filter((c) => decodeSignatureCommit(c.payload));
      assert.equal(signed.length, 1, `commit 1 was sent once: ${JSON.stringify(signed)}`);
    } finally {
      control.kill('SIGKILL');
    }
  },
);
