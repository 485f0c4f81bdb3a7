// The command trainer's pure parts: progress from log lines (Connito's structlog console lines,
// colours and all), our JSON-lines protocol, Prometheus text, checkpoint discovery, the
// per-attempt config (read back by PyYAML, the trainer's own reader), and an evaluation command's result line.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parseOrExplain, TrainerSchema } from '../common/config';
import { attemptConfig, fill, toYaml } from '../trainers/command/attempt-config';
import { discoverCheckpoints } from '../trainers/command/checkpoints';
import {
  makeLogParser,
  parseProtocolLine,
  parsePrometheus,
  ProgressTracker,
  stripAnsi,
} from '../trainers/command/progress';
import { CommandTrainerSchema } from '../trainers/command/schema';
import { runEvaluation, torchMinerTrainer } from '../trainers/command';
import { createLogger } from '../infra/log';
import { tempDir } from './helpers/settings';

const TORCH_PYTHON = path.join(__dirname, '..', '.tools', 'venv-torch', 'bin', 'python');

// Exactly what structlog's ConsoleRenderer(colors=True) prints for Connito's
// logger.info("batch loss", loss=…, inner_opt_step=…) (connito/miner/train.py, app_logging.py).
const CONNITO_BATCH_LOSS =
  '\x1b[2m2026-12-01 07:46:21\x1b[0m [\x1b[32m\x1b[1minfo     \x1b[0m] \x1b[1mbatch loss                  \x1b[0m ' +
  '\x1b[36mloss\x1b[0m=\x1b[35m3.099250316619873\x1b[0m \x1b[36minner_opt_step\x1b[0m=\x1b[35m19\x1b[0m';
const CONNITO_LR = '2026-12-01 07:46:21 [info     ] scheduler step               lr=0.0013970352253092715';

describe('log-line progress', () => {
  const defaults = (
    CommandTrainerSchema.parse({ kind: 'command', command: ['x'], evaluate: ['y'] }).progress as {
      patterns: string[];
    }
  ).patterns;
  const parse = makeLogParser(defaults);

  it('strips ANSI colours', () => {
    assert.equal(
      stripAnsi(CONNITO_BATCH_LOSS),
      '2026-12-01 07:46:21 [info     ] batch loss                   loss=3.099250316619873 inner_opt_step=19',
    );
  });

  it("reads Connito's batch loss line: loss, and inner_opt_step (0-based, in progress) as 20 steps done", () => {
    assert.deepEqual(parse(CONNITO_BATCH_LOSS), { loss: 3.099250316619873, step: 20 });
  });

  it('reads the scheduler line for the LR and ignores other lines', () => {
    assert.deepEqual(parse(CONNITO_LR), { lr: 0.0013970352253092715 });
    assert.equal(parse('2026-12-01 07:46:21 [info     ] (4) Saving checkpoint'), undefined);
  });

  it('names a pattern that is not a regular expression', () => {
    assert.throws(() => makeLogParser(['loss=(?<loss>']), /trainer\.progress\.patterns: "loss=\(\?<loss>"/);
  });

  it('the tracker merges lines and measures tokens/s from steps when the log has none', () => {
    const t = new ProgressTracker(10, 1000, 0);
    t.apply({ loss: 3, step: 11 }, 500);
    t.apply({ lr: 0.01 }, 600);
    t.apply({ loss: 2.5, step: 12 }, 1000);
    assert.equal(t.step, 12);
    assert.equal(t.loss, 2.5);
    assert.equal(t.lr, 0.01);
    assert.equal(t.tokensPerSec, 2000); // 2 steps × 1000 tokens in 1 s
    t.apply({ loss: 2.4, step: 11 }, 1100); // a replayed line after a resume does not move the step back
    assert.equal(t.step, 12);
  });

  it('tokens/s is the speed of the last 20 steps, not an average since the process started', () => {
    const t = new ProgressTracker(0, 1000, 0);
    t.apply({ loss: 3, step: 1 }, 5000); // the first step after a 5 s start: 200 tokens/s
    assert.equal(t.tokensPerSec, 200);
    for (let step = 2; step <= 21; step++) t.apply({ loss: 3, step }, 5000 + (step - 1) * 100); // 10 steps/s
    assert.equal(t.tokensPerSec, 10_000); // steps 1→21 in 2 s; the start has left the window
  });
});

describe('JSON-lines protocol', () => {
  it('reads progress and checkpoint messages', () => {
    assert.deepEqual(
      parseProtocolLine('{"minerflow":1,"type":"progress","step":120,"loss":3.21,"lr":0.002,"tokensPerSec":5400}'),
      { type: 'progress', update: { step: 120, loss: 3.21, lr: 0.002, tokensPerSec: 5400 } },
    );
    assert.deepEqual(parseProtocolLine('{"minerflow":1,"type":"checkpoint","step":120,"path":"/c/x"}'), {
      type: 'checkpoint',
      checkpoint: { step: 120, path: '/c/x' },
    });
  });

  it('a null loss is a non-finite one', () => {
    const m = parseProtocolLine('{"minerflow":1,"type":"progress","step":3,"loss":null}');
    assert.ok(
      m.type === 'progress' && Number.isNaN(m.update.loss),
      "m.type === 'progress' && Number.isNaN(m.update.loss)",
    );
  });

  it("Python's default NaN and Infinity are read as non-finite, outside strings only", () => {
    const m = parseProtocolLine(
      '{"minerflow": 1, "type": "progress", "step": 2, "loss": NaN, "auxLoss": -Infinity, "gradNorm": Infinity, "lr": 0.1}',
    );
    if (m.type !== 'progress') throw new Error(`expected progress, got ${JSON.stringify(m)}`);
    const u = m.update;
    assert.ok(
      [u.loss, u.auxLoss, u.gradNorm].every((x) => Number.isNaN(x)),
      `loss, auxLoss, gradNorm: ${[u.loss, u.auxLoss, u.gradNorm].join(', ')}`,
    );
    assert.equal(u.lr, 0.1);
    // A path that says NaN stays what it says; a quoted "NaN" is still not a number.
    assert.deepEqual(parseProtocolLine('{"minerflow":1,"type":"checkpoint","step":2,"path":"/c/NaN: Infinity"}'), {
      type: 'checkpoint',
      checkpoint: { step: 2, path: '/c/NaN: Infinity' },
    });
    const quoted = parseProtocolLine('{"minerflow":1,"type":"progress","step":2,"loss":"NaN","lr":NaN}');
    assert.equal(quoted.type, 'invalid');
    assert.match((quoted as { problem: string }).problem, /progress\.loss = "NaN"/);
  });

  it("an evaluation command's bare NaN loss is a non-finite score, not a missing one", async () => {
    const cfg = torchMinerTrainer({ python: TORCH_PYTHON });
    const evaluator = (printed: string) => ({
      ...cfg,
      evaluate: [process.execPath, '-e', `console.log('log line'); console.log(${JSON.stringify(printed)})`],
    });
    const run = (printed: string) =>
      runEvaluation(evaluator(printed), {}, '/c', createLogger({ level: 'warn' }), new AbortController().signal);
    assert.ok(Number.isNaN(await run('{"loss": NaN, "tokens": 8}')), 'bare NaN');
    assert.ok(Number.isNaN(await run('{"loss": null, "tokens": 8}')), 'null');
    assert.equal(await run('{"loss": 2.5, "tokens": 8}'), 2.5);
    await assert.rejects(run('{"tokens": 8}'), /printed no JSON line with "loss"/);
  });

  it('ordinary lines are not protocol lines; bad protocol lines say what is wrong', () => {
    assert.deepEqual(parseProtocolLine('loss 3.2 at step 4'), { type: 'none' });
    assert.deepEqual(parseProtocolLine('{"other":"json"}'), { type: 'none' });
    const problem = (line: string) => {
      const m = parseProtocolLine(line);
      assert.equal(m.type, 'invalid');
      return (m as { problem: string }).problem;
    };
    assert.match(problem('{"minerflow":1,"type":"progress","step":-1,"loss":3}'), /progress\.step = -1/);
    assert.match(problem('{"minerflow":1,"type":"progress","step":1,"loss":"3"}'), /progress\.loss = "3"/);
    assert.match(problem('{"minerflow":1,"type":"progress","step":1}'), /progress\.loss = missing/);
    assert.match(problem('{"minerflow":2,"type":"progress","step":1,"loss":1}'), /minerflow = 2: expected 1/);
    assert.match(problem('{"minerflow":1,"type":"ckpt","step":1}'), /type = "ckpt"/);
    assert.match(problem('{"minerflow":1, oops'), /not JSON/);
  });
});

describe('Prometheus text', () => {
  it("reads Connito's miner gauges, labelled or not", () => {
    const m = parsePrometheus(
      [
        '# HELP miner_training_loss Local model training loss',
        '# TYPE miner_training_loss gauge',
        'miner_training_loss{expert_group="1"} 2.75',
        'miner_learning_rate 1e-05',
        'miner_tokens_per_sec 812.5',
      ].join('\n'),
    );
    assert.equal(m.get('miner_training_loss'), 2.75);
    assert.equal(m.get('miner_learning_rate'), 1e-5);
    assert.equal(m.get('miner_tokens_per_sec'), 812.5);
  });
});

describe('checkpoint discovery', () => {
  it("finds Connito's globalver_/inneropt_ folders in training order, skipping temp folders and files", async () => {
    const dir = tempDir();
    for (const d of [
      'globalver_0_inneropt_20',
      'globalver_0_inneropt_100',
      'globalver_1_inneropt_5',
      '.tmp_globalver_0_inneropt_120',
      'other',
    ])
      await fs.mkdir(path.join(dir, d));
    await fs.writeFile(path.join(dir, 'config.yaml'), '');
    const found = await discoverCheckpoints(dir, CommandTrainerSchema.shape.checkpointPattern.parse(undefined));
    assert.deepEqual(
      found.map((c) => [c.name, c.version, c.step]),
      [
        ['globalver_0_inneropt_20', 0, 20],
        ['globalver_0_inneropt_100', 0, 100],
        ['globalver_1_inneropt_5', 1, 5],
      ],
    );
    assert.deepEqual(await discoverCheckpoints(path.join(dir, 'absent'), '^x(?<step>\\d+)$'), []);
  });
});

describe('the attempt config', () => {
  const values = {
    lr: 1.5e-7,
    untilStep: 200,
    checkpointDir: '/w/ckpt',
    model: { dModel: 64, moe: null },
    training: { batchSize: 16 },
  };

  it('fills placeholders keeping types, and names an unknown one', () => {
    assert.equal(fill('{lr}', values, 'x'), 1.5e-7);
    assert.equal(fill('{model.moe.experts}', values, 'x'), null); // a dense model has no experts
    assert.equal(fill('--out={checkpointDir}/x', values, 'x'), '--out=/w/ckpt/x');
    assert.throws(
      () => fill('{nope}', values, 'trainer.command[2]'),
      /trainer\.command\[2\]: unknown placeholder \{nope\}/,
    );
  });

  it('sets dotted keys on the template and writes YAML that PyYAML reads back to the same values', () => {
    const cfg = attemptConfig(
      { opt: { lr: 1e-5, outer_lr: 0.7 }, task: { exp: { group_id: 1 } }, name: 'a "quoted": string' },
      {
        'opt.lr': '{lr}',
        'ckpt.checkpoint_path': '{checkpointDir}',
        'sched.total_steps': '{untilStep}',
        'moe.n': '{model.moe.experts}',
      },
      values,
    );
    assert.deepEqual(cfg, {
      opt: { lr: 1.5e-7, outer_lr: 0.7 },
      task: { exp: { group_id: 1 } },
      name: 'a "quoted": string',
      ckpt: { checkpoint_path: '/w/ckpt' },
      sched: { total_steps: 200 },
      moe: { n: null },
    });
    const read = execFileSync(
      TORCH_PYTHON,
      ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'],
      {
        input: toYaml(cfg),
        encoding: 'utf8',
      },
    );
    assert.deepEqual(JSON.parse(read), cfg);
  });

  it('refuses to set a key under a template value that is not a section', () => {
    assert.throws(
      () => attemptConfig({ opt: 3 }, { 'opt.lr': 1 }, values),
      /trainer\.config\.set\.opt\.lr: 'opt' is 3/,
    );
  });
});

describe('the trainer config', () => {
  it('validates as the cycle input `trainer`, and bad input names the field', () => {
    const t = parseOrExplain(TrainerSchema, torchMinerTrainer({ python: TORCH_PYTHON }), 'trainer');
    assert.equal(t.kind, 'command');
    assert.throws(
      () => parseOrExplain(TrainerSchema, { kind: 'command', command: [], evaluate: ['e'] }, 'trainer'),
      /trainer\.command|command = \[\]/,
    );
    assert.throws(
      () =>
        parseOrExplain(
          TrainerSchema,
          { kind: 'command', command: ['t'], evaluate: ['e'], stop: { sigintGraceSeconds: -1 } },
          'trainer',
        ),
      /stop\.sigintGraceSeconds = -1/,
    );
    const kept = parseOrExplain(
      TrainerSchema,
      torchMinerTrainer({ python: TORCH_PYTHON, keepAlive: { idleSeconds: 20 } }),
      'trainer',
    );
    assert.deepEqual(kept.kind === 'command' && kept.keepAlive, { idleSeconds: 20 });
    assert.equal(kept.kind === 'command' && kept.config.set['ckpt.checkpoint_interval'], '{training.segmentSteps}');
    assert.throws(
      () =>
        parseOrExplain(
          TrainerSchema,
          { kind: 'command', command: ['t'], evaluate: ['e'], keepAlive: { idleSeconds: 0 } },
          'trainer',
        ),
      /keepAlive\.idleSeconds = 0/,
    );
  });
});
