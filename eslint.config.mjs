// Lint rules in the spirit of the Temporal TypeScript samples: no floating promises anywhere, and
// no Node built-ins (or worker/activity/client SDK packages) in code that runs inside the workflow
// sandbox — workflows, the modules they import, and each subnet's workflow and state.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const WORKFLOW_CODE = [
  'workflows/**/*.ts',
  'subnets/*/workflow.ts',
  'subnets/*/cycle-state.ts',
  'subnets/*/config.ts',
  'subnets/*/types.ts',
  'common/**/*.ts',
];

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
