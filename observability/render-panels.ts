// Draws the dashboard's time-series panels from a running Prometheus, as one SVG: the same queries
// Grafana runs (observability/grafana/dashboards/minerflow.json), over Prometheus' query_range API,
// drawn with bench/plot-svg.ts. For hosts where Grafana does not run (this repo's build host has
// neither Docker images nor a Grafana package); `rsvg-convert -o panels.png panels.svg` makes a PNG.
//
//   node --import tsx observability/render-panels.ts --prometheus http://127.0.0.1:9090 \
//     --minutes 15 --out panels.svg [--panel "Training loss" --panel "Held-out loss per segment" …]
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { lineChartSvg, type Series } from '../bench/plot-svg';

interface Panel {
  type: string;
  title: string;
  targets: { expr: string; legendFormat: string }[];
  fieldConfig: { defaults: { unit?: string } };
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const WIDTH = 640;
const HEIGHT = 340;

/** The dashboard's variables as "all", and $__range as the window drawn. */
export function expand(expr: string, minutes: number): string {
  return expr.replace(/\$__range/g, `${minutes}m`).replace(/\$(subnet|hotkey)/g, '.*');
}

function legend(format: string, labels: Record<string, string>): string {
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => labels[k] ?? '');
}

async function queryRange(prometheus: string, expr: string, start: number, end: number, step: number) {
  const url = `${prometheus}/api/v1/query_range?${new URLSearchParams({ query: expr, start: String(start), end: String(end), step: String(step) })}`;
  const res = await fetch(url);
  const body = (await res.json()) as {
    status: string;
    error?: string;
    data?: { result: { metric: Record<string, string>; values: [number, string][] }[] };
  };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? res.status}`);
  return body.data!.result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      prometheus: { type: 'string', default: 'http://127.0.0.1:9090' },
      minutes: { type: 'string', default: '15' },
      out: { type: 'string', default: 'panels.svg' },
      panel: { type: 'string', multiple: true },
    },
  });
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, not '${values.minutes}'`);
  const dashboard = JSON.parse(
    await fs.readFile(path.join(__dirname, 'grafana', 'dashboards', 'minerflow.json'), 'utf8'),
  ) as { title: string; panels: Panel[] };
  const wanted = values.panel;
  const panels = dashboard.panels.filter((p) => p.type === 'timeseries' && (!wanted || wanted.includes(p.title)));
  if (panels.length === 0) throw new Error(`no time-series panel named ${JSON.stringify(wanted)}`);
  const end = Date.now() / 1000;
  const start = end - minutes * 60;
  const step = Math.max(1, Math.round((minutes * 60) / 400));
  const charts: string[] = [];
  for (const p of panels) {
    const series: Series[] = [];
    for (const t of p.targets) {
      for (const r of await queryRange(values.prometheus!, expand(t.expr, minutes), start, end, step)) {
        series.push({
          name: legend(t.legendFormat, r.metric),
          color: COLORS[series.length % COLORS.length],
          points: r.values.map(([ts, v]) => ({ x: (ts - start) / 60, y: Number(v) })),
        });
      }
    }
    const finite = series.some((s) => s.points.some((q) => Number.isFinite(q.y)));
    charts.push(
      finite
        ? lineChartSvg(series, {
            title: p.title,
            xLabel: `minutes since ${new Date(start * 1000).toISOString().slice(11, 19)} UTC`,
            yLabel: p.fieldConfig.defaults.unit ?? '',
            width: WIDTH,
            height: HEIGHT,
          })
        : `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}"><rect width="${WIDTH}" height="${HEIGHT}" fill="white" stroke="#ccc"/><text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle" font-family="sans-serif">${p.title}: no data</text></svg>`,
    );
  }
  const cols = 2;
  const rows = Math.ceil(charts.length / cols);
  const W = cols * WIDTH;
  const H = rows * HEIGHT + 40;
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#f4f5f5"/>`,
    `<text x="12" y="26" font-size="18">${dashboard.title} — Prometheus ${values.prometheus}, last ${minutes} min, ${new Date(end * 1000).toISOString()}</text>`,
    ...charts.map((c, i) =>
      c.replace('<svg ', `<svg x="${(i % cols) * WIDTH}" y="${40 + Math.floor(i / cols) * HEIGHT}" `),
    ),
    '</svg>',
  ].join('\n');
  await fs.writeFile(values.out!, svg + '\n');
  console.log(`${values.out}: ${charts.length} panels`);
}

if (require.main === module)
  main().catch((err: unknown) => {
    console.error(`render-panels: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
