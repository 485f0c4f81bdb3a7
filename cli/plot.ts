// Loss curves: in the terminal (good enough to see whether training is going down) and as SVG files.
import { lineChartSvg } from '../bench/plot-svg';

/** Training loss by step and held-out loss at each segment's end, as one SVG chart; undefined with nothing finite to draw. */
export function lossCurvesSvg(
  title: string,
  steps: { step: number; loss: number }[],
  segments: { endStep: number; heldOutLoss: number | null }[],
): string | undefined {
  const train = steps.map((s) => ({ x: s.step, y: s.loss }));
  const heldOut = segments.map((s) => ({ x: s.endStep, y: s.heldOutLoss ?? NaN }));
  if (![...train, ...heldOut].some((p) => Number.isFinite(p.y))) return undefined;
  return lineChartSvg(
    [
      { name: 'training loss', color: '#1f77b4', points: train },
      { name: 'held-out loss (segment end)', color: '#d62728', points: heldOut },
    ],
    { title: `${title}: loss by step`, xLabel: 'step', yLabel: 'loss (nats/token)' },
  );
}

export function asciiPlot(values: number[], opts: { width?: number; height?: number; label?: string } = {}): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length < 2) return '(not enough points to plot)';
  const width = Math.min(opts.width ?? 72, finite.length);
  const height = opts.height ?? 12;
  // Average into `width` buckets so every point counts.
  const buckets: number[] = [];
  for (let i = 0; i < width; i++) {
    const a = Math.floor((i * finite.length) / width);
    const b = Math.max(a + 1, Math.floor(((i + 1) * finite.length) / width));
    const slice = finite.slice(a, b);
    buckets.push(slice.reduce((x, y) => x + y, 0) / slice.length);
  }
  const lo = Math.min(...buckets);
  const hi = Math.max(...buckets);
  const span = hi - lo || 1;
  const rows: string[] = [];
  for (let r = height - 1; r >= 0; r--) {
    const level = lo + (span * r) / (height - 1);
    const line = buckets.map((v) => (Math.round(((v - lo) / span) * (height - 1)) === r ? '•' : ' ')).join('');
    rows.push(`${level.toFixed(3).padStart(8)} │${line}`);
  }
  rows.push(`${' '.repeat(8)} └${'─'.repeat(width)}`);
  rows.push(`${' '.repeat(10)}${opts.label ?? `step 1 … ${values.length}`}`);
  return rows.join('\n');
}
