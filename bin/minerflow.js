#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx (a dependency), so there is no build step to forget.
require('tsx/cjs');
require('../cli/minerflow.ts');
