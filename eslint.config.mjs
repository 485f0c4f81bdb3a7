// Lint rules in the spirit of the Temporal TypeScript samples: no floating promises anywhere, and
// no Node built-ins (or worker/activity/client SDK packages) in code that runs inside the workflow
// sandbox — workflows, the modules they import, and each subnet's workflow and state.
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Every module the workflow bundle pulls in: the relative value imports reachable from
 * workflows/index.ts (type-only imports are erased), found when the config loads, so a new module a
 * workflow imports is checked without anyone remembering to list it.
 */
function workflowCode(entry) {
  const root = path.dirname(fileURLToPath(import.meta.url));
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'(\.[^']+)'/gms)) {
      const base = path.resolve(path.dirname(file), m[1]);
      visit([`${base}.ts`, path.join(base, 'index.ts')].find((f) => existsSync(f)) ?? `${base}.ts`);
    }
  };
  visit(path.join(root, entry));
  return [...seen].map((f) => path.relative(root, f));
}

const WORKFLOW_CODE = workflowCode('workflows/index.ts');

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.tools/**', '.minerflow/**', 'bin/**', 'model/replica-worker.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test()/describe() return promises the runner awaits itself.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      // Optional backends (tfjs-node, wasm) load with require() only when chosen.
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'object-shorthand': ['error', 'always'],
    },
  },
  {
    // A failing assert.ok / assert() without a message makes node:assert parse our TypeScript source
    // to quote the expression, and on some lines that never ends: the test hangs instead of failing.
    files: ['test/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[arguments.length=1][callee.object.name='assert'][callee.property.name='ok']",
          message:
            'give assert.ok a message: without one a failure can hang the test (node:assert parses the TS source)',
        },
        {
          selector: "CallExpression[arguments.length=1][callee.name='assert']",
          message:
            'give assert() a message: without one a failure can hang the test (node:assert parses the TS source)',
        },
      ],
    },
  },
  {
    files: WORKFLOW_CODE,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...builtinModules, ...builtinModules.map((m) => `node:${m}`)].map((name) => ({
            name,
            message: 'workflow code runs in the deterministic sandbox: no Node built-ins',
          })),
          patterns: [
            {
              group: [
                '@temporalio/activity',
                '@temporalio/worker',
                '@temporalio/client',
                '**/infra/**',
                '**/activities/*',
                '!**/activities/index',
              ],
              message: 'workflow code imports only @temporalio/workflow, types and pure modules',
            },
          ],
        },
      ],
    },
  },
);
