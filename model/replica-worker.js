// Entry of a training replica's worker thread (see parallel.ts). Worker threads start from a plain
// .js file; registering tsx here lets it load the TypeScript whether the process itself runs under
// `node --import tsx` or bin/minerflow.js.
require('tsx/cjs');
require('./replica-worker.ts');
