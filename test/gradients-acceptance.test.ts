// The acceptance policy, table by table: task types per trainer, the family allow-list, model size
// against memory and the method chosen, deadlines under earliest-deadline-first, and the cooldown.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decideOffer,
  modelFamily,
  paramsFromName,
  scheduleEdf,
  sizeBucket,
  type DecisionContext,
} from '../subnets/gradients/acceptance';
import { PoolSchema, type Pool } from '../subnets/gradients/config';
import type { JobKindStats, PoolJob } from '../subnets/gradients/ports';
import type { MinerTaskOffer } from '../subnets/gradients/protocol';

const GB = 1024 ** 3;
const NOW = Date.parse('2026-12-01T10:00:00Z');
const H = 3600_000;

const cpu: Pool = PoolSchema.parse({ name: 'cpu', memoryBytes: 8 * GB, tokensPerSecPerBillion: 2_000 });
const big: Pool = PoolSchema.parse({
  name: 'big',
  memoryBytes: 80 * GB,
  trainer: 'command',
  taskTypes: ['InstructTextTask', 'DpoTask', 'GrpoTask', 'ChatTask', 'ImageTask'],
  tokensPerSecPerBillion: 20_000,
});

const offer = (o: Partial<MinerTaskOffer>): MinerTaskOffer => ({
  model: 'unsloth/Llama-3.2-1B',
  hours_to_complete: 8,
  task_id: 't1',
  task_type: 'InstructTextTask',
  ds_size: 10_000,
  ...o,
});
const ctx = (c: Partial<DecisionContext> = {}): DecisionContext => ({
  pools: [cpu],
  loads: [],
  stats: null,
  now: NOW,
  ...c,
});

test('model family and size are read from the model name', () => {
  const table: [string, string, number | null, string][] = [
    ['unsloth/Llama-3.2-1B', 'llama', 1e9, '1-3B'],
    ['TinyLlama/TinyLlama-1.1B-Chat-v1.0', 'llama', 1.1e9, '1-3B'],
    ['Qwen/Qwen2.5-0.5B-Instruct', 'qwen2', 0.5e9, '100M-1B'],
    ['HuggingFaceTB/SmolLM2-135M', 'smollm', 135e6, '100M-1B'],
    ['mistralai/Mistral-7B-v0.1', 'mistral', 7e9, '3-8B'],
    ['NousResearch/Meta-Llama-3-70b', 'llama', 70e9, '40B+'],
    ['openai-community/gpt2', 'gpt2', null, 'unknown'],
    ['local/minerflow-gpt-2M', 'minerflow-gpt', 2e6, '1-10M'],
    ['acme/Zephyr-7B', 'zephyr', 7e9, '3-8B'],
  ];
  for (const [name, family, params, bucket] of table) {
    assert.equal(modelFamily(name), family, name);
    assert.equal(paramsFromName(name), params, name);
    assert.equal(sizeBucket(params), bucket, name);
  }
});

test('task types: GRPO and image jobs only on a pool whose trainer is command', () => {
  const table: [MinerTaskOffer['task_type'], Pool[], boolean, RegExp][] = [
    ['InstructTextTask', [cpu], true, /^cpu/],
    ['DpoTask', [cpu], true, /^cpu/],
    ['ChatTask', [cpu], true, /^cpu/],
    ['GrpoTask', [cpu], false, /GrpoTask needs a pool whose trainer is 'command'.*cpu \(tfjs\)/],
    ['ImageTask', [cpu], false, /ImageTask needs a pool whose trainer is 'command'/],
    ['GrpoTask', [cpu, big], true, /^big/],
  ];
  for (const [taskType, pools, accepted, reason] of table) {
    const d = decideOffer(offer({ task_type: taskType }), ctx({ pools }));
    assert.equal(d.accepted, accepted, `${taskType}: ${d.reason}`);
    assert.match(d.reason, reason);
    if (!accepted) assert.equal(d.reasonClass, 'task_type');
  }
  // A tfjs pool configured with GrpoTask still does not take it: its trainer cannot.
  const misconfigured = { ...cpu, taskTypes: [...cpu.taskTypes, 'GrpoTask' as const] };
  assert.equal(decideOffer(offer({ task_type: 'GrpoTask' }), ctx({ pools: [misconfigured] })).accepted, false);
});

test('the family allow-list declines other families with the family named', () => {
  const d = decideOffer(offer({ model: 'tiiuae/falcon-7b' }), ctx({ pools: [big] }));
  assert.equal(d.accepted, false);
  assert.equal(d.reasonClass, 'family');
  assert.match(d.reason, /model family 'falcon'/);
  const allowed = decideOffer(
    offer({ model: 'tiiuae/falcon-7b' }),
    ctx({ pools: [big], policy: { families: ['falcon'] } }),
  );
  assert.equal(allowed.accepted, true, allowed.reason);
});

test('model size against memory: the preferred method that fits, else declined with the need', () => {
  // cpu: 8 GiB. full = 16 B/param × 1.2; lora ≈ 2.16 B/param × 1.2; lastLayers 3.6 × 1.2.
  const table: [string, number | undefined, 'full' | 'lora' | 'lastLayers' | null][] = [
    ['unsloth/Llama-3.2-135M', undefined, 'full'], // 2.4 GiB
    ['unsloth/Llama-3.2-1B', undefined, 'lora'], // full 17.9 GiB, lora 2.4 GiB
    ['whatever/llama-custom', 3_000_000_000, 'lora'], // params from model_params_count: lora 7.2 GiB
    ['unsloth/Llama-3.1-8B', undefined, null], // lora 19.3 GiB
  ];
  for (const [model, count, method] of table) {
    const d = decideOffer(offer({ model, model_params_count: count, hours_to_complete: 1000 }), ctx());
    assert.equal(d.method, method, `${model}: ${d.reason}`);
    if (!method) {
      assert.equal(d.reasonClass, 'memory');
      assert.match(
        d.reason,
        /8B params\) needs at least 19\.3 GiB; the largest slot taking InstructTextTask has 8\.0 GiB/,
      );
    }
  }
  // A pool that allows only LoRA uses it even for a small model.
  const loraOnly = { ...cpu, methods: ['lora' as const] };
  assert.equal(decideOffer(offer({ model: 'unsloth/Llama-3.2-135M' }), ctx({ pools: [loraOnly] })).method, 'lora');
  const unknown = decideOffer(offer({ model: 'openai-community/gpt2', model_params_count: null }), ctx());
  assert.equal(unknown.reasonClass, 'size_unknown');
});

test('a job whose deadline is too close for its size is declined; the same job with time is accepted', () => {
  // 1B with LoRA on cpu: 10 000 rows × 256 tokens at 2000/1 × 1.5 tok/s ≈ 853 s + 300 s overhead.
  const tight = decideOffer(offer({ hours_to_complete: 0.3 }), ctx());
  assert.equal(tight.accepted, false);
  assert.equal(tight.reasonClass, 'deadline');
  assert.match(tight.reason, /cannot finish in 18 min: cpu: would finish .* after the deadline/);
  const roomy = decideOffer(offer({ hours_to_complete: 1 }), ctx());
  assert.equal(roomy.accepted, true, roomy.reason);
  assert.equal(roomy.estimatedSeconds, Math.ceil((10_000 * 256) / 3000 + 300));
  assert.equal(roomy.estimatedFinish, NOW + roomy.estimatedSeconds! * 1000);
  // A bigger data set at the same deadline does not fit.
  assert.equal(decideOffer(offer({ hours_to_complete: 1, ds_size: 100_000 }), ctx()).accepted, false);
});

test('measured throughput from past jobs replaces the pool figure', () => {
  const slow: JobKindStats = {
    offered: 3,
    accepted: 3,
    finished: 3,
    late: 0,
    failed: 0,
    tokensPerSec: 100,
    finalLoss: 1.2,
  };
  const d = decideOffer(offer({ hours_to_complete: 1 }), ctx({ stats: slow }));
  assert.equal(d.accepted, false, 'at 150 tok/s, 2.56M tokens take 4.7 h');
  const fast = decideOffer(offer({ hours_to_complete: 1 }), ctx({ stats: { ...slow, tokensPerSec: 10_000 } }));
  assert.match(fast.reason, /measured speed of past jobs/);
});

test('earliest deadline first: a new job may go ahead of later ones only if they still make it', () => {
  const job = (taskId: string, deadlineH: number, hours: number, running = false): PoolJob => ({
    taskId,
    deadline: NOW + deadlineH * H,
    estimatedSeconds: hours * 3600,
    startedAt: running ? NOW - H : null,
  });
  // One slot busy for 1 h; a queued job due in 10 h needing 3 h.
  const loads = [{ pool: 'cpu', running: [job('r', 20, 1, true)], queued: [job('q', 10, 3)] }];
  // New 1B LoRA job (~0.32 h) due in 3 h: goes first (finishes ~1.3 h), q then finishes ~4.3 h < 10 h − reserve.
  const first = decideOffer(offer({ hours_to_complete: 3 }), ctx({ loads }));
  assert.equal(first.accepted, true, first.reason);
  assert.ok(first.estimatedFinish! < NOW + 1.5 * H, 'first.estimatedFinish! < NOW + 1.5 * H');
  // q due in 4.5 h is squeezed: 1 + 0.32 + 3 = 4.32 h > 4.5 h − (600 s + 10% × 4.5 h): the new job is declined for q's sake.
  const squeezed = [{ pool: 'cpu', running: [job('r', 20, 1, true)], queued: [job('q', 4.5, 3)] }];
  const d = decideOffer(offer({ hours_to_complete: 3 }), ctx({ loads: squeezed }));
  assert.equal(d.accepted, false);
  assert.match(d.reason, /would push accepted job q past its deadline/);
  // With two pools, it goes where it fits.
  const cpu2 = { ...cpu, name: 'cpu2' };
  const routed = decideOffer(offer({ hours_to_complete: 3 }), ctx({ pools: [cpu, cpu2], loads: squeezed }));
  assert.equal(routed.pool, 'cpu2', routed.reason);

  // The schedule itself: two slots, deadline order, not arrival order.
  const finish = scheduleEdf(2, [job('r', 9, 2, true)], [job('late', 9, 1), job('soon', 2, 1), job('mid', 5, 1)], NOW, {
    heavySeconds: 1e9,
    cooldownSeconds: 0,
  });
  assert.deepEqual(
    ['soon', 'mid', 'late'].map((id) => (finish.get(id)! - NOW) / H),
    [1, 2, 3],
  );
});

test('a heavy job leaves its slot cooling down before the next one', () => {
  const heavy: PoolJob = { taskId: 'h', deadline: NOW + 100 * H, estimatedSeconds: 5 * 3600, startedAt: NOW };
  const next: PoolJob = { taskId: 'n', deadline: NOW + 100 * H, estimatedSeconds: 3600, startedAt: null };
  const p = { heavySeconds: 4 * 3600, cooldownSeconds: 1800 };
  assert.equal((scheduleEdf(1, [heavy], [next], NOW, p).get('n')! - NOW) / H, 6.5);
  assert.equal((scheduleEdf(1, [heavy], [next], NOW, { ...p, heavySeconds: 6 * 3600 }).get('n')! - NOW) / H, 6);
  // The cooldown decides an offer: the new job (~0.32 h) starts at 5.5 h instead of 5 h, and 5.82 h
  // misses 6.4 h less its reserve (600 s + 10% of 6.4 h = 5.59 h) where 5.32 h makes it.
  const loads = [{ pool: 'cpu', running: [heavy], queued: [] }];
  const policy = { heavySeconds: 4 * 3600, cooldownSeconds: 1800 };
  assert.equal(decideOffer(offer({ hours_to_complete: 6.4 }), ctx({ loads, policy })).accepted, false);
  assert.equal(
    decideOffer(offer({ hours_to_complete: 6.4 }), ctx({ loads, policy: { ...policy, cooldownSeconds: 0 } })).accepted,
    true,
  );
});

test('every decision has a reason; bad hours are declined', () => {
  const d = decideOffer(offer({ hours_to_complete: 0 }), ctx());
  assert.equal(d.accepted, false);
  assert.match(d.reason, /hours_to_complete must be positive/);
});
