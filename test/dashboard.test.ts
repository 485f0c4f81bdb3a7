// The Grafana dashboard and its provisioning: the dashboard JSON has the shape Grafana's file
// provisioning loads (a dashboard model with uid, panels on the 24-column grid, Prometheus targets
// on the provisioned datasource), and every metric its queries read is one the workers export.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { registry } from '../infra/metrics';
import { watchPools } from '../subnets/gradients/metrics';
import { metricNames } from './helpers/promql';
import { python } from './helpers/python';

const dir = path.join(__dirname, '..', 'observability');
const dashboardFile = path.join(dir, 'grafana', 'dashboards', 'minerflow.json');

interface Target {
  refId: string;
  expr: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource: { type: string; uid: string };
  targets: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: { query: string } }[] };
}

/** A YAML file as JSON, read by PyYAML (the venv's), not by a parser of ours. */
function yaml(file: string): unknown {
  return JSON.parse(
    python('import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', [path.join(dir, file)]),
  );
}

const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as Dashboard;
const datasources = yaml('grafana/provisioning/datasources/prometheus.yml') as {
  apiVersion: number;
  datasources: { uid: string; type: string; url: string }[];
};

test('metricNames reads the metrics out of PromQL, not its functions, labels, ranges or variables', () => {
  assert.deepEqual(
    metricNames(
      'sum by (hotkey, phase) (increase(minerflow_commits_total{subnet=~"$subnet", hotkey="a/b"}[$__range])) / on(hotkey) group_left foo:bar',
    ),
    ['minerflow_commits_total', 'foo:bar'],
  );
  assert.deepEqual(metricNames('minerflow_train_step{x="y"} / minerflow_train_planned_steps offset 5m > 0.5'), [
    'minerflow_train_step',
    'minerflow_train_planned_steps',
  ]);
  assert.deepEqual(metricNames('label_values(minerflow_train_step, hotkey)'), ['minerflow_train_step', 'hotkey']);
});

test('the dashboard is a Grafana dashboard model that file provisioning loads', () => {
  assert.match(dashboard.uid, /^[\w-]{1,40}$/, 'uid: at most 40 characters of letters, digits, - and _');
  assert.ok(dashboard.title.length > 0, 'dashboard.title.length > 0');
  assert.ok(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= 36, 'a current schemaVersion');
  assert.equal((dashboard as { id?: unknown }).id ?? null, null, 'no database id: provisioning assigns one');
  assert.ok(dashboard.panels.length >= 10, 'dashboard.panels.length >= 10');
  const ids = new Set<number>();
  const ds = datasources.datasources[0];
  for (const p of dashboard.panels) {
    assert.ok(Number.isInteger(p.id) && !ids.has(p.id), `panel ids are unique integers: ${p.id}`);
    ids.add(p.id);
    assert.ok(['timeseries', 'stat'].includes(p.type), `${p.title}: a core panel type`);
    const g = p.gridPos;
    for (const k of ['x', 'y', 'w', 'h'] as const)
      assert.ok(Number.isInteger(g[k]) && g[k] >= 0, `${p.title}: gridPos.${k}`);
    assert.ok(g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${p.title}: inside the 24-column grid`);
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: ds.uid }, `${p.title}: the provisioned datasource`);
    assert.ok(p.targets.length > 0, `${p.title}: has queries`);
    const refIds = p.targets.map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${p.title}: unique refIds`);
    for (const t of p.targets) assert.deepEqual(t.datasource, p.datasource);
  }
  // No two panels overlap on the grid.
  const cells = new Set<string>();
  for (const p of dashboard.panels)
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++)
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
        cells.add(`${x},${y}`);
      }
});

test('every metric the dashboard queries is one the workers export', () => {
  watchPools({ loads: async () => [] }, []); // the Gradients service's pool gauges
  const exported = new Set(registry.getMetricsAsArray().map((m) => m.name));
  const exprs = [
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
    ...dashboard.templating.list.map((v) => v.query.query.replace(/^label_values\((.*),\s*\w+\)$/, '$1')),
  ];
  // A histogram is queried through its _bucket / _sum / _count series.
  const used = new Set(exprs.flatMap(metricNames).map((m) => m.replace(/_(bucket|sum|count)$/, '')));
  assert.ok(used.size >= 15, `the dashboard reads ${used.size} metrics`);
  const unknown = [...used].filter((m) => !exported.has(m));
  assert.deepEqual(unknown, [], `metrics no worker exports: ${unknown.join(', ')}`);
  // The other way round: everything minerflow measures is on the dashboard.
  const ours = [...exported].filter((m) => m.startsWith('minerflow_'));
  const missing = ours.filter(
    (m) =>
      !used.has(m) &&
      !['minerflow_segment', 'minerflow_segments_total', 'minerflow_chain_block', 'minerflow_cycle_round'].includes(m),
  );
  assert.deepEqual(missing, [], `measured but not on the dashboard: ${missing.join(', ')}`);
});

test('the provisioning files point Grafana at the dashboard folder and Prometheus at the workers', () => {
  assert.equal(datasources.apiVersion, 1);
  assert.equal(datasources.datasources[0].type, 'prometheus');
  const providers = yaml('grafana/provisioning/dashboards/minerflow.yml') as {
    apiVersion: number;
    providers: { type: string; options: { path: string } }[];
  };
  assert.equal(providers.apiVersion, 1);
  assert.equal(providers.providers[0].type, 'file');
  const compose = yaml('docker-compose.yml') as {
    services: Record<string, { volumes: string[]; command?: string[] }>;
  };
  const mounts = compose.services.grafana.volumes.map((v) => v.split(':'));
  assert.ok(
    mounts.some(([from, to]) => from === './grafana/dashboards' && to === providers.providers[0].options.path),
    'the provider path is where compose mounts the dashboards',
  );
  const prom = yaml('prometheus.yml') as {
    scrape_configs: { file_sd_configs: { files: string[] }[] }[];
  };
  const files = prom.scrape_configs[0].file_sd_configs[0].files[0];
  assert.ok(
    compose.services.prometheus.volumes.some((v) =>
      v.includes('/metrics/targets:/etc/prometheus/' + path.dirname(files)),
    ),
    'compose mounts the workers target folder where the scrape config looks',
  );
  assert.ok(
    datasources.datasources[0].url.endsWith(':9090') &&
      compose.services.prometheus.command!.includes('--web.listen-address=127.0.0.1:9090'),
    "datasources.datasources[0].url.endsWith(':9090') && compose.services.prometheus.command!.includes('--web.li…",
  );
});
