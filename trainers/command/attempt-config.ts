// The trainer's config for one attempt: the template with the `set` keys filled from placeholders
// ({lr}, {checkpointDir}, {model.dModel}, …), written as YAML. Also the argv placeholders.

/** Values placeholders can name: flat ones ({lr}) and nested ones ({model.moe.experts}). */
export type PlaceholderValues = Record<string, unknown>;

const ONE = /^\{([A-Za-z][\w.]*)\}$/;
const ANY = /\{([A-Za-z][\w.]*)\}/g;

function lookup(values: PlaceholderValues, name: string, where: string): unknown {
  let v: unknown = values;
  for (const part of name.split('.')) {
    if (v === null) return null; // {model.moe.experts} of a dense model
    if (typeof v !== 'object' || !(part in (v as object)))
      throw new Error(`${where}: unknown placeholder {${name}} (known: ${Object.keys(values).join(', ')})`);
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** Fills placeholders in a value: a string that is exactly one keeps the value's type; others are text. */
export function fill(value: unknown, values: PlaceholderValues, where: string): unknown {
  if (typeof value === 'string') {
    const one = ONE.exec(value);
    if (one) return lookup(values, one[1], where);
    return value.replace(ANY, (_m, name: string) => String(lookup(values, name, where)));
  }
  if (Array.isArray(value)) return value.map((v, i) => fill(v, values, `${where}[${i}]`));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v, values, `${where}.${k}`)]));
  return value;
}

/** The template (deep-copied) with each dotted key of `set` filled and set. */
export function attemptConfig(
  template: Record<string, unknown>,
  set: Record<string, unknown>,
  values: PlaceholderValues,
): Record<string, unknown> {
  const out = structuredClone(template);
  for (const [key, raw] of Object.entries(set)) {
    const parts = key.split('.');
    let node = out;
    for (const p of parts.slice(0, -1)) {
      const next = node[p];
      if (next === undefined || next === null) node[p] = {};
      else if (typeof next !== 'object' || Array.isArray(next))
        throw new Error(`trainer.config.set.${key}: '${p}' is ${JSON.stringify(next)} in the template, not a section`);
      node = node[p] as Record<string, unknown>;
    }
    node[parts.at(-1)!] = fill(raw, values, `trainer.config.set.${key}`);
  }
  return out;
}

/** Block-style YAML for plain data; strings are JSON-quoted (valid YAML double-quoted scalars). */
export function toYaml(value: unknown, indent = ''): string {
  if (value === null || typeof value !== 'object') return scalar(value);
  if (Array.isArray(value)) return value.length ? JSON.stringify(value) : '[]';
  const entries = Object.entries(value as Record<string, unknown>);
  if (!entries.length) return '{}';
  return entries
    .map(([k, v]) =>
      v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length
        ? `${indent}${JSON.stringify(k)}:\n${toYaml(v, indent + '  ')}`
        : `${indent}${JSON.stringify(k)}: ${toYaml(v, indent + '  ')}`,
    )
    .join('\n');
}

function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return '.nan';
    if (!Number.isFinite(v)) return v > 0 ? '.inf' : '-.inf';
    // YAML 1.1 (PyYAML) reads 1e-05 as a string: floats need a dot and a signed exponent.
    const s = String(v);
    if (/e/i.test(s) && !s.includes('.')) return s.replace(/e/i, '.0e');
    return s;
  }
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return JSON.stringify(String(v));
}
