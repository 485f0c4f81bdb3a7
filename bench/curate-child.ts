// Runs one curation in its own process and reports its peak memory (for bench/curate-memory.ts).
import { CurateSchema } from '../common/config';
import { curate } from '../curation/curate';

void (async () => {
  const [corpus, out] = process.argv.slice(2);
  const opts = {
    ...CurateSchema.parse({}),
    format: 'auto' as const,
    textField: 'text',
    domain: { reference: null, quantile: 0.05 },
  };
  const t0 = performance.now();
  const ds = await curate(corpus, out, opts);
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    JSON.stringify({
      maxRssMB: process.resourceUsage().maxRSS / 1024,
      seconds,
      documentsIn: ds.report.documentsIn,
      kept: ds.report.kept,
    }),
  );
})();
