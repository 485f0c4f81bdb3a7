// The hostile-input suite, end to end on the real Temporal dev server and devnet with real workers:
// each bad input must fail its cycle at once (a non-retryable ApplicationFailure, no activity
// attempt > 1) with a message that names the field or file at fault. All cases share one control
// and one gpu worker; a valid cycle afterwards, on the same workers, shows none left them unhealthy.
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { TASK_QUEUES } from '../common/queues';
import type { Settings } from '../infra/settings';
import { miningCycle } from '../workflows';
import { SMALL_CYCLE, testSettings } from './helpers/settings';
import { useTemporal, withWorkers } from './helpers/temporal';

const settings = testSettings({ MINERFLOW_VALIDATOR_CORPUS: 'sample:brown:ar' });
let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;
useTemporal(settings, (t) => ({ env, bundle } = t));

/** A small cycle on a small corpus: the base for cases that get past validation and preflight. */
const SMALL = { ...SMALL_CYCLE, corpus: { path: 'sample:brown:ar' }, curate: { heldOutFraction: 0.1 } };
const JUNK = 'not-json-SECRET-JUNK-7f3a';

interface BadCase {
  name: string;
  /** The cycle input, or a function that prepares files under the test's folders and returns it. */
  input: unknown | ((s: Settings) => unknown);
  /** The failure message must match: it names the field or file (and the value, where shown). */
  expect: RegExp;
  /** Text the message must never contain (a secret from a file). */
  never?: string;
}

/** A folder under the data folder (inside MINERFLOW_DATA_ROOTS), created fresh. */
function dataFolder(s: Settings, name: string): string {
  const dir = path.join(s.dataDir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes `<walletsDir>/<wallet>/hotkeys/default` with `content`. */
function hotkeyFile(s: Settings, wallet: string, content: string): void {
  const dir = path.join(s.walletsDir, wallet, 'hotkeys');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'default'), content);
}

const CASES: BadCase[] = [
  // --- not an object
  { name: 'null input', input: null, expect: /\(root\) = null: expected an object/ },
  { name: 'a string', input: 'train please', expect: /\(root\) = "train please": .*expected object/ },
  { name: 'an array', input: [1, 2], expect: /\(root\) = \[1,2\]: .*expected object/ },
  { name: 'a number', input: 42, expect: /\(root\) = 42: .*expected object/ },

  // --- types and bounds
  {
    name: 'negative learningRate',
    input: { training: { learningRate: -0.01 } },
    expect: /training\.learningRate = -0\.01/,
  },
  { name: 'zero learningRate', input: { training: { learningRate: 0 } }, expect: /training\.learningRate = 0:/ },
  {
    name: 'huge learningRate',
    input: { training: { learningRate: 1e9 } },
    expect: /training\.learningRate = 1000000000:/,
  },
  {
    name: 'string learningRate',
    input: { training: { learningRate: 'fast' } },
    expect: /training\.learningRate = "fast": .*expected number/,
  },
  { name: 'non-integer steps', input: { training: { steps: 10.5 } }, expect: /training\.steps = 10\.5: .*int/ },
  { name: 'steps 0', input: { training: { steps: 0 } }, expect: /training\.steps = 0:/ },
  { name: 'batchSize 100000', input: { training: { batchSize: 100000 } }, expect: /training\.batchSize = 100000:/ },
  {
    name: 'steps below the default warmupSteps',
    input: { training: { steps: 10 } },
    expect: /training\.warmupSteps = 20 \(the default\): must not exceed training\.steps \(10\)/,
  },
  {
    name: 'warmupSteps > steps',
    input: { training: { steps: 10, warmupSteps: 20 } },
    expect: /training\.warmupSteps = 20: must not exceed training\.steps \(10\)/,
  },
  {
    name: 'dModel not divisible by nHead',
    input: { model: { dModel: 30, nHead: 4 } },
    expect: /model\.nHead = 4: must divide model\.dModel \(30\)/,
  },
  { name: 'nLayer 0', input: { model: { nLayer: 0 } }, expect: /model\.nLayer = 0:/ },
  { name: 'seqLen 100000', input: { model: { seqLen: 100000 } }, expect: /model\.seqLen = 100000:/ },
  { name: 'unknown backend', input: { model: { backend: 'quantum' } }, expect: /model\.backend = "quantum":/ },
  { name: 'unknown tokenizer', input: { model: { tokenizer: 'words' } }, expect: /model\.tokenizer = "words":/ },
  { name: 'moe.experts 1', input: { model: { moe: { experts: 1, topK: 1 } } }, expect: /model\.moe\.experts = 1:/ },
  {
    name: 'moe.topK > experts',
    input: { model: { moe: { experts: 2, topK: 3 } } },
    expect: /model\.moe\.topK = 3: must be at most model\.moe\.experts \(2\)/,
  },
  {
    name: 'lrFind minLr ≥ maxLr',
    input: { training: { lrFind: { enabled: true, minLr: 0.5, maxLr: 0.1 } } },
    expect: /training\.lrFind = .*"minLr":0\.5.*minLr < maxLr/,
  },
  { name: 'policy.lrBackoff 1.5', input: { policy: { lrBackoff: 1.5 } }, expect: /policy\.lrBackoff = 1\.5:/ },
  { name: 'commit.maxRounds 0', input: { commit: { maxRounds: 0 } }, expect: /commit\.maxRounds = 0:/ },
  { name: 'score.pollSeconds 0', input: { score: { pollSeconds: 0 } }, expect: /score\.pollSeconds = 0:/ },
  { name: 'eval.maxTokens 0', input: { eval: { maxTokens: 0 } }, expect: /eval\.maxTokens = 0:/ },
  { name: 'training.threads 0', input: { training: { threads: 0 } }, expect: /training\.threads = 0:/ },
  {
    name: 'heartbeatTimeoutSeconds 1',
    input: { training: { heartbeatTimeoutSeconds: 1 } },
    expect: /training\.heartbeatTimeoutSeconds = 1:/,
  },
  {
    name: 'curate.heldOutFraction 0.9',
    input: { curate: { heldOutFraction: 0.9 } },
    expect: /curate\.heldOutFraction = 0\.9:/,
  },
  { name: "corpus.format 'xml'", input: { corpus: { format: 'xml' } }, expect: /corpus\.format = "xml":/ },
  { name: "trainer.kind 'pytorch'", input: { trainer: { kind: 'pytorch' } }, expect: /trainer\.kind = "pytorch":/ },

  // --- unknown keys
  { name: 'unknown top-level key', input: { trainig: { steps: 10 } }, expect: /Unrecognized key.*trainig/ },
  { name: 'unknown nested key', input: { model: { dmodel: 64 } }, expect: /model = .*Unrecognized key.*dmodel/ },

  // --- wallets
  { name: "wallet '..'", input: { miner: { wallet: '..' } }, expect: /miner\.wallet = "\.\.":/ },
  {
    name: "hotkey '../../etc/passwd'",
    input: { miner: { hotkey: '../../etc/passwd' } },
    expect: /miner\.hotkey = "\.\.\/\.\.\/etc\/passwd":/,
  },
  { name: "wallet 'a/b'", input: { miner: { wallet: 'a/b' } }, expect: /miner\.wallet = "a\/b":/ },
  { name: "wallet ''", input: { miner: { wallet: '' } }, expect: /miner\.wallet = "":/ },
  {
    name: 'a wallet that does not exist',
    input: { miner: { wallet: 'nosuchwallet' } },
    expect: /^preflight failed: .*wallet 'nosuchwallet' not found at \S*nosuchwallet\/hotkeys\/default/,
  },
  {
    name: 'a hotkey file of garbage JSON',
    input: (s: Settings) => (hotkeyFile(s, 'broken', `{${JUNK}`), { miner: { wallet: 'broken' } }),
    expect: /^preflight failed: hotkey file \S*broken\/hotkeys\/default is not valid JSON/,
    never: JUNK,
  },
  {
    name: 'a password-encrypted hotkey file',
    input: (s: Settings) => (hotkeyFile(s, 'locked', `$NACL${JUNK}`), { miner: { wallet: 'locked' } }),
    expect: /^preflight failed: hotkey file \S*locked\/hotkeys\/default is encrypted with a password/,
    never: JUNK,
  },
  {
    name: 'miner.netuid 7 (not registered)',
    input: { miner: { netuid: 7 } },
    expect: /^preflight failed: .*not registered on netuid 7/,
  },

  // --- corpus and path attacks (the worker reads only under MINERFLOW_DATA_ROOTS)
  {
    name: 'corpus /etc',
    input: { corpus: { path: '/etc' } },
    expect: /corpus\.path '\/etc' is outside the folders corpora may be read from/,
  },
  {
    name: 'corpus /etc/passwd as text',
    input: { corpus: { path: '/etc/passwd', format: 'text' } },
    expect: /corpus\.path '\/etc\/passwd' is outside/,
  },
  {
    name: 'corpus ../../../etc',
    input: { corpus: { path: '../../../etc' } },
    expect: /corpus\.path '\.\.\/\.\.\/\.\.\/etc' is outside/,
  },
  {
    name: 'corpus glob /etc/*.conf',
    input: { corpus: { path: '/etc/*.conf' } },
    expect: /corpus\.path '\/etc\/\*\.conf' is outside/,
  },
  { name: 'corpus sample:nope', input: { corpus: { path: 'sample:nope' } }, expect: /corpus\.path 'sample:nope'/ },
  {
    name: 'a symlink in the data folder to /etc',
    input: (s: Settings) => {
      const link = path.join(dataFolder(s, 'links'), 'etc');
      symlinkSync('/etc', link);
      return { corpus: { path: link } };
    },
    expect: /corpus\.path '\S*links\/etc' is outside/,
  },
  {
    name: 'curate.domain.reference /etc',
    input: { ...SMALL, curate: { domain: { reference: '/etc' } } },
    expect: /curate\.domain\.reference '\/etc' is outside/,
  },
  {
    name: 'an empty folder',
    input: (s: Settings) => ({ corpus: { path: dataFolder(s, 'empty') } }),
    expect: /corpus\.path '\S*empty' holds no \.txt, \.md or \.jsonl files/,
  },
  {
    name: 'only binary files, onMalformed fail',
    input: (s: Settings) => {
      const dir = dataFolder(s, 'binary');
      writeFileSync(
        path.join(dir, 'blob.txt'),
        Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1, 0x80, 0x00, 0xff]),
      );
      return { corpus: { path: dir }, curate: { onMalformed: 'fail' } };
    },
    expect: /\S*binary\/blob\.txt: binary file .*curate\.onMalformed/,
  },
  {
    name: 'only invalid UTF-8 (no NUL), onMalformed fail',
    input: (s: Settings) => {
      const dir = dataFolder(s, 'latin1');
      writeFileSync(path.join(dir, 'notes.txt'), Buffer.from('caf\xe9 cr\xe8me br\xfbl\xe9e, '.repeat(40), 'latin1'));
      return { corpus: { path: dir }, curate: { onMalformed: 'fail' } };
    },
    expect: /\S*latin1\/notes\.txt: .*UTF-8.*curate\.onMalformed/,
  },

  // --- store keys
  {
    name: "initFrom '../../etc'",
    input: { ...SMALL, training: { ...SMALL.training, initFrom: '../../etc' } },
    expect: /training\.initFrom = "\.\.\/\.\.\/etc": must be a store key/,
  },
  {
    name: "initFrom 'runs/nope/step-1' (missing)",
    input: { ...SMALL, training: { ...SMALL.training, initFrom: 'runs/nope/step-1' } },
    expect:
      /^preflight failed: training\.initFrom 'runs\/nope\/step-1': no model there \(model\.safetensors is not in /,
  },

  // --- a model that cannot fit (the gpu worker's capacity check, at preflight)
  {
    name: 'a model that cannot fit',
    input: { model: { dModel: 8192, nLayer: 96, nHead: 64, seqLen: 4096 }, training: { batchSize: 4096 } },
    expect: /^preflight failed: .*model\.dModel.*model\.nLayer.*model\.seqLen.*training\.batchSize/,
  },
];

/** Starts one cycle, waits for it to fail, and checks the failure and its history. */
async function expectRefused(t: TestContext, c: BadCase, i: number): Promise<void> {
  const input = typeof c.input === 'function' ? (c.input as (s: Settings) => unknown)(settings) : c.input;
  const handle = await env.client.workflow.start(miningCycle, {
    taskQueue: TASK_QUEUES.control,
    workflowId: `bad-input-${i}-${Date.now()}`,
    args: [input],
  });
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, `expected the workflow to fail, got ${String(err)}`);
  assert.ok(err.cause instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err.cause)}`);
  assert.equal(err.cause.nonRetryable, true, `not marked non-retryable: ${err.cause.message}`);
  t.diagnostic(err.cause.message);
  assert.match(err.cause.message, c.expect);
  if (c.never)
    assert.ok(!err.cause.message.includes(c.never), `the message echoes the file's content: ${err.cause.message}`);
  const history = await handle.fetchHistory();
  const attempts = (history.events ?? []).flatMap((e) =>
    e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 0] : [],
  );
  assert.ok(
    attempts.every((a) => a <= 1),
    `an activity was retried (attempts ${attempts.join(', ')}): ${err.cause.message}`,
  );
  const kinds = (history.events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
  assert.ok(
    kinds.includes('EVENT_TYPE_WORKFLOW_EXECUTION_FAILED'),
    "kinds.includes('EVENT_TYPE_WORKFLOW_EXECUTION_FAILED')",
  );
}

test(
  'hostile input: every bad case is refused non-retryably, naming its field or file; then a valid cycle scores on the same workers',
  { timeout: 1_200_000 },
  async (t) => {
    assert.ok(CASES.length >= 40, `${CASES.length} cases`);
    await withWorkers(env, bundle, settings, async () => {
      for (const [i, c] of CASES.entries()) {
        await t.test(c.name, { timeout: 600_000 }, (st) => expectRefused(st, c, i));
      }
      await t.test('a valid small cycle afterwards scores', { timeout: 600_000 }, async () => {
        const handle = await env.client.workflow.start(miningCycle, {
          taskQueue: TASK_QUEUES.control,
          workflowId: `bad-input-valid-${Date.now()}`,
          args: [SMALL],
        });
        const result = await handle.result();
        assert.equal(result.score.status, 'scored', JSON.stringify(result.score));
      });
    });
    console.log(
      `bad-input: ${CASES.length} cases refused non-retryably, each naming its field or file; a valid cycle then scored on the same workers`,
    );
  },
);
